#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "core/check.h"
#include "core/file.h"
#include "io/safetensors.h"
#include "tensor/blas.h"
#include "tensor/kernels.h"
#include "tensor/packed.h"
#include "tensor/rope.h"
#include "tensor/scratch.h"
#include "tensor/thread_pool.h"

namespace tl {

namespace {

// Query rows per attention block in a prefill: a block's scores (rows x keys) are one GEMM.
constexpr int64_t kQueryBlock = 64;

// Reads tensor `name`, checks its shape, and returns it as f32 (a view for f32 files, a converted copy
// otherwise).
Result<Tensor> load_tensor(const safetensors::ShardedFiles& files, const std::string& dir, const std::string& name,
                           const std::vector<int64_t>& shape) {
  auto t = files.tensor(name);
  if (!t.is_ok()) return t.status().with_context(dir);
  if (t->shape() != shape) {
    Tensor expected = Tensor::view(DType::kF32, shape, nullptr, nullptr);
    return invalid_argument("{}: tensor '{}' has shape {}, but config.json implies {}", dir, name, t->shape_string(),
                            expected.shape_string());
  }
  if (t->dtype() == DType::kF32) return std::move(t).value();
  return t->to_f32();
}

// Concatenates f32 matrices along rows into one owned tensor.
Tensor cat_rows(const std::vector<const Tensor*>& parts) {
  int64_t rows = 0;
  const int64_t cols = parts[0]->rank() == 2 ? parts[0]->dim(1) : 1;
  for (const Tensor* p : parts) rows += p->dim(0);
  Tensor out = parts[0]->rank() == 2 ? Tensor::zeros(DType::kF32, {rows, cols}) : Tensor::zeros(DType::kF32, {rows});
  float* dst = out.f32();
  for (const Tensor* p : parts) {
    std::memcpy(dst, p->f32(), p->nbytes());
    dst += p->numel();
  }
  return out;
}

// out (T, N) = in (T, K) W^T (N, K) + bias (N), added to out when `accumulate` (a residual): one GEMM
// (tensor/matmul.h; one token is its one-row path). Packed matrices take the bias and the residual in the
// GEMM's store.
void linear(float* out, const float* in, const WeightRef& w, const Tensor& bias, int64_t t, bool accumulate = false) {
  const float* bp = bias.empty() ? nullptr : bias.f32();
  const int64_t n = w.rows;
  if (w.amx) {
    amx_gemm_xwt(out, n, in, w.cols, t, *w.amx, bp, accumulate);
    return;
  }
  if (w.packed) {
    packed_gemm(out, n, in, w.cols, t, *w.packed, bp, accumulate);
    return;
  }
  if (accumulate) {
    thread_local std::vector<float> tmp;
    tmp.resize(static_cast<size_t>(t * n));
    linear(tmp.data(), in, w, bias, t);
    parallel_rows(t, n, [&](int64_t b, int64_t e) { kernels().axpy(out + b * n, 1.0f, tmp.data() + b * n, (e - b) * n); });
    return;
  }
  matmul_xwt(out, in, w, t, w.cols, n);
  if (bp) {
    const KernelTable& k = kernels();
    parallel_rows(t, n, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) k.axpy(out + r * n, 1.0f, bp, n);
    });
  }
}

// An owned bf16 copy of an f32 tensor (round to nearest even); the file pages of a view are released.
Tensor to_bf16(const Tensor& t) {
  if (t.dtype() == DType::kBF16) return t;
  Tensor out = Tensor::zeros(DType::kBF16, t.shape());
  const float* src = t.f32();
  uint16_t* dst = static_cast<uint16_t*>(out.mutable_data());
  ThreadPool::global().parallel_for(t.numel(), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dst[i] = f32_to_bf16(src[i]);
  }, 4096);
  if (t.is_view()) release_mapped_pages(t.data(), t.nbytes());
  return out;
}

}  // namespace

namespace {
// Every packable matrix of a model with its packed copy: the four projections of every layer, then the
// LM head (is_head; when tied it is the embedding, which the lookup reads row-major).
template <typename F>
void for_each_matrix(ModelWeights& w, F&& f) {
  for (LayerWeights& L : w.layers) {
    f(L.wqkv, L.packed_wqkv, false);
    f(L.wo, L.packed_wo, false);
    f(L.w_gate_up, L.packed_w_gate_up, false);
    f(L.w_down, L.packed_w_down, false);
  }
  f(w.lm_head, w.packed_lm_head, true);
}

using PackedPtr = std::shared_ptr<const PackedMatrix>;

void drop_packed(ModelWeights& w) {
  for_each_matrix(w, [](Tensor&, PackedPtr& p, bool) { p.reset(); });
}

// Packs an f32 matrix not packed yet into `out`. A view's file pages are released: the packing is what
// the GEMMs read.
void pack_into(const Tensor& t, PackedPtr& out) {
  if (out || t.empty() || t.dtype() != DType::kF32 || t.rank() != 2) return;
  out = std::make_shared<const PackedMatrix>(PackedMatrix::pack(t.f32(), t.dim(0), t.dim(1)));
  if (t.is_view()) release_mapped_pages(t.data(), t.nbytes());
}

// Frees a row-major matrix (its file pages, when a view).
void free_row_major(Tensor& t) {
  if (t.is_view()) release_mapped_pages(t.data(), t.nbytes());
  t = Tensor();
}

// Quantises `t` into `out` and frees it; the file pages of views are released too.
void to_nf4(Tensor& t, std::shared_ptr<const Nf4Tensor>& out, bool double_quant) {
  out = std::make_shared<const Nf4Tensor>(nf4_quantize(std::as_const(t).f32(), t.numel(), double_quant));
  if (t.is_view()) release_mapped_pages(t.data(), t.nbytes());
  t = Tensor();
}
}  // namespace

Result<Model> Model::load(const std::string& dir) { return load_impl(dir, Storage::kRowMajor, false); }

Result<Model> Model::load_nf4(const std::string& dir, bool double_quant) {
  return load_impl(dir, Storage::kNf4, double_quant);
}

Result<Model> Model::load_packed(const std::string& dir) { return load_impl(dir, Storage::kPacked, false); }

Result<Model> Model::load_bf16(const std::string& dir) {
  TL_CHECK(bf16_tiles_available());
  return load_impl(dir, Storage::kBf16, false);
}

Result<Model> Model::load_unpacked(const std::string& dir) { return load_impl(dir, Storage::kUnpacked, false); }

Result<Model> Model::load_impl(const std::string& dir, Storage storage, bool double_quant) {
  const bool nf4 = storage == Storage::kNf4;
  if (!is_directory(dir)) return not_found("{}: not a model directory", dir);
  TL_ASSIGN_OR_RETURN(ModelConfig c, ModelConfig::load(dir));
  TL_ASSIGN_OR_RETURN(safetensors::ShardedFiles files, safetensors::ShardedFiles::open(dir));
  const int64_t C = c.hidden_size, V = c.vocab_size, I = c.intermediate_size, D = c.head_dim;
  auto w = std::make_shared<ModelWeights>();
  auto get = [&](const std::string& name, const std::vector<int64_t>& shape) {
    return load_tensor(files, dir, name, shape);
  };
  TL_ASSIGN_OR_RETURN(w->embed, get("model.embed_tokens.weight", {V, C}));
  TL_ASSIGN_OR_RETURN(w->final_norm, get("model.norm.weight", {C}));
  if (c.tie_word_embeddings) {
    w->lm_head = w->embed;
  } else {
    TL_ASSIGN_OR_RETURN(w->lm_head, get("lm_head.weight", {V, C}));
  }
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights L;
    TL_ASSIGN_OR_RETURN(L.attn_norm, get(p + "input_layernorm.weight", {C}));
    TL_ASSIGN_OR_RETURN(L.mlp_norm, get(p + "post_attention_layernorm.weight", {C}));
    TL_ASSIGN_OR_RETURN(Tensor wq, get(p + "self_attn.q_proj.weight", {c.q_dim(), C}));
    TL_ASSIGN_OR_RETURN(Tensor wk, get(p + "self_attn.k_proj.weight", {c.kv_dim(), C}));
    TL_ASSIGN_OR_RETURN(Tensor wv, get(p + "self_attn.v_proj.weight", {c.kv_dim(), C}));
    L.wqkv = cat_rows({&wq, &wk, &wv});
    if (c.qkv_bias) {
      TL_ASSIGN_OR_RETURN(Tensor bq, get(p + "self_attn.q_proj.bias", {c.q_dim()}));
      TL_ASSIGN_OR_RETURN(Tensor bk, get(p + "self_attn.k_proj.bias", {c.kv_dim()}));
      TL_ASSIGN_OR_RETURN(Tensor bv, get(p + "self_attn.v_proj.bias", {c.kv_dim()}));
      L.bqkv = cat_rows({&bq, &bk, &bv});
    }
    TL_ASSIGN_OR_RETURN(L.wo, get(p + "self_attn.o_proj.weight", {C, c.q_dim()}));
    if (c.o_bias) {
    TL_ASSIGN_OR_RETURN(L.bo, get(p + "self_attn.o_proj.bias", {C}));
  }
    if (c.qk_norm) {
      TL_ASSIGN_OR_RETURN(L.q_norm, get(p + "self_attn.q_norm.weight", {D}));
      TL_ASSIGN_OR_RETURN(L.k_norm, get(p + "self_attn.k_norm.weight", {D}));
    }
    TL_ASSIGN_OR_RETURN(Tensor wg, get(p + "mlp.gate_proj.weight", {I, C}));
    TL_ASSIGN_OR_RETURN(Tensor wu, get(p + "mlp.up_proj.weight", {I, C}));
    L.w_gate_up = cat_rows({&wg, &wu});
    TL_ASSIGN_OR_RETURN(L.w_down, get(p + "mlp.down_proj.weight", {C, I}));
    // The fused copies replace the per-projection tensors: their file pages are not needed again.
    for (Tensor* src : {&wq, &wk, &wv, &wg, &wu})
      if (src->is_view()) release_mapped_pages(src->data(), src->nbytes());
    if (nf4) {
      to_nf4(L.wqkv, L.nf4_wqkv, double_quant);
      to_nf4(L.wo, L.nf4_wo, double_quant);
      to_nf4(L.w_gate_up, L.nf4_w_gate_up, double_quant);
      to_nf4(L.w_down, L.nf4_w_down, double_quant);
    }
    if (storage == Storage::kBf16) {
      const std::pair<Tensor*, std::shared_ptr<const AmxMatrix>*> mats[] = {{&L.wqkv, &L.amx_wqkv},
                                                                            {&L.wo, &L.amx_wo},
                                                                            {&L.w_gate_up, &L.amx_w_gate_up},
                                                                            {&L.w_down, &L.amx_w_down}};
      for (auto [t, tiles] : mats) {
        *tiles = std::make_shared<const AmxMatrix>(AmxMatrix::pack(std::as_const(*t).f32(), t->dim(0), t->dim(1)));
        free_row_major(*t);
      }
    }
    if (storage == Storage::kPacked) {
      const std::pair<Tensor*, PackedPtr*> mats[] = {{&L.wqkv, &L.packed_wqkv},
                                                     {&L.wo, &L.packed_wo},
                                                     {&L.w_gate_up, &L.packed_w_gate_up},
                                                     {&L.w_down, &L.packed_w_down}};
      for (auto [t, packed] : mats) {
        pack_into(*t, *packed);
        if (*packed) *t = Tensor();  // its file pages went in pack_into
      }
    }
    if (c.mlp_bias) {
      TL_ASSIGN_OR_RETURN(Tensor bg, get(p + "mlp.gate_proj.bias", {I}));
      TL_ASSIGN_OR_RETURN(Tensor bu, get(p + "mlp.up_proj.bias", {I}));
      L.b_gate_up = cat_rows({&bg, &bu});
      TL_ASSIGN_OR_RETURN(L.b_down, get(p + "mlp.down_proj.bias", {C}));
    }
    w->layers.push_back(std::move(L));
  }
  if (nf4) {
    w->embed = to_bf16(w->embed);
    w->lm_head = c.tie_word_embeddings ? w->embed : to_bf16(w->lm_head);
  }
  Model m = from_weights(std::move(c), ModelWeights());
  m.weights_ = std::move(w);
  m.source_dtype_ = files.dominant_dtype();
  m.dir_ = dir;
  if (storage == Storage::kRowMajor) m.pack_matrices();
  if (storage == Storage::kPacked) m.drop_row_major();  // the LM head (the layers are done)
  if (storage == Storage::kBf16) m.hold_matrices_bf16();  // the LM head
  return m;
}

void Model::pack_matrices() {
  for_each_matrix(*weights_, [](const Tensor& t, PackedPtr& out, bool) { pack_into(t, out); });
}

void Model::drop_row_major() {
  const bool tied = config_.tie_word_embeddings;
  for_each_matrix(*weights_, [tied](Tensor& t, PackedPtr& p, bool is_head) {
    pack_into(t, p);
    if (p && !t.empty() && !(is_head && tied)) free_row_major(t);
  });
}

int64_t Model::hold_matrices_bf16() {
  TL_CHECK(bf16_tiles_available());
  using AmxPtr = std::shared_ptr<const AmxMatrix>;
  const bool tied = config_.tie_word_embeddings;
  int64_t bytes = 0;
  // One matrix at a time: from the row-major copy if there is one, else from the packed one.
  auto convert = [&](Tensor& t, PackedPtr& p, AmxPtr& out, bool is_head) {
    if (!out) {
      if (!t.empty() && t.dtype() == DType::kF32 && t.rank() == 2) {
        out = std::make_shared<const AmxMatrix>(AmxMatrix::pack(std::as_const(t).f32(), t.dim(0), t.dim(1)));
      } else if (p) {
        std::vector<float> rows(static_cast<size_t>(p->rows() * p->cols()));
        p->unpack(rows.data());
        out = std::make_shared<const AmxMatrix>(AmxMatrix::pack(rows.data(), p->rows(), p->cols()));
      } else {
        return;
      }
    }
    bytes += out->bytes();
    p.reset();
    if (!t.empty() && !(is_head && tied)) free_row_major(t);
  };
  ModelWeights& w = *weights_;
  if (!w.lm_head.empty() && w.lm_head.dtype() == DType::kBF16) w.lm_head_blocks_on_amx = true;
  for (LayerWeights& L : w.layers) {
    if (L.nf4_wqkv) L.blocks_on_amx = true;
    convert(L.wqkv, L.packed_wqkv, L.amx_wqkv, false);
    convert(L.wo, L.packed_wo, L.amx_wo, false);
    convert(L.w_gate_up, L.packed_w_gate_up, L.amx_w_gate_up, false);
    convert(L.w_down, L.packed_w_down, L.amx_w_down, false);
  }
  convert(w.lm_head, w.packed_lm_head, w.amx_lm_head, true);
  return bytes;
}

void Model::restore_row_major() {
  for (const LayerWeights& L : weights_->layers)
    TL_CHECK_MSG(!L.amx_wqkv && !L.amx_wo && !L.amx_w_gate_up && !L.amx_w_down,
                 "the f32 matrices of a model held as bf16 are gone");
  for_each_matrix(*weights_, [](Tensor& t, PackedPtr& p, bool) {
    if (!p || !t.empty()) return;
    t = Tensor::zeros(DType::kF32, {p->rows(), p->cols()});
    p->unpack(t.f32());
  });
}

ModelWeights& Model::mutable_weights() {
  // A view is copied, and the file pages it read are released (the copy is what the model holds).
  auto own = [](Tensor& t) {
    if (t.empty() || !t.is_view()) return;
    Tensor copy = t.to_f32();
    free_row_major(t);
    t = std::move(copy);
  };
  restore_row_major();
  ModelWeights& w = *weights_;
  // Writable weights change under the packed copies: drop them (the GEMMs fall back to sgemm).
  drop_packed(w);
  own(w.embed);
  own(w.final_norm);
  if (config_.tie_word_embeddings) w.lm_head = w.embed;
  else own(w.lm_head);
  for (LayerWeights& L : w.layers) {
    for (Tensor* t : {&L.attn_norm, &L.wqkv, &L.bqkv, &L.wo, &L.bo, &L.q_norm, &L.k_norm, &L.mlp_norm, &L.w_gate_up,
                      &L.b_gate_up, &L.w_down, &L.b_down})
      own(*t);
  }
  return w;
}

WeightRef head_ref(const ModelWeights& w) {
  WeightRef r = weight_ref(w.lm_head, w.packed_lm_head.get()).with_amx(w.amx_lm_head.get());
  r.blocks_on_amx = w.lm_head_blocks_on_amx;
  return r;
}

WeightRef weight_ref(const Tensor& t, const PackedMatrix* packed) {
  if (t.empty()) return packed ? WeightRef{nullptr, nullptr, nullptr, packed->rows(), packed->cols(), packed}
                               : WeightRef{};
  if (t.dtype() == DType::kBF16)
    return WeightRef::of_bf16(static_cast<const uint16_t*>(t.data()), t.dim(0), t.rank() == 2 ? t.dim(1) : 1);
  return WeightRef::of_f32(t.f32(), t.dim(0), t.rank() == 2 ? t.dim(1) : 1).with_packed(packed);
}

LayerMatrices::LayerMatrices(const LayerWeights& L) {
  auto get = [](const Tensor& t, const std::shared_ptr<const Nf4Tensor>& q, int64_t rows, int64_t cols) {
    if (q) return WeightRef::of_nf4(q.get(), rows, cols);
    return WeightRef::of_f32(t.empty() ? nullptr : t.f32(), rows, cols);  // empty: packed only
  };
  // Shapes come from the norms and biases, which stay f32: C from the norm, the fused widths from the
  // NF4 element counts.
  const int64_t C = L.attn_norm.numel();
  auto rows_of = [&](const Tensor& t, const std::shared_ptr<const Nf4Tensor>& q,
                     const std::shared_ptr<const PackedMatrix>& p, const std::shared_ptr<const AmxMatrix>& a,
                     int64_t cols) {
    return q ? q->numel / cols : !t.empty() ? t.dim(0) : p ? p->rows() : a->rows();
  };
  const int64_t nqkv = rows_of(L.wqkv, L.nf4_wqkv, L.packed_wqkv, L.amx_wqkv, C);
  const int64_t hd = L.nf4_wo ? L.nf4_wo->numel / C : !L.wo.empty() ? L.wo.dim(1) : L.packed_wo ? L.packed_wo->cols()
                                                                                               : L.amx_wo->cols();
  const int64_t i2 = rows_of(L.w_gate_up, L.nf4_w_gate_up, L.packed_w_gate_up, L.amx_w_gate_up, C);
  wqkv_ = get(L.wqkv, L.nf4_wqkv, nqkv, C).with_packed(L.packed_wqkv.get()).with_amx(L.amx_wqkv.get());
  wo_ = get(L.wo, L.nf4_wo, C, hd).with_packed(L.packed_wo.get()).with_amx(L.amx_wo.get());
  w_gate_up_ =
      get(L.w_gate_up, L.nf4_w_gate_up, i2, C).with_packed(L.packed_w_gate_up.get()).with_amx(L.amx_w_gate_up.get());
  w_down_ = get(L.w_down, L.nf4_w_down, C, i2 / 2).with_packed(L.packed_w_down.get()).with_amx(L.amx_w_down.get());
  for (WeightRef* r : {&wqkv_, &wo_, &w_gate_up_, &w_down_}) r->blocks_on_amx = L.blocks_on_amx;
}

int64_t Model::quantize_nf4(bool double_quant) {
  restore_row_major();
  int64_t bytes = 0;
  auto q = [&](Tensor& t, std::shared_ptr<const Nf4Tensor>& out) {
    if (t.empty()) return;
    to_nf4(t, out, double_quant);
    bytes += static_cast<int64_t>(out->packed.size() + out->absmax.size() * 4 + out->absmax_q.size() +
                                  out->nested_absmax.size() * 4);
  };
  drop_packed(*weights_);
  for (LayerWeights& L : weights_->layers) {
    q(L.wqkv, L.nf4_wqkv);
    q(L.wo, L.nf4_wo);
    q(L.w_gate_up, L.nf4_w_gate_up);
    q(L.w_down, L.nf4_w_down);
  }
  ModelWeights& w = *weights_;
  w.embed = to_bf16(w.embed);
  w.lm_head = config_.tie_word_embeddings ? w.embed : to_bf16(w.lm_head);
  return bytes;
}

Model Model::from_weights(ModelConfig config, ModelWeights weights) {
  Model m;
  m.inv_freq_ = rope_inv_freq(config);
  m.config_ = std::move(config);
  m.weights_ = std::make_shared<ModelWeights>(std::move(weights));
  m.source_dtype_ = "F32";
  m.pack_matrices();
  return m;
}

Status Model::run_layers(std::span<const int32_t> tokens, KvCache& cache, std::vector<float>& x,
                         int64_t out_rows) const {
  const ModelConfig& c = config_;
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (T == 0) return invalid_argument("forward: no tokens");
  for (int64_t t = 0; t < T; ++t) {
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size) {
      return out_of_range("token id {} at position {} is outside the vocabulary [0, {})", tokens[t], t, c.vocab_size);
    }
  }
  const int64_t p0 = cache.length();
  if (p0 + T > cache.capacity()) {
    return resource_exhausted("sequence of {} tokens exceeds the KV cache capacity of {}", p0 + T, cache.capacity());
  }
  const int64_t C = c.hidden_size, D = c.head_dim, H = c.num_heads, KV = c.num_kv_heads, I = c.intermediate_size;
  const int64_t NQKV = (H + 2 * KV) * D;
  const int64_t kstride = cache.stride();
  const float eps = static_cast<float>(c.rms_norm_eps);
  const KernelTable& k = kernels();
  ThreadPool& pool = ThreadPool::global();
  const ModelWeights& W = *weights_;

  x.resize(static_cast<size_t>(T * C));
  // Every row of these is written before it is read (the last layer writes and reads only its rows).
  Scratch xn = uninit(T * C), qkv = uninit(T * NQKV), att = uninit(T * H * D);
  Scratch gate_up, act = uninit(T * I);  // gate_up only where the MLP's GEMM and SwiGLU are not fused
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    pos[static_cast<size_t>(t)] = static_cast<int32_t>(p0 + t);
  }
  gather_rows(x.data(), weight_ref(W.embed), tokens.data(), T);
  const RopeTable rope = rope_table(pos.data(), T, inv_freq_.data(), D);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t group = H / KV;
  // The first key position p attends to (sliding windows).
  auto key_begin = [&](int64_t p) { return c.sliding_window > 0 ? std::max<int64_t>(0, p - c.sliding_window + 1) : 0; };
  // Row-parallel rmsnorm over `rows` tokens (one token: on the caller).
  auto rmsnorm_rows = [&](float* out, const float* in, const float* w, int64_t rows) {
    parallel_rows(rows, C, [&](int64_t b, int64_t e) { k.rmsnorm(out + b * C, in + b * C, w, e - b, C, eps); });
  };

  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = W.layers[static_cast<size_t>(l)];
    const LayerMatrices M(L);
    // Rows [r0, T) go on past the K/V store: all of them but in the last layer.
    const int64_t r0 = l + 1 == c.num_layers ? T - std::clamp<int64_t>(out_rows, 1, T) : 0, R = T - r0;
    rmsnorm_rows(xn.data(), x.data(), L.attn_norm.f32(), T);
    // Queries from row qr on: the rows before r0 only store their keys and values, so where the packing
    // allows, their q columns are not computed.
    const PackedMatrix* qkv_packed = M.wqkv().packed;
    const int64_t qr = r0 > 0 && qkv_packed && (H * D) % PackedMatrix::kPanel == 0 ? r0 : 0;
    if (qr > 0) {
      packed_gemm_cols(qkv.data() + H * D, NQKV, xn.data(), C, qr, *qkv_packed, H * D,
                       L.bqkv.empty() ? nullptr : L.bqkv.f32(), false);
      linear(qkv.data() + qr * NQKV, xn.data() + qr * C, M.wqkv(), L.bqkv, T - qr);
    } else {
      linear(qkv.data(), xn.data(), M.wqkv(), L.bqkv, T);
    }
    if (c.qk_norm) {
      for (int64_t t = 0; t < T; ++t) {
        float* row = &qkv[static_cast<size_t>(t * NQKV)];
        if (t >= qr) k.rmsnorm(row, row, L.q_norm.f32(), H, D, eps);
        k.rmsnorm(row + H * D, row + H * D, L.k_norm.f32(), KV, D, eps);
      }
    }
    if (qr > 0) rope_apply(qkv.data() + qr * NQKV, T - qr, NQKV, H, D, rope_table(pos.data() + qr, T - qr, inv_freq_.data(), D));
    else rope_apply(qkv.data(), T, NQKV, H, D, rope);
    rope_apply(qkv.data() + H * D, T, NQKV, KV, D, rope);
    // K transposed and V into the cache; KV heads in parallel (each writes only its own slices).
    auto store_kv = [&](int64_t gb, int64_t ge) {
      for (int64_t g = gb; g < ge; ++g) {
        float* kt = cache.kt(l, g);
        float* vc = cache.v(l, g);
        for (int64_t t = 0; t < T; ++t) {
          const float* kr = &qkv[static_cast<size_t>(t * NQKV + H * D + g * D)];
          const float* vr = kr + KV * D;
          for (int64_t d = 0; d < D; ++d) kt[d * kstride + p0 + t] = kr[d];
          std::memcpy(vc + (p0 + t) * D, vr, static_cast<size_t>(D) * 4);
        }
      }
    };
    parallel_rows(KV, T * D, store_kv, 1);
    // Attention as GEMMs on the packed kernel (tensor/packed.h), K^T and V read in place from the cache:
    // for a set of query rows, S = Q K^T over their keys, each row scaled and softmaxed over its own keys
    // (zero elsewhere), then O = P V. Every score and output is one FMA chain whatever the rows, so a
    // decode step (the heads of a KV group as rows) gives the prefill's values (one head's block of
    // tokens as rows) bit for bit. Trailing zeros of P add nothing to a chain.
    auto attend = [&](const float* q, int64_t lda, int64_t rows, int64_t pos0, bool one_position, float* out,
                      int64_t ldo, int64_t g) {
      thread_local std::vector<float> s;
      const int64_t last = one_position ? pos0 : pos0 + rows - 1;
      const int64_t k0 = key_begin(pos0), nk = last + 1 - k0;
      s.resize(static_cast<size_t>(rows * nk));
      const GemmTerm qk = GemmTerm::of_rowmajor(q, lda, cache.kt(l, g) + k0, D, kstride);
      gemm(s.data(), nk, rows, nk, std::span<const GemmTerm>(&qk, 1), nullptr, false);
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t p = one_position ? pos0 : pos0 + i;
        const int64_t kb = key_begin(p) - k0, n = p + 1 - k0;
        float* row = &s[static_cast<size_t>(i * nk)];
        std::fill(row, row + kb, 0.0f);
        k.softmax(row + kb, n - kb, scale);
        std::fill(row + n, row + nk, 0.0f);
      }
      const GemmTerm pv = GemmTerm::of_rowmajor(s.data(), nk, cache.v(l, g) + k0 * D, nk, D);
      gemm(out, ldo, rows, D, std::span<const GemmTerm>(&pv, 1), nullptr, false);
    };
    if (T == 1) {
      parallel_rows(KV, group * (p0 + 1) * D, [&](int64_t b, int64_t e) {
        for (int64_t g = b; g < e; ++g)
          attend(&qkv[static_cast<size_t>(g * group * D)], D, group, p0, true, &att[static_cast<size_t>(g * group * D)],
                 D, g);
      }, 1);
    } else {
      const int64_t blocks = (R + kQueryBlock - 1) / kQueryBlock;
      parallel_rows(H * blocks, kQueryBlock * (p0 + T) * D, [&](int64_t b, int64_t e) {
        for (int64_t item = b; item < e; ++item) {
          // Largest blocks (most keys) first, so the last items claimed are the short ones.
          const int64_t h = item % H, q0 = r0 + (blocks - 1 - item / H) * kQueryBlock;
          const int64_t rows = std::min(kQueryBlock, T - q0);
          attend(&qkv[static_cast<size_t>(q0 * NQKV + h * D)], NQKV, rows, p0 + q0, false,
                 &att[static_cast<size_t>(q0 * H * D + h * D)], H * D, h / group);
        }
      }, 1);
    }
    float* xr = x.data() + r0 * C;
    linear(xr, att.data() + r0 * H * D, M.wo(), L.bo, R, /*accumulate=*/true);
    rmsnorm_rows(xn.data(), xr, L.mlp_norm.f32(), R);
    const PackedMatrix* gu_packed = M.w_gate_up().packed;
    if (gu_packed && swiglu_fusable(*gu_packed)) {
      packed_gemm_swiglu(act.data(), I, xn.data(), C, R, *gu_packed, L.b_gate_up.empty() ? nullptr : L.b_gate_up.f32());
    } else {
      gate_up.resize(static_cast<size_t>(T * 2 * I));
      linear(gate_up.data(), xn.data(), M.w_gate_up(), L.b_gate_up, R);
      pool.parallel_for(R, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const float* gu = &gate_up[static_cast<size_t>(t * 2 * I)];
          k.swiglu(&act[static_cast<size_t>(t * I)], gu, gu + I, I);
        }
      });
    }
    linear(xr, act.data(), M.w_down(), L.b_down, R, /*accumulate=*/true);
  }
  cache.length_ = p0 + T;
  return Status::ok();
}

Status Model::forward(std::span<const int32_t> tokens, KvCache& cache, std::vector<float>& logits,
                      bool all_logits) const {
  std::vector<float> x;
  const int64_t T = static_cast<int64_t>(tokens.size());
  const int64_t first = all_logits ? 0 : T - 1;
  TL_TRY(run_layers(tokens, cache, x, T - first));
  const ModelConfig& c = config_;
  const int64_t C = c.hidden_size;
  const int64_t rows = T - first;
  const ModelWeights& W = *weights_;  // const: the weights may view the read-only file mapping
  std::vector<float> xn(static_cast<size_t>(rows * C));
  kernels().rmsnorm(xn.data(), x.data() + first * C, W.final_norm.f32(), rows, C, static_cast<float>(c.rms_norm_eps));
  logits.resize(static_cast<size_t>(rows * c.vocab_size));
  linear(logits.data(), xn.data(), head_ref(W), Tensor(), rows);
  return Status::ok();
}

Status Model::hidden_states(std::span<const int32_t> tokens, KvCache& cache, std::vector<float>& out) const {
  std::vector<float> x;
  const int64_t C = config_.hidden_size, T = static_cast<int64_t>(tokens.size());
  TL_TRY(run_layers(tokens, cache, x, T));
  const ModelWeights& W = *weights_;
  out.resize(static_cast<size_t>(T * C));
  kernels().rmsnorm(out.data(), x.data(), W.final_norm.f32(), T, C, static_cast<float>(config_.rms_norm_eps));
  return Status::ok();
}

Status Model::hidden_states(std::span<const int32_t> tokens, std::vector<float>& out) const {
  // The empty sequence is rejected by run_layers with forward()'s message; a zero-capacity cache would
  // otherwise report it as a capacity error.
  KvCache cache(config_, std::max<int64_t>(1, static_cast<int64_t>(tokens.size())));
  return hidden_states(tokens, cache, out);
}

}  // namespace tl
