#include "model/train_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "tensor/blas.h"
#include "tensor/kernels.h"
#include "tensor/rope.h"
#include "tensor/thread_pool.h"

namespace tl {

namespace {

using Buf = std::vector<float>;

Buf zeros(int64_t n) { return Buf(static_cast<size_t>(n), 0.0f); }

// C (M, N) = alpha * A (M, K) B^T (N, K) + beta * C
void mm_nt(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
           int64_t ldc, float alpha = 1.0f, float beta = 0.0f) {
  sgemm(false, true, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
        static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}
// C (M, N) = alpha * A (M, K) B (K, N) + beta * C
void mm_nn(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
           int64_t ldc, float alpha = 1.0f, float beta = 0.0f) {
  sgemm(false, false, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
        static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}
// C (M, N) = alpha * A^T (A: K, M) B (K, N) + beta * C
void mm_tn(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
           int64_t ldc, float alpha = 1.0f, float beta = 0.0f) {
  sgemm(true, false, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
        static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// out (rows, dim) = rmsnorm(in) * w; rstd (rows) kept for backward.
void rmsnorm_fwd(float* out, float* rstd, const float* in, const float* w, int64_t rows, int64_t dim, float eps) {
  const KernelTable& k = kernels();
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = in + r * dim;
    float ss = k.dot(x, x, dim);
    float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    rstd[r] = inv;
    float* y = out + r * dim;
    for (int64_t i = 0; i < dim; ++i) y[i] = w[i] * (x[i] * inv);
  }
}

// y = w * x * r, r = (mean(x^2) + eps)^-1/2:
//   dx = r * (w dy) - r^3 / dim * x * sum(w dy x);  dw += sum_rows dy * x * r
// dx is assigned (may alias dy); dw may be null (frozen).
void rmsnorm_bwd(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd, int64_t rows,
                 int64_t dim) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    const float* dyr = dy + r * dim;
    float* dxr = dx + r * dim;
    const float rs = rstd[r];
    double dot = 0;
    for (int64_t i = 0; i < dim; ++i) dot += static_cast<double>(w[i]) * dyr[i] * xr[i];
    const float coef = static_cast<float>(dot) * rs * rs * rs / static_cast<float>(dim);
    if (dw)
      for (int64_t i = 0; i < dim; ++i) dw[i] += dyr[i] * xr[i] * rs;
    for (int64_t i = 0; i < dim; ++i) dxr[i] = rs * w[i] * dyr[i] - coef * xr[i];
  }
}

// Inverse rotation for the gradient of RoPE: R is orthogonal, so dx_pre = R^T dx.
void rope_bwd(float* dx, int64_t rows, int64_t row_stride, int64_t n_heads, int64_t head_dim, const RopeTable& table) {
  const int64_t half = head_dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = &table.cos[static_cast<size_t>(r * half)];
    const float* s = &table.sin[static_cast<size_t>(r * half)];
    float* row = dx + r * row_stride;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* v = row + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] + b * s[i];
        v[i + half] = b * c[i] - a * s[i];
      }
    }
  }
}

// splitmix64 of (seed, a, b, c): counter-based randomness, so dropout masks are recomputed in backward
// instead of stored, and resume reproduces them exactly.
inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct Dims {
  int64_t T, C, D, H, KV, I, NQKV, HD, group;
  float eps, scale;
};

// Where each LoRA target reads and writes inside a layer's fused buffers.
struct TargetSlot {
  int64_t in, out, col_offset, out_stride;
};

TargetSlot target_slot(const Dims& d, LoraTarget t) {
  switch (t) {
    case LoraTarget::kQ: return {d.C, d.HD, 0, d.NQKV};
    case LoraTarget::kK: return {d.C, d.KV * d.D, d.HD, d.NQKV};
    case LoraTarget::kV: return {d.C, d.KV * d.D, d.HD + d.KV * d.D, d.NQKV};
    case LoraTarget::kO: return {d.HD, d.C, 0, d.C};
    case LoraTarget::kGate: return {d.C, d.I, 0, 2 * d.I};
    case LoraTarget::kUp: return {d.C, d.I, d.I, 2 * d.I};
    case LoraTarget::kDown: return {d.I, d.C, 0, d.C};
  }
  return {};
}

// Everything backward needs from one layer's forward.
struct LayerCache {
  Buf x_in;           // (T, C) residual stream entering the layer
  Buf xn1, rstd1;     // (T, C), (T)
  Buf q_raw, rstd_q, rstd_k;  // qwen3: (T, NQKV) before q/k norm; (T*H), (T*KV)
  Buf qkv;            // (T, NQKV) after bias, q/k norm and RoPE
  Buf att;            // (T, HD)
  Buf x_mid;          // (T, C) after the attention residual
  Buf xn2, rstd2;     // (T, C), (T)
  Buf gu;             // (T, 2I) gate and up before the activation
  Buf act;            // (T, I)
  std::array<Buf, kLoraTargetCount> xa;  // (T, r) LoRA intermediate per target
};

class Pass {
 public:
  Pass(const Model& model, LoraRef lora, const TrainSequence& seq, const TrainOptions& opt)
      : m_(model), c_(model.config()), w_(model.weights()), lora_(lora), seq_(seq), opt_(opt) {
    d_.T = seq.size();
    d_.C = c_.hidden_size;
    d_.D = c_.head_dim;
    d_.H = c_.num_heads;
    d_.KV = c_.num_kv_heads;
    d_.I = c_.intermediate_size;
    d_.HD = d_.H * d_.D;
    d_.NQKV = (d_.H + 2 * d_.KV) * d_.D;
    d_.group = d_.H / d_.KV;
    d_.eps = static_cast<float>(c_.rms_norm_eps);
    d_.scale = 1.0f / std::sqrt(static_cast<float>(d_.D));
    inv_freq_ = rope_inv_freq(c_);
    rope_ = rope_table(seq.positions.data(), d_.T, inv_freq_.data(), d_.D);
    if (lora_.config) lora_scale_ = static_cast<float>(lora_.config->scaling());
  }

  Status validate() const {
    const int64_t T = d_.T;
    if (T == 0) return invalid_argument("training sequence is empty");
    if (static_cast<int64_t>(seq_.targets.size()) != T || static_cast<int64_t>(seq_.positions.size()) != T ||
        static_cast<int64_t>(seq_.segment_start.size()) != T) {
      return invalid_argument("training sequence: tokens, targets, positions and segment starts differ in length");
    }
    for (int64_t t = 0; t < T; ++t) {
      if (seq_.tokens[t] < 0 || seq_.tokens[t] >= c_.vocab_size)
        return out_of_range("token id {} at position {} is outside the vocabulary [0, {})", seq_.tokens[t], t, c_.vocab_size);
      if (seq_.targets[t] >= c_.vocab_size)
        return out_of_range("target id {} at position {} is outside the vocabulary [0, {})", seq_.targets[t], t, c_.vocab_size);
      if (seq_.segment_start[t] < 0 || seq_.segment_start[t] > t)
        return invalid_argument("segment start {} at position {} is not in [0, {}]", seq_.segment_start[t], t, t);
    }
    return Status::ok();
  }

  // Runs the whole forward; returns the per-layer caches (inputs only when checkpointing) and final x.
  void forward(std::vector<LayerCache>& caches, Buf& x) {
    const int64_t T = d_.T, C = d_.C;
    x = zeros(T * C);
    for (int64_t t = 0; t < T; ++t)
      std::memcpy(&x[static_cast<size_t>(t * C)], w_.embed.f32() + seq_.tokens[t] * C, static_cast<size_t>(C) * 4);
    caches.resize(static_cast<size_t>(c_.num_layers));
    for (int64_t l = 0; l < c_.num_layers; ++l) {
      LayerCache& lc = caches[static_cast<size_t>(l)];
      lc.x_in = x;
      layer_forward(l, lc, x);
      if (opt_.gradient_checkpointing) {
        Buf keep = std::move(lc.x_in);
        lc = LayerCache();
        lc.x_in = std::move(keep);
      }
    }
  }

  // Chunked output head + cross-entropy. Accumulates dx_final (T, C) when `backward`.
  StepStats head(const Buf& x, Buf* dx, float loss_scale, ModelWeights* grads) {
    const int64_t T = d_.T, C = d_.C, V = c_.vocab_size;
    const KernelTable& k = kernels();
    Buf xf = zeros(T * C), rstd = zeros(T);
    rmsnorm_fwd(xf.data(), rstd.data(), x.data(), w_.final_norm.f32(), T, C, d_.eps);
    Buf dxf = dx ? zeros(T * C) : Buf();
    StepStats st;
    const int64_t chunk = 64;
    Buf logits(static_cast<size_t>(chunk * V));
    for (int64_t r0 = 0; r0 < T; r0 += chunk) {
      const int64_t rows = std::min(chunk, T - r0);
      bool any = false;
      for (int64_t r = r0; r < r0 + rows; ++r) any |= seq_.targets[r] >= 0;
      if (!any) continue;
      mm_nt(logits.data(), &xf[static_cast<size_t>(r0 * C)], w_.lm_head.f32(), rows, V, C, C, C, V);
      for (int64_t r = 0; r < rows; ++r) {
        float* z = &logits[static_cast<size_t>(r * V)];
        const int32_t target = seq_.targets[r0 + r];
        if (target < 0) {
          std::fill(z, z + V, 0.0f);
          continue;
        }
        // Vectorised softmax gives p; the loss is -log p[target], except where p[target] underflows f32,
        // where the row is recomputed and the loss taken from an exact double log-sum-exp.
        k.softmax(z, V);
        const double pt = z[target];
        if (pt > 1e-30) {
          st.loss_sum += -std::log(pt);
        } else {
          std::vector<float> raw(static_cast<size_t>(V));
          k.gemv_rows(raw.data(), w_.lm_head.f32(), &xf[static_cast<size_t>((r0 + r) * C)], nullptr, 0, V, C);
          const float mx = *std::max_element(raw.begin(), raw.end());
          double sum = 0;
          for (float v : raw) sum += std::exp(static_cast<double>(v - mx));
          st.loss_sum += mx + std::log(sum) - raw[static_cast<size_t>(target)];
        }
        st.tokens += 1;
        if (dx) {
          for (int64_t v = 0; v < V; ++v) z[v] *= loss_scale;
          z[target] -= loss_scale;
        }
      }
      if (!dx) continue;
      // dxf = dz W; dW_head += dz^T xf
      mm_nn(&dxf[static_cast<size_t>(r0 * C)], logits.data(), w_.lm_head.f32(), rows, C, V, V, C, C);
      if (grads) mm_tn(grads->lm_head.f32(), logits.data(), &xf[static_cast<size_t>(r0 * C)], V, C, rows, V, C, C, 1.0f, 1.0f);
    }
    if (dx) {
      *dx = zeros(T * C);
      rmsnorm_bwd(dx->data(), grads ? grads->final_norm.f32() : nullptr, dxf.data(), x.data(), w_.final_norm.f32(),
                  rstd.data(), T, C);
    }
    return st;
  }

  // dx: gradient w.r.t. the layer's output on entry, w.r.t. its input on exit.
  void layer_backward(int64_t l, LayerCache& lc, Buf& dx, LoraWeights* lgrads, ModelWeights* grads) {
    if (opt_.gradient_checkpointing) {
      Buf out = lc.x_in;
      layer_forward(l, lc, out);
    }
    const Dims& d = d_;
    const int64_t T = d.T, C = d.C, I = d.I;
    const LayerWeights& L = w_.layers[static_cast<size_t>(l)];
    const LayerMatrices M(L);  // NF4 layers (QLoRA) are dequantised again here, one layer at a time
    LayerWeights* G = grads ? &grads->layers[static_cast<size_t>(l)] : nullptr;

    // MLP: x_out = x_mid + down(act); act = silu(g) * u; (g, u) = gate_up(xn2)
    Buf dact = zeros(T * I);
    mm_nn(dact.data(), dx.data(), M.w_down(), T, I, C, C, I, I);
    if (G) {
      mm_tn(G->w_down.f32(), dx.data(), lc.act.data(), C, I, T, C, I, I, 1.0f, 1.0f);
      if (!G->b_down.empty()) bias_grad(G->b_down.f32(), dx.data(), T, C, C, 0);
    }
    lora_backward(l, LoraTarget::kDown, lc, lc.act.data(), dx.data(), dact.data(), lgrads);
    Buf dgu = zeros(T * 2 * I);
    for (int64_t t = 0; t < T; ++t) {
      const float* g = &lc.gu[static_cast<size_t>(t * 2 * I)];
      const float* u = g + I;
      const float* da = &dact[static_cast<size_t>(t * I)];
      float* dg = &dgu[static_cast<size_t>(t * 2 * I)];
      float* du = dg + I;
      for (int64_t i = 0; i < I; ++i) {
        const float sg = 1.0f / (1.0f + std::exp(-g[i]));
        const float silu = g[i] * sg;
        du[i] = da[i] * silu;
        dg[i] = da[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
      }
    }
    Buf dxn2 = zeros(T * C);
    mm_nn(dxn2.data(), dgu.data(), M.w_gate_up(), T, C, 2 * I, 2 * I, C, C);
    if (G) {
      mm_tn(G->w_gate_up.f32(), dgu.data(), lc.xn2.data(), 2 * I, C, T, 2 * I, C, C, 1.0f, 1.0f);
      if (!G->b_gate_up.empty()) bias_grad(G->b_gate_up.f32(), dgu.data(), T, 2 * I, 2 * I, 0);
    }
    lora_backward(l, LoraTarget::kGate, lc, lc.xn2.data(), dgu.data(), dxn2.data(), lgrads);
    lora_backward(l, LoraTarget::kUp, lc, lc.xn2.data(), dgu.data(), dxn2.data(), lgrads);
    Buf dmid = zeros(T * C);
    rmsnorm_bwd(dmid.data(), G ? G->mlp_norm.f32() : nullptr, dxn2.data(), lc.x_mid.data(), L.mlp_norm.f32(),
                lc.rstd2.data(), T, C);
    for (size_t i = 0; i < dmid.size(); ++i) dmid[i] += dx[i];  // residual

    // Attention: x_mid = x_in + o(att)
    Buf datt = zeros(T * d.HD);
    mm_nn(datt.data(), dmid.data(), M.wo(), T, d.HD, C, C, d.HD, d.HD);
    if (G) {
      mm_tn(G->wo.f32(), dmid.data(), lc.att.data(), C, d.HD, T, C, d.HD, d.HD, 1.0f, 1.0f);
      if (!G->bo.empty()) bias_grad(G->bo.f32(), dmid.data(), T, C, C, 0);
    }
    lora_backward(l, LoraTarget::kO, lc, lc.att.data(), dmid.data(), datt.data(), lgrads);
    Buf dqkv = zeros(T * d.NQKV);
    attention_backward(lc, datt, dqkv);
    rope_bwd(dqkv.data(), T, d.NQKV, d.H, d.D, rope_);
    rope_bwd(dqkv.data() + d.HD, T, d.NQKV, d.KV, d.D, rope_);
    if (c_.qk_norm) {
      for (int64_t t = 0; t < T; ++t) {
        float* dq = &dqkv[static_cast<size_t>(t * d.NQKV)];
        const float* q = &lc.q_raw[static_cast<size_t>(t * d.NQKV)];
        rmsnorm_bwd(dq, G ? G->q_norm.f32() : nullptr, dq, q, L.q_norm.f32(), &lc.rstd_q[static_cast<size_t>(t * d.H)],
                    d.H, d.D);
        rmsnorm_bwd(dq + d.HD, G ? G->k_norm.f32() : nullptr, dq + d.HD, q + d.HD, L.k_norm.f32(),
                    &lc.rstd_k[static_cast<size_t>(t * d.KV)], d.KV, d.D);
      }
    }
    Buf dxn1 = zeros(T * C);
    mm_nn(dxn1.data(), dqkv.data(), M.wqkv(), T, C, d.NQKV, d.NQKV, C, C);
    if (G) {
      mm_tn(G->wqkv.f32(), dqkv.data(), lc.xn1.data(), d.NQKV, C, T, d.NQKV, C, C, 1.0f, 1.0f);
      if (!G->bqkv.empty()) bias_grad(G->bqkv.f32(), dqkv.data(), T, d.NQKV, d.NQKV, 0);
    }
    lora_backward(l, LoraTarget::kQ, lc, lc.xn1.data(), dqkv.data(), dxn1.data(), lgrads);
    lora_backward(l, LoraTarget::kK, lc, lc.xn1.data(), dqkv.data(), dxn1.data(), lgrads);
    lora_backward(l, LoraTarget::kV, lc, lc.xn1.data(), dqkv.data(), dxn1.data(), lgrads);
    Buf din = zeros(T * C);
    rmsnorm_bwd(din.data(), G ? G->attn_norm.f32() : nullptr, dxn1.data(), lc.x_in.data(), L.attn_norm.f32(),
                lc.rstd1.data(), T, C);
    for (size_t i = 0; i < din.size(); ++i) din[i] += dmid[i];
    dx = std::move(din);
    if (opt_.gradient_checkpointing) {
      Buf keep = std::move(lc.x_in);
      lc = LayerCache();
      lc.x_in = std::move(keep);
    }
  }

  void embedding_backward(const Buf& dx, ModelWeights* grads) {
    if (!grads) return;
    float* de = grads->embed.f32();
    for (int64_t t = 0; t < d_.T; ++t) {
      const float* g = &dx[static_cast<size_t>(t * d_.C)];
      float* row = de + seq_.tokens[t] * d_.C;
      for (int64_t i = 0; i < d_.C; ++i) row[i] += g[i];
    }
  }

 private:
  const LoraModule* lora_module(int64_t l, LoraTarget t) const {
    if (!lora_.weights) return nullptr;
    const LoraModule& m = lora_.weights->layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
    return m.a.empty() ? nullptr : &m;
  }

  // The LoRA branch's input: x itself, or x with inverted dropout (mask from the counter-based hash).
  const float* lora_input(int64_t l, LoraTarget t, const float* x, int64_t in, Buf& scratch) const {
    const double p = lora_.config ? lora_.config->dropout : 0.0;
    if (!opt_.training || p <= 0.0) return x;
    scratch.resize(static_cast<size_t>(d_.T * in));
    const uint64_t base = mix(opt_.dropout_seed ^ mix(static_cast<uint64_t>(l) * 16 + static_cast<uint64_t>(t)));
    const uint64_t threshold = static_cast<uint64_t>(p * 18446744073709551616.0);
    const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
    for (int64_t i = 0; i < d_.T * in; ++i) {
      const bool keep = mix(base + static_cast<uint64_t>(i)) >= threshold;
      scratch[static_cast<size_t>(i)] = keep ? x[i] * keep_scale : 0.0f;
    }
    return scratch.data();
  }

  void lora_forward(int64_t l, LoraTarget t, LayerCache& lc, const float* x, float* y) {
    const LoraModule* m = lora_module(l, t);
    if (!m) return;
    const TargetSlot s = target_slot(d_, t);
    const int64_t r = m->a.dim(0);
    Buf scratch;
    const float* xin = lora_input(l, t, x, s.in, scratch);
    Buf& xa = lc.xa[static_cast<size_t>(t)];
    xa = zeros(d_.T * r);
    mm_nt(xa.data(), xin, m->a.f32(), d_.T, r, s.in, s.in, s.in, r);
    mm_nt(y + s.col_offset, xa.data(), m->b.f32(), d_.T, s.out, r, r, r, s.out_stride, lora_scale_, 1.0f);
  }

  // dy: (T, out_stride) gradient of the fused output; dx (T, in) accumulates the branch's input gradient.
  void lora_backward(int64_t l, LoraTarget t, LayerCache& lc, const float* x, const float* dy, float* dx,
                     LoraWeights* lgrads) {
    const LoraModule* m = lora_module(l, t);
    if (!m || !lgrads) return;
    LoraModule& g = lgrads->layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
    const TargetSlot s = target_slot(d_, t);
    const int64_t r = m->a.dim(0), T = d_.T;
    const Buf& xa = lc.xa[static_cast<size_t>(t)];
    const float* dys = dy + s.col_offset;
    // dB += s * dy^T xa
    mm_tn(g.b.f32(), dys, xa.data(), s.out, r, T, s.out_stride, r, r, lora_scale_, 1.0f);
    // dxa = s * dy B
    Buf dxa = zeros(T * r);
    mm_nn(dxa.data(), dys, m->b.f32(), T, r, s.out, s.out_stride, r, r, lora_scale_, 0.0f);
    Buf scratch;
    const float* xin = lora_input(l, t, x, s.in, scratch);
    // dA += dxa^T xin
    mm_tn(g.a.f32(), dxa.data(), xin, r, s.in, T, r, s.in, s.in, 1.0f, 1.0f);
    // dx += (dxa A) * dropout mask / (1 - p)
    const double p = lora_.config ? lora_.config->dropout : 0.0;
    if (!opt_.training || p <= 0.0) {
      mm_nn(dx, dxa.data(), m->a.f32(), T, s.in, r, r, s.in, s.in, 1.0f, 1.0f);
    } else {
      Buf tmp = zeros(T * s.in);
      mm_nn(tmp.data(), dxa.data(), m->a.f32(), T, s.in, r, r, s.in, s.in);
      // The scratch holds x*mask/(1-p); the mask/(1-p) factor is scratch/x where x != 0, recomputed here.
      const uint64_t base = mix(opt_.dropout_seed ^ mix(static_cast<uint64_t>(l) * 16 + static_cast<uint64_t>(t)));
      const uint64_t threshold = static_cast<uint64_t>(p * 18446744073709551616.0);
      const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
      for (int64_t i = 0; i < T * s.in; ++i)
        if (mix(base + static_cast<uint64_t>(i)) >= threshold) dx[i] += tmp[static_cast<size_t>(i)] * keep_scale;
    }
  }

  static void bias_grad(float* db, const float* dy, int64_t rows, int64_t n, int64_t stride, int64_t offset) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) db[j] += dy[r * stride + offset + j];
  }

  static void add_bias(float* y, const Tensor& b, int64_t rows, int64_t n) {
    if (b.empty()) return;
    const float* bp = b.f32();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j) y[r * n + j] += bp[j];
  }

  int64_t key_begin(int64_t t) const {
    int64_t kb = seq_.segment_start[t];
    if (c_.sliding_window > 0) kb = std::max<int64_t>(kb, t - c_.sliding_window + 1);
    return kb;
  }

  void layer_forward(int64_t l, LayerCache& lc, Buf& x) {
    const Dims& d = d_;
    const int64_t T = d.T, C = d.C, I = d.I;
    const LayerWeights& L = w_.layers[static_cast<size_t>(l)];
    const LayerMatrices M(L);
    const KernelTable& k = kernels();
    lc.xn1 = zeros(T * C);
    lc.rstd1 = zeros(T);
    rmsnorm_fwd(lc.xn1.data(), lc.rstd1.data(), x.data(), L.attn_norm.f32(), T, C, d.eps);
    lc.qkv = zeros(T * d.NQKV);
    mm_nt(lc.qkv.data(), lc.xn1.data(), M.wqkv(), T, d.NQKV, C, C, C, d.NQKV);
    add_bias(lc.qkv.data(), L.bqkv, T, d.NQKV);
    lora_forward(l, LoraTarget::kQ, lc, lc.xn1.data(), lc.qkv.data());
    lora_forward(l, LoraTarget::kK, lc, lc.xn1.data(), lc.qkv.data());
    lora_forward(l, LoraTarget::kV, lc, lc.xn1.data(), lc.qkv.data());
    if (c_.qk_norm) {
      lc.q_raw = lc.qkv;
      lc.rstd_q = zeros(T * d.H);
      lc.rstd_k = zeros(T * d.KV);
      for (int64_t t = 0; t < T; ++t) {
        float* q = &lc.qkv[static_cast<size_t>(t * d.NQKV)];
        const float* qr = &lc.q_raw[static_cast<size_t>(t * d.NQKV)];
        rmsnorm_fwd(q, &lc.rstd_q[static_cast<size_t>(t * d.H)], qr, L.q_norm.f32(), d.H, d.D, d.eps);
        rmsnorm_fwd(q + d.HD, &lc.rstd_k[static_cast<size_t>(t * d.KV)], qr + d.HD, L.k_norm.f32(), d.KV, d.D, d.eps);
      }
    }
    rope_apply(lc.qkv.data(), T, d.NQKV, d.H, d.D, rope_);
    rope_apply(lc.qkv.data() + d.HD, T, d.NQKV, d.KV, d.D, rope_);
    // Attention, one head at a time as GEMMs: S = scale Q K^T, a masked row softmax, O = P V.
    lc.att = zeros(T * d.HD);
    Buf p(static_cast<size_t>(T * T));
    for (int64_t h = 0; h < d.H; ++h) {
      attention_probs(lc, h, p);
      const int64_t g = h / d.group;
      mm_nn(&lc.att[static_cast<size_t>(h * d.D)], p.data(), &lc.qkv[static_cast<size_t>(d.HD + d.KV * d.D + g * d.D)], T,
            d.D, T, T, d.NQKV, d.HD);
    }
    Buf tmp = zeros(T * C);
    mm_nt(tmp.data(), lc.att.data(), M.wo(), T, C, d.HD, d.HD, d.HD, C);
    add_bias(tmp.data(), L.bo, T, C);
    lora_forward(l, LoraTarget::kO, lc, lc.att.data(), tmp.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
    lc.x_mid = x;
    lc.xn2 = zeros(T * C);
    lc.rstd2 = zeros(T);
    rmsnorm_fwd(lc.xn2.data(), lc.rstd2.data(), x.data(), L.mlp_norm.f32(), T, C, d.eps);
    lc.gu = zeros(T * 2 * I);
    mm_nt(lc.gu.data(), lc.xn2.data(), M.w_gate_up(), T, 2 * I, C, C, C, 2 * I);
    add_bias(lc.gu.data(), L.b_gate_up, T, 2 * I);
    lora_forward(l, LoraTarget::kGate, lc, lc.xn2.data(), lc.gu.data());
    lora_forward(l, LoraTarget::kUp, lc, lc.xn2.data(), lc.gu.data());
    lc.act = zeros(T * I);
    for (int64_t t = 0; t < T; ++t) {
      const float* gu = &lc.gu[static_cast<size_t>(t * 2 * I)];
      k.swiglu(&lc.act[static_cast<size_t>(t * I)], gu, gu + I, I);
    }
    mm_nt(tmp.data(), lc.act.data(), M.w_down(), T, C, I, I, I, C);
    add_bias(tmp.data(), L.b_down, T, C);
    lora_forward(l, LoraTarget::kDown, lc, lc.act.data(), tmp.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
  }

  // P (T, T) for head h: scale Q_h K_g^T, each row t softmaxed over its example's keys [key_begin(t), t]
  // and zero elsewhere. Backward calls this again rather than keeping T x T per head per layer.
  void attention_probs(const LayerCache& lc, int64_t h, Buf& p) const {
    const Dims& d = d_;
    const KernelTable& k = kernels();
    const int64_t T = d.T, g = h / d.group;
    mm_nt(p.data(), &lc.qkv[static_cast<size_t>(h * d.D)], &lc.qkv[static_cast<size_t>(d.HD + g * d.D)], T, T, d.D,
          d.NQKV, d.NQKV, T, d.scale);
    ThreadPool::global().parallel_for(T, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        float* row = &p[static_cast<size_t>(t * T)];
        const int64_t kb = key_begin(t);
        std::fill(row, row + kb, 0.0f);
        k.softmax(row + kb, t + 1 - kb);
        std::fill(row + t + 1, row + T, 0.0f);
      }
    }, 16);
  }

  // Attention backward per head as GEMMs, with P recomputed:
  //   dV_g += P^T dO_h;  dP = dO_h V_g^T;  dS = P * (dP - rowsum(P * dP)) * scale;
  //   dQ_h = dS K_g;     dK_g += dS^T Q_h
  void attention_backward(const LayerCache& lc, const Buf& datt, Buf& dqkv) {
    const Dims& d = d_;
    const KernelTable& k = kernels();
    const int64_t T = d.T;
    Buf p(static_cast<size_t>(T * T)), dp(static_cast<size_t>(T * T));
    for (int64_t h = 0; h < d.H; ++h) {
      const int64_t g = h / d.group;
      const float* q = &lc.qkv[static_cast<size_t>(h * d.D)];
      const float* kk = &lc.qkv[static_cast<size_t>(d.HD + g * d.D)];
      const float* v = &lc.qkv[static_cast<size_t>(d.HD + d.KV * d.D + g * d.D)];
      const float* dout = &datt[static_cast<size_t>(h * d.D)];
      float* dq = &dqkv[static_cast<size_t>(h * d.D)];
      float* dk = &dqkv[static_cast<size_t>(d.HD + g * d.D)];
      float* dv = &dqkv[static_cast<size_t>(d.HD + d.KV * d.D + g * d.D)];
      attention_probs(lc, h, p);
      mm_tn(dv, p.data(), dout, T, d.D, T, T, d.HD, d.NQKV, 1.0f, 1.0f);
      mm_nt(dp.data(), dout, v, T, T, d.D, d.HD, d.NQKV, T);
      ThreadPool::global().parallel_for(T, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          float* pr = &p[static_cast<size_t>(t * T)];
          float* dr = &dp[static_cast<size_t>(t * T)];
          const int64_t kb = key_begin(t), n = t + 1 - kb;
          const float dsum = k.dot(pr + kb, dr + kb, n);
          for (int64_t j = kb; j <= t; ++j) dr[j] = pr[j] * (dr[j] - dsum) * d.scale;
          std::fill(dr, dr + kb, 0.0f);
          std::fill(dr + t + 1, dr + T, 0.0f);
        }
      }, 16);
      mm_nn(dq, dp.data(), kk, T, d.D, T, T, d.NQKV, d.NQKV, 1.0f, 1.0f);
      mm_tn(dk, dp.data(), q, T, d.D, T, T, d.NQKV, d.NQKV, 1.0f, 1.0f);
    }
  }

  const Model& m_;
  const ModelConfig& c_;
  const ModelWeights& w_;
  LoraRef lora_;
  const TrainSequence& seq_;
  TrainOptions opt_;
  Dims d_{};
  std::vector<float> inv_freq_;
  RopeTable rope_;
  float lora_scale_ = 1.0f;
};

}  // namespace

TrainSequence TrainSequence::single(std::vector<int32_t> tokens, std::vector<int32_t> targets) {
  TrainSequence s;
  s.append(tokens, targets);
  return s;
}

void TrainSequence::append(const std::vector<int32_t>& example_tokens, const std::vector<int32_t>& example_targets) {
  TL_CHECK(example_tokens.size() == example_targets.size());
  const int32_t start = static_cast<int32_t>(tokens.size());
  for (size_t i = 0; i < example_tokens.size(); ++i) {
    tokens.push_back(example_tokens[i]);
    targets.push_back(example_targets[i]);
    positions.push_back(static_cast<int32_t>(i));
    segment_start.push_back(start);
  }
}

ModelWeights model_zeros_like(const ModelWeights& w, bool tied) {
  auto z = [](const Tensor& t) { return t.empty() ? Tensor() : Tensor::zeros(DType::kF32, t.shape()); };
  ModelWeights g;
  g.embed = z(w.embed);
  g.final_norm = z(w.final_norm);
  g.lm_head = tied ? g.embed : z(w.lm_head);
  for (const LayerWeights& L : w.layers) {
    LayerWeights G;
    G.attn_norm = z(L.attn_norm);
    G.wqkv = z(L.wqkv);
    G.bqkv = z(L.bqkv);
    G.wo = z(L.wo);
    G.bo = z(L.bo);
    G.q_norm = z(L.q_norm);
    G.k_norm = z(L.k_norm);
    G.mlp_norm = z(L.mlp_norm);
    G.w_gate_up = z(L.w_gate_up);
    G.b_gate_up = z(L.b_gate_up);
    G.w_down = z(L.w_down);
    G.b_down = z(L.b_down);
    g.layers.push_back(std::move(G));
  }
  return g;
}

Result<StepStats> forward_backward(const Model& model, LoraRef lora, LoraWeights* lora_grads, ModelWeights* full_grads,
                                   const TrainSequence& seq, float loss_scale, const TrainOptions& options) {
  Pass pass(model, lora, seq, options);
  TL_TRY(pass.validate());
  std::vector<LayerCache> caches;
  Buf x;
  pass.forward(caches, x);
  Buf dx;
  StepStats st = pass.head(x, &dx, loss_scale, full_grads);
  if (st.tokens == 0) return st;
  for (int64_t l = model.config().num_layers - 1; l >= 0; --l) {
    pass.layer_backward(l, caches[static_cast<size_t>(l)], dx, lora_grads, full_grads);
  }
  pass.embedding_backward(dx, full_grads);
  return st;
}

Result<StepStats> sequence_loss(const Model& model, LoraRef lora, const TrainSequence& seq) {
  TrainOptions opt;
  opt.training = false;
  opt.gradient_checkpointing = true;  // keeps only layer inputs: evaluation needs no activations
  Pass pass(model, lora, seq, opt);
  TL_TRY(pass.validate());
  std::vector<LayerCache> caches;
  Buf x;
  pass.forward(caches, x);
  return pass.head(x, nullptr, 0.0f, nullptr);
}

}  // namespace tl
