#include "model/train_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <span>

#include "core/check.h"
#include "tensor/amx.h"
#include "tensor/blas.h"
#include "tensor/kernels.h"
#include "tensor/matmul.h"
#include "tensor/rope.h"
#include "tensor/scratch.h"
#include "tensor/thread_pool.h"

namespace tl {

namespace {

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
  parallel_rows(rows, dim, [&](int64_t b, int64_t e) {
    k.rmsnorm_rstd(out + b * dim, rstd + b, in + b * dim, w, e - b, dim, eps);
  });
}

// y = w * x * r, r = (mean(x^2) + eps)^-1/2:
//   dx = r * (w dy) - r^3 / dim * x * sum(w dy x);  dw += sum_rows dy * x * r
// dx is assigned (may alias dy), plus `residual` (may be null) added in the same pass; dw may be null
// (frozen).
void rmsnorm_bwd(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd, int64_t rows,
                 int64_t dim, const float* residual = nullptr) {
  // dw first: dx may alias dy. Columns split across threads, rows summed in order (deterministic).
  if (dw) {
    parallel_rows(dim, rows, [&](int64_t b, int64_t e) {
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * dim;
        const float* dyr = dy + r * dim;
        const float rs = rstd[r];
        for (int64_t i = b; i < e; ++i) dw[i] += dyr[i] * xr[i] * rs;
      }
    }, 64);
  }
  const KernelTable& k = kernels();
  parallel_rows(rows, dim, [&](int64_t b, int64_t e) {
    k.rmsnorm_backward(dx + b * dim, dy + b * dim, x + b * dim, w, rstd + b, e - b, dim);
    if (residual) k.axpy(dx + b * dim, 1.0f, residual + b * dim, (e - b) * dim);
  });
}

// Up to this rank one pass over dy (kernels().lora_dy) beats OpenBLAS's two skinny GEMMs, which read dy
// twice: LoRA backward time -21%, -26% and -7% at r = 8, 16 and 32 on the bench model; at 48 and 64 the
// GEMMs, r columns wide, were 20-30% faster.
constexpr int64_t kOnePassMaxRank = 32;

// dxa (T, r; rows ldxa apart) = s dy B and dB += s dy^T xa, for a LoRA branch with B (n, r). In one pass:
// rows go in fixed blocks to the thread pool, each block's dy^T xa into its own partial, and the
// partials are added in block order, so dB does not depend on the thread count or the schedule.
void lora_dy_products(float* dxa, int64_t ldxa, float* db, const float* dy, int64_t lddy, const float* b,
                      const float* xa, int64_t ldx, int64_t T, int64_t n, int64_t r, float s) {
  if (r > kOnePassMaxRank) {
    mm_tn(db, dy, xa, n, r, T, lddy, ldx, r, s, 1.0f);
    mm_nn(dxa, dy, b, T, r, n, lddy, r, ldxa, s, 0.0f);
    return;
  }
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (T + kBlock - 1) / kBlock, ld = (r + 15) / 16 * 16, nld = n * ld;  // padded rows
  const KernelTable& k = kernels();
  Scratch part = uninit(blocks * nld);
  parallel_rows(blocks, kBlock * n * r, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; ++bi) {
      float* pb = &part[static_cast<size_t>(bi * nld)];
      std::fill(pb, pb + nld, 0.0f);
      const int64_t t0 = bi * kBlock;
      k.lora_dy(dxa + t0 * ldxa, ldxa, pb, ld, dy + t0 * lddy, lddy, b, xa + t0 * ldx, ldx, std::min(kBlock, T - t0),
                n, r, s);
    }
  }, 1);
  parallel_rows(n, blocks * r, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j)
      for (int64_t c = 0; c < r; ++c) {
        float sum = part[static_cast<size_t>(j * ld + c)];
        for (int64_t bi = 1; bi < blocks; ++bi) sum += part[static_cast<size_t>(bi * nld + j * ld + c)];
        db[j * r + c] += s * sum;
      }
  });
}

// y (rows, n) += x (rows, n), rows in parallel.
void add_rows(float* y, const float* x, int64_t rows, int64_t n) {
  const KernelTable& k = kernels();
  parallel_rows(rows, n, [&](int64_t b, int64_t e) { k.axpy(y + b * n, 1.0f, x + b * n, (e - b) * n); });
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
  Scratch x_in;           // (T, C) residual stream entering the layer
  Scratch xn1, rstd1;     // (T, C), (T)
  Scratch q_raw, rstd_q, rstd_k;  // qwen3: (T, NQKV) before q/k norm; (T*H), (T*KV)
  Scratch qkv;            // (T, NQKV) after bias, q/k norm and RoPE
  Scratch att;            // (T, HD)
  Scratch x_mid;          // (T, C) after the attention residual
  Scratch xn2, rstd2;     // (T, C), (T)
  Scratch gu;             // (T, 2I) gate and up before the activation
  Scratch act;            // (T, I)
  std::array<Scratch, kLoraTargetCount> xa;  // (T, r) LoRA intermediate per target
  std::array<Scratch, 2> xa_group;           // (T, n r) for the q/k/v and gate/up groups (see lora_forward_group)
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
  void forward(std::vector<LayerCache>& caches, Scratch& x) {
    const int64_t T = d_.T, C = d_.C;
    x = uninit(T * C);
    gather_rows(x.data(), weight_ref(w_.embed), seq_.tokens.data(), T);
    caches.resize(static_cast<size_t>(c_.num_layers));
    for (int64_t l = 0; l < c_.num_layers; ++l) {
      LayerCache& lc = caches[static_cast<size_t>(l)];
      lc.x_in = x;
      layer_forward(l, lc, x);
      if (opt_.gradient_checkpointing) {
        Scratch keep = std::move(lc.x_in);
        lc = LayerCache();
        lc.x_in = std::move(keep);
      }
    }
  }

  // Chunked output head + cross-entropy. Accumulates dx_final (T, C) when `backward`.
  //
  // Only the rows that have a target go through the final norm and the head: a chat example trains on
  // its assistant turns, so the system prompt and the user's turns, often most of a sequence, would each
  // compute a vocabulary of logits only to zero them. The other rows get a zero gradient. Each kept row
  // gets the same sums as with every row present (the packed GEMMs' chains do not depend on the row
  // count), so LoRA's loss and gradients are unchanged bit for bit; full fine-tuning's head gradient, a
  // sum over rows in OpenBLAS, may round differently now that the zero rows are gone.
  //
  // With `scales`, each packed example's loss scale is chosen from the examples' loss sums. A row's
  // input gradient is linear in its scale, s (p - e_target) W, so one sweep keeps (p - e_target) W per
  // row (n x C, small) and scales it once the scales are known. The head's weight gradient (full
  // fine-tuning) sums rows of different scales into one (V, C) matrix, so there the logits are computed
  // twice: once for the losses, once (after the scales) for the gradient.
  // `example_loss` (may be null) receives each packed example's loss sum, in order.
  StepStats head(const Scratch& x, Scratch* dx, float loss_scale, ModelWeights* grads,
                 const ExampleScales* scales = nullptr, std::vector<double>* example_loss = nullptr) {
    const int64_t T = d_.T, C = d_.C, V = c_.vocab_size;
    const KernelTable& k = kernels();
    std::vector<int32_t> kept;      // the rows with a target, in order
    std::vector<int32_t> kept_ex;   // the packed example each kept row belongs to
    int32_t examples = 0;
    for (int64_t t = 0; t < T; ++t) {
      if (seq_.segment_start[static_cast<size_t>(t)] == t) ++examples;
      if (seq_.targets[static_cast<size_t>(t)] >= 0) {
        kept.push_back(static_cast<int32_t>(t));
        kept_ex.push_back(examples - 1);
      }
    }
    const int64_t n = static_cast<int64_t>(kept.size());
    Scratch xk;  // (n, C) x's kept rows, when some are left out
    if (n < T) {
      xk = uninit(n * C);
      gather_rows(xk.data(), WeightRef::of_f32(x.data(), T, C), kept.data(), n);
    }
    const float* xin = n < T ? xk.data() : x.data();
    Scratch xf = uninit(n * C), rstd = uninit(n);
    rmsnorm_fwd(xf.data(), rstd.data(), xin, w_.final_norm.f32(), n, C, d_.eps);
    Scratch dxf = dx ? zeros(n * C) : Scratch();
    StepStats st;
    // Rows per chunk: each chunk's two GEMMs stream (unpacked: transpose) the whole (V, C) head, so
    // fewer, larger chunks are faster; ~16 MB of logits per chunk, at least 64 rows.
    const int64_t chunk = std::max<int64_t>(64, (int64_t{1} << 22) / V / 16 * 16);
    const WeightRef head_w = head_ref(w_);
    Scratch logits = uninit(std::min(chunk, n) * V);
    std::vector<double> row_loss(static_cast<size_t>(n));
    std::vector<float> row_scale;  // per kept row, when `scales` chose them
    // One sweep unless the head's weight gradient needs the scales inside its sum: the rows' gradients
    // unscaled (scale 1), scaled once the scales are known.
    const bool scale_after = dx && scales && !grads;
    // One sweep over the kept rows: the losses, and with `backward` the gradient of the scaled losses.
    auto sweep = [&](bool backward) {
      for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        const int64_t rows = std::min(chunk, n - r0);
        matmul_xwt(logits.data(), &xf[static_cast<size_t>(r0 * C)], head_w, rows, C, V);
        parallel_rows(rows, V, [&](int64_t rb, int64_t re) {
          for (int64_t r = rb; r < re; ++r) {
            float* z = &logits[static_cast<size_t>(r * V)];
            const int32_t target = seq_.targets[static_cast<size_t>(kept[static_cast<size_t>(r0 + r)])];
            // Vectorised softmax gives p; the loss is -log p[target], except where p[target] underflows
            // f32, where the row is recomputed and the loss taken from an exact double log-sum-exp.
            k.softmax(z, V, 1.0f);
            const double pt = z[target];
            double& loss = row_loss[static_cast<size_t>(r0 + r)];
            if (pt > 1e-30) {
              loss = -std::log(pt);
            } else {
              std::vector<float> raw(static_cast<size_t>(V));
              matvec(raw.data(), head_w, &xf[static_cast<size_t>((r0 + r) * C)], nullptr);
              const float mx = *std::max_element(raw.begin(), raw.end());
              double sum = 0;
              for (float v : raw) sum += std::exp(static_cast<double>(v - mx));
              loss = mx + std::log(sum) - raw[static_cast<size_t>(target)];
            }
            if (backward) {
              const float s = scale_after ? 1.0f : row_scale.empty() ? loss_scale : row_scale[static_cast<size_t>(r0 + r)];
              for (int64_t v = 0; v < V; ++v) z[v] *= s;
              z[target] -= s;
            }
          }
        });
        if (!backward) continue;
        // dxf = dz W; dW_head += dz^T xf
        matmul_dyw(&dxf[static_cast<size_t>(r0 * C)], logits.data(), head_w, rows, V, C);
        if (grads) mm_tn(grads->lm_head.f32(), logits.data(), &xf[static_cast<size_t>(r0 * C)], V, C, rows, V, C, C, 1.0f, 1.0f);
      }
    };
    sweep(dx && (!scales || scale_after));
    // Summed in row order, so the loss does not depend on how rows were split across threads.
    for (int64_t r = 0; r < n; ++r) st.loss_sum += row_loss[static_cast<size_t>(r)];
    st.tokens = n;
    std::vector<double> ex_loss(static_cast<size_t>(examples), 0.0);
    for (int64_t r = 0; r < n; ++r) ex_loss[static_cast<size_t>(kept_ex[static_cast<size_t>(r)])] += row_loss[static_cast<size_t>(r)];
    if (dx && scales) {
      const std::vector<float> s = (*scales)(ex_loss);
      TL_CHECK(s.size() == ex_loss.size());
      row_scale.resize(static_cast<size_t>(n));
      for (int64_t r = 0; r < n; ++r) row_scale[static_cast<size_t>(r)] = s[static_cast<size_t>(kept_ex[static_cast<size_t>(r)])];
      if (scale_after) {
        parallel_rows(n, C, [&](int64_t rb, int64_t re) {
          for (int64_t r = rb; r < re; ++r) {
            float* row = &dxf[static_cast<size_t>(r * C)];
            const float sr = row_scale[static_cast<size_t>(r)];
            for (int64_t c = 0; c < C; ++c) row[c] *= sr;
          }
        });
      } else {
        sweep(true);
      }
    }
    if (example_loss) *example_loss = std::move(ex_loss);
    if (dx) {
      Scratch dk = uninit(n * C);
      rmsnorm_bwd(dk.data(), grads ? grads->final_norm.f32() : nullptr, dxf.data(), xin, w_.final_norm.f32(),
                  rstd.data(), n, C);
      if (n == T) {
        *dx = std::move(dk);
      } else {
        *dx = zeros(T * C);
        for (int64_t i = 0; i < n; ++i)
          std::memcpy(&(*dx)[static_cast<size_t>(kept[static_cast<size_t>(i)] * C)], &dk[static_cast<size_t>(i * C)],
                      static_cast<size_t>(C) * 4);
      }
    }
    return st;
  }

  // dx: gradient w.r.t. the layer's output on entry, w.r.t. its input on exit.
  void layer_backward(int64_t l, LayerCache& lc, Scratch& dx, LoraWeights* lgrads, ModelWeights* grads) {
    if (opt_.gradient_checkpointing) {
      Scratch out = lc.x_in;
      layer_forward(l, lc, out);
    }
    const Dims& d = d_;
    const int64_t T = d.T, C = d.C, I = d.I;
    const LayerWeights& L = w_.layers[static_cast<size_t>(l)];
    const LayerMatrices M(L);  // NF4 layers (QLoRA) are dequantised block by block inside each GEMM
    LayerWeights* G = grads ? &grads->layers[static_cast<size_t>(l)] : nullptr;

    // MLP: x_out = x_mid + down(act); act = silu(g) * u; (g, u) = gate_up(xn2)
    Scratch dact = uninit(T * I);
    const bool fold_down = folds(M.w_down()) && lgrads && lora_module(l, LoraTarget::kDown);
    if (!fold_down) matmul_dyw(dact.data(), dx.data(), M.w_down(), T, C, I);
    if (G) {
      mm_tn(G->w_down.f32(), dx.data(), lc.act.data(), C, I, T, C, I, I, 1.0f, 1.0f);
      if (!G->b_down.empty()) bias_grad(G->b_down.f32(), dx.data(), T, C, C, 0);
    }
    lora_backward(l, LoraTarget::kDown, lc, lc.act.data(), dx.data(), dact.data(), lgrads,
                  fold_down ? &M.w_down() : nullptr);
    Scratch dgu = uninit(T * 2 * I);
    const KernelTable& k = kernels();
    parallel_rows(T, I, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const float* g = &lc.gu[static_cast<size_t>(t * 2 * I)];
        float* dg = &dgu[static_cast<size_t>(t * 2 * I)];
        k.swiglu_backward(dg, dg + I, &dact[static_cast<size_t>(t * I)], g, g + I, I);
      }
    });
    Scratch dxn2 = uninit(T * C);
    const bool fold_gu = lgrads && folds_group(l, 1, M.w_gate_up());
    if (!fold_gu) matmul_dyw(dxn2.data(), dgu.data(), M.w_gate_up(), T, 2 * I, C);
    if (G) {
      mm_tn(G->w_gate_up.f32(), dgu.data(), lc.xn2.data(), 2 * I, C, T, 2 * I, C, C, 1.0f, 1.0f);
      if (!G->b_gate_up.empty()) bias_grad(G->b_gate_up.f32(), dgu.data(), T, 2 * I, 2 * I, 0);
    }
    lora_backward_group(l, 1, lc, lc.xn2.data(), dgu.data(), dxn2.data(), lgrads, fold_gu ? &M.w_gate_up() : nullptr);
    Scratch dmid = uninit(T * C);
    rmsnorm_bwd(dmid.data(), G ? G->mlp_norm.f32() : nullptr, dxn2.data(), lc.x_mid.data(), L.mlp_norm.f32(),
                lc.rstd2.data(), T, C, /*residual=*/dx.data());

    // Attention: x_mid = x_in + o(att)
    Scratch datt = uninit(T * d.HD);
    const bool fold_o = folds(M.wo()) && lgrads && lora_module(l, LoraTarget::kO);
    if (!fold_o) matmul_dyw(datt.data(), dmid.data(), M.wo(), T, C, d.HD);
    if (G) {
      mm_tn(G->wo.f32(), dmid.data(), lc.att.data(), C, d.HD, T, C, d.HD, d.HD, 1.0f, 1.0f);
      if (!G->bo.empty()) bias_grad(G->bo.f32(), dmid.data(), T, C, C, 0);
    }
    lora_backward(l, LoraTarget::kO, lc, lc.att.data(), dmid.data(), datt.data(), lgrads, fold_o ? &M.wo() : nullptr);
    Scratch dqkv = uninit(T * d.NQKV);
    attention_backward(lc, datt, dqkv);
    rope_apply_inverse(dqkv.data(), T, d.NQKV, d.H, d.D, rope_);
    rope_apply_inverse(dqkv.data() + d.HD, T, d.NQKV, d.KV, d.D, rope_);
    if (c_.qk_norm) {
      // Serial over tokens: the q/k norm weight gradients accumulate across them.
      for (int64_t t = 0; t < T; ++t) {
        float* dq = &dqkv[static_cast<size_t>(t * d.NQKV)];
        const float* q = &lc.q_raw[static_cast<size_t>(t * d.NQKV)];
        rmsnorm_bwd(dq, G ? G->q_norm.f32() : nullptr, dq, q, L.q_norm.f32(), &lc.rstd_q[static_cast<size_t>(t * d.H)],
                    d.H, d.D);
        rmsnorm_bwd(dq + d.HD, G ? G->k_norm.f32() : nullptr, dq + d.HD, q + d.HD, L.k_norm.f32(),
                    &lc.rstd_k[static_cast<size_t>(t * d.KV)], d.KV, d.D);
      }
    }
    // Below layer 0 is the embedding, which only full fine-tuning trains: without it the layer's input
    // gradient (a GEMM over the qkv weights, the LoRA A term, the norm's backward) has no reader.
    const bool input_grad = l > 0 || grads;
    Scratch dxn1 = input_grad ? uninit(T * C) : Scratch();
    const bool fold_qkv = input_grad && lgrads && folds_group(l, 0, M.wqkv());
    if (input_grad && !fold_qkv) matmul_dyw(dxn1.data(), dqkv.data(), M.wqkv(), T, d.NQKV, C);
    if (G) {
      mm_tn(G->wqkv.f32(), dqkv.data(), lc.xn1.data(), d.NQKV, C, T, d.NQKV, C, C, 1.0f, 1.0f);
      if (!G->bqkv.empty()) bias_grad(G->bqkv.f32(), dqkv.data(), T, d.NQKV, d.NQKV, 0);
    }
    lora_backward_group(l, 0, lc, lc.xn1.data(), dqkv.data(), input_grad ? dxn1.data() : nullptr, lgrads,
                        fold_qkv ? &M.wqkv() : nullptr);
    if (input_grad) {
      Scratch din = uninit(T * C);
      rmsnorm_bwd(din.data(), G ? G->attn_norm.f32() : nullptr, dxn1.data(), lc.x_in.data(), L.attn_norm.f32(),
                  lc.rstd1.data(), T, C, /*residual=*/dmid.data());
      dx = std::move(din);
    } else {
      dx = Scratch();
    }
    if (opt_.gradient_checkpointing) {
      Scratch keep = std::move(lc.x_in);
      lc = LayerCache();
      lc.x_in = std::move(keep);
    }
  }

  void embedding_backward(const Scratch& dx, ModelWeights* grads) {
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

  // training.precision: bf16 runs LoRA inside the frozen base's tile GEMMs (tensor/amx.h AmxLowRank):
  // its first product (x A^T, dy B) from that GEMM's own tiles of the input, its second (s xa B^T,
  // dxa A) as a low-rank term of the GEMM's sum, instead of passes of their own over the (T, in) input
  // and the (T, out) output; its weight gradients as bf16 products (amx_gemm_tn). Not under dropout,
  // where the branch's input is not the base's.
  bool folds(const WeightRef& w) const {
    return bf16_ && on_amx(w) && !(opt_.training && lora_.config && lora_.config->dropout > 0.0);
  }
  bool folds_group(int64_t l, int gi, const WeightRef& w) const {
    if (!folds(w)) return false;
    const Group g = lora_group(l, gi);
    return g.n > 0 && !g.one_by_one;
  }

  // The LoRA branch's input: x itself, or x with inverted dropout (mask from the counter-based hash).
  const float* lora_input(int64_t l, LoraTarget t, const float* x, int64_t in, Scratch& scratch) const {
    const double p = lora_.config ? lora_.config->dropout : 0.0;
    if (!opt_.training || p <= 0.0) return x;
    scratch.resize(static_cast<size_t>(d_.T * in));
    const uint64_t base = mix(opt_.dropout_seed ^ mix(static_cast<uint64_t>(l) * 16 + static_cast<uint64_t>(t)));
    const uint64_t threshold = static_cast<uint64_t>(p * 18446744073709551616.0);
    const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
    parallel_rows(d_.T, in, [&](int64_t b, int64_t e) {
      for (int64_t i = b * in; i < e * in; ++i) {
        const bool keep = mix(base + static_cast<uint64_t>(i)) >= threshold;
        scratch[static_cast<size_t>(i)] = keep ? x[i] * keep_scale : 0.0f;
      }
    });
    return scratch.data();
  }

  // With `base_w` (folds()), y is assigned (or with `accumulate` added) x W^T with the branch's s xa B^T
  // folded into that GEMM.
  void lora_forward(int64_t l, LoraTarget t, LayerCache& lc, const float* x, float* y, const WeightRef* base_w = nullptr,
                    bool accumulate = false) {
    const LoraModule* m = lora_module(l, t);
    if (!m) return;
    const TargetSlot s = target_slot(d_, t);
    const int64_t r = m->a.dim(0);
    Scratch scratch;
    const float* xin = lora_input(l, t, x, s.in, scratch);
    Scratch& xa = lc.xa[static_cast<size_t>(t)];
    xa = uninit(d_.T * r);
    if (base_w) {
      // xa = x A^T from the base GEMM's own bf16 tiles of x, then its term.
      AmxLowRank term{nullptr, r, m->b.f32(), r, r, /*per_output=*/true, lora_scale_};
      term.a = m->a.f32();
      term.lda = s.in;
      term.xa = xa.data();
      matmul_xwt_low_rank(y, x, *base_w, d_.T, s.in, s.out_stride, term, accumulate);
      return;
    }
    mm_nt(xa.data(), xin, m->a.f32(), d_.T, r, s.in, s.in, s.in, r);
    mm_nt(y + s.col_offset, xa.data(), m->b.f32(), d_.T, s.out, r, r, r, s.out_stride, lora_scale_, 1.0f);
  }

  // dy: (T, out_stride) gradient of the fused output; dx (T, in) accumulates the branch's input gradient
  // (null: not wanted).
  // With `base_w` (folds()), dx is assigned dy W with the branch's dxa A folded into that GEMM.
  void lora_backward(int64_t l, LoraTarget t, LayerCache& lc, const float* x, const float* dy, float* dx,
                     LoraWeights* lgrads, const WeightRef* base_w = nullptr) {
    const LoraModule* m = lora_module(l, t);
    if (!m || !lgrads) return;
    LoraModule& g = lgrads->layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
    const TargetSlot s = target_slot(d_, t);
    const int64_t r = m->a.dim(0), T = d_.T;
    const Scratch& xa = lc.xa[static_cast<size_t>(t)];
    const float* dys = dy + s.col_offset;
    if (base_w) {
      // On the tile unit: dxa = dy B from the base GEMM's tiles of dy, dx = dy W + s dxa A in that GEMM,
      // then the weight gradients from bf16 operands.
      Scratch dxa = uninit(T * r);
      AmxLowRank term{nullptr, r, m->a.f32(), s.in, r, /*per_output=*/false, lora_scale_};
      term.a = m->b.f32();
      term.lda = r;
      term.xa = dxa.data();
      matmul_dyw_low_rank(dx, dy, *base_w, T, s.out_stride, s.in, term);
      lora_weight_grads(dxa.data(), r, xa.data(), r, dys, s.out_stride, x, s.in, s.out, s.in, r, g.b.f32(), g.a.f32());
      return;
    }
    // dxa = s * dy B;  dB += s * dy^T xa
    Scratch dxa = uninit(T * r);
    lora_dy_products(dxa.data(), r, g.b.f32(), dys, s.out_stride, m->b.f32(), xa.data(), r, T, s.out, r, lora_scale_);
    Scratch scratch;
    const float* xin = lora_input(l, t, x, s.in, scratch);
    // dA += dxa^T xin
    mm_tn(g.a.f32(), dxa.data(), xin, r, s.in, T, r, s.in, s.in, 1.0f, 1.0f);
    if (!dx) return;
    // dx += (dxa A) * dropout mask / (1 - p)
    const double p = lora_.config ? lora_.config->dropout : 0.0;
    if (!opt_.training || p <= 0.0) {
      mm_nn(dx, dxa.data(), m->a.f32(), T, s.in, r, r, s.in, s.in, 1.0f, 1.0f);
    } else {
      Scratch tmp = uninit(T * s.in);
      mm_nn(tmp.data(), dxa.data(), m->a.f32(), T, s.in, r, r, s.in, s.in);
      // The scratch holds x*mask/(1-p); the mask/(1-p) factor is scratch/x where x != 0, recomputed here.
      const uint64_t base = mix(opt_.dropout_seed ^ mix(static_cast<uint64_t>(l) * 16 + static_cast<uint64_t>(t)));
      const uint64_t threshold = static_cast<uint64_t>(p * 18446744073709551616.0);
      const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
      parallel_rows(T, s.in, [&](int64_t b, int64_t e) {
        for (int64_t i = b * s.in; i < e * s.in; ++i)
          if (mix(base + static_cast<uint64_t>(i)) >= threshold) dx[i] += tmp[static_cast<size_t>(i)] * keep_scale;
      });
    }
  }

  // Targets that read the same input: group 0 is q/k/v (input xn1), group 1 gate/up (input xn2). Their
  // A matrices are stacked so that one GEMM gives every x A^T, one every dA and one the input gradient,
  // instead of a pass over the (T, in) input per target (OpenBLAS packs it each time). With dropout each
  // target sees its own mask, so the group falls back to one target at a time.
  struct Group {
    std::array<LoraTarget, 3> targets{};
    std::array<const LoraModule*, 3> modules{};
    int n = 0;                // present targets
    bool one_by_one = false;  // dropout or unequal ranks: no shared GEMMs
    int64_t r = 0, in = 0;
  };

  // The group's present modules.
  Group lora_group(int64_t l, int gi) const {
    static constexpr std::array<LoraTarget, 3> kQkv = {LoraTarget::kQ, LoraTarget::kK, LoraTarget::kV};
    static constexpr std::array<LoraTarget, 2> kGateUp = {LoraTarget::kGate, LoraTarget::kUp};
    const std::span<const LoraTarget> all = gi == 0 ? std::span<const LoraTarget>(kQkv) : std::span<const LoraTarget>(kGateUp);
    Group g;
    g.one_by_one = opt_.training && lora_.config && lora_.config->dropout > 0.0;
    for (LoraTarget t : all) {
      const LoraModule* m = lora_module(l, t);
      if (!m) continue;
      if (g.n > 0 && m->a.dim(0) != g.r) g.one_by_one = true;
      g.r = m->a.dim(0);
      g.targets[static_cast<size_t>(g.n)] = t;
      g.modules[static_cast<size_t>(g.n)] = m;
      ++g.n;
    }
    g.in = target_slot(d_, all[0]).in;
    return g;
  }

  // (n, R): each target's B in its outputs' rows and its own r columns, zero elsewhere; the group's B
  // for a fused output n wide.
  Scratch block_diagonal_b(const Group& g, int64_t n, int64_t R) const {
    Scratch v = zeros(n * R);
    for (int i = 0; i < g.n; ++i) {
      const TargetSlot s = target_slot(d_, g.targets[static_cast<size_t>(i)]);
      const float* b = g.modules[static_cast<size_t>(i)]->b.f32();
      for (int64_t o = 0; o < s.out; ++o)
        std::memcpy(&v[static_cast<size_t>((s.col_offset + o) * R + i * g.r)], b + o * g.r, static_cast<size_t>(g.r) * 4);
    }
    return v;
  }

  // db (out, r) += s dy^T xa, computed as its transpose s xa^T dy (r, out) on the tile unit (dy, the big
  // operand, packed in parallel; xa, r wide, converted transposed).
  void add_transposed_grad(float* db, const float* xa, int64_t ldxa, const float* dy, int64_t lddy, int64_t out,
                           int64_t r) const {
    Scratch dbt = uninit(r * out);
    amx_gemm_tn(dbt.data(), out, r, out, d_.T, xa, ldxa, dy, lddy, lora_scale_, false);
    parallel_rows(out, r, [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o)
        for (int64_t c = 0; c < r; ++c) db[o * r + c] += dbt[static_cast<size_t>(c * out + o)];
    }, 256);
  }

  // A single target's weight gradients on the tile unit: dB += s dy^T xa, dA += s dxa^T x, for dxa the
  // unscaled dy B.
  void lora_weight_grads(const float* dxa, int64_t lddxa, const float* xa, int64_t ldxa, const float* dy, int64_t lddy,
                         const float* x, int64_t ldx, int64_t out, int64_t in, int64_t r, float* db, float* da) const {
    add_transposed_grad(db, xa, ldxa, dy, lddy, out, r);
    amx_gemm_tn(da, in, r, in, d_.T, dxa, lddxa, x, ldx, lora_scale_, true);
  }

  Scratch stacked_a(const Group& g) const {
    Scratch a = uninit(g.n * g.r * g.in);
    for (int i = 0; i < g.n; ++i)
      std::memcpy(&a[static_cast<size_t>(i * g.r * g.in)], g.modules[static_cast<size_t>(i)]->a.f32(),
                  static_cast<size_t>(g.r * g.in) * 4);
    return a;
  }

  // With `base_w` (folds_group()), y is assigned x W^T with every target's s xa B^T folded into that GEMM.
  void lora_forward_group(int64_t l, int gi, LayerCache& lc, const float* x, float* y, const WeightRef* base_w = nullptr) {
    const Group g = lora_group(l, gi);
    if (g.one_by_one) {
      for (int i = 0; i < g.n; ++i) lora_forward(l, g.targets[static_cast<size_t>(i)], lc, x, y);
      return;
    }
    if (g.n == 0) return;
    const int64_t T = d_.T, R = g.n * g.r;
    const Scratch a = stacked_a(g);
    Scratch& xa = lc.xa_group[static_cast<size_t>(gi)];
    xa = uninit(T * R);
    if (base_w) {
      // One term for the group, V the block-diagonal B.
      const int64_t n = base_w->rows;
      const Scratch v = block_diagonal_b(g, n, R);
      // xa = x A^T (stacked) from the base GEMM's own bf16 tiles of x, then the term.
      AmxLowRank term{nullptr, R, v.data(), R, R, /*per_output=*/true, lora_scale_};
      term.a = a.data();
      term.lda = g.in;
      term.xa = xa.data();
      matmul_xwt_low_rank(y, x, *base_w, T, g.in, n, term);
      return;
    }
    mm_nt(xa.data(), x, a.data(), T, R, g.in, g.in, g.in, R);
    for (int i = 0; i < g.n; ++i) {
      const TargetSlot s = target_slot(d_, g.targets[static_cast<size_t>(i)]);
      mm_nt(y + s.col_offset, xa.data() + i * g.r, g.modules[static_cast<size_t>(i)]->b.f32(), T, s.out, g.r, R, g.r,
            s.out_stride, lora_scale_, 1.0f);
    }
  }

  // With `base_w` (folds_group()), dx is assigned dy W with the group's dxa A folded into that GEMM.
  void lora_backward_group(int64_t l, int gi, LayerCache& lc, const float* x, const float* dy, float* dx,
                           LoraWeights* lgrads, const WeightRef* base_w = nullptr) {
    if (!lgrads) return;
    const Group g = lora_group(l, gi);
    if (g.one_by_one) {
      for (int i = 0; i < g.n; ++i) lora_backward(l, g.targets[static_cast<size_t>(i)], lc, x, dy, dx, lgrads);
      return;
    }
    if (g.n == 0) return;
    const int64_t T = d_.T, R = g.n * g.r;
    const Scratch& xa = lc.xa_group[static_cast<size_t>(gi)];
    Scratch dxa = uninit(T * R);
    if (base_w) {
      // On the tile unit, as lora_backward: dxa = dy B (B the forward's block-diagonal V) from the base
      // GEMM's tiles of dy, dx = dy W + s dxa A (stacked) in that GEMM, then each target's dB and the
      // stacked dA from bf16 operands.
      const int64_t n = base_w->rows;
      const Scratch bd = block_diagonal_b(g, n, R);
      const Scratch a = stacked_a(g);
      AmxLowRank term{nullptr, R, a.data(), g.in, R, /*per_output=*/false, lora_scale_};
      term.a = bd.data();
      term.lda = R;
      term.xa = dxa.data();
      matmul_dyw_low_rank(dx, dy, *base_w, T, n, g.in, term);
      Scratch da = uninit(R * g.in);
      amx_gemm_tn(da.data(), g.in, R, g.in, T, dxa.data(), R, x, g.in, lora_scale_, false);
      for (int i = 0; i < g.n; ++i) {
        const TargetSlot s = target_slot(d_, g.targets[static_cast<size_t>(i)]);
        LoraModule& gm = lgrads->layers[static_cast<size_t>(l)][static_cast<size_t>(g.targets[static_cast<size_t>(i)])];
        add_transposed_grad(gm.b.f32(), xa.data() + i * g.r, R, dy + s.col_offset, n, s.out, g.r);
        kernels().axpy(gm.a.f32(), 1.0f, &da[static_cast<size_t>(i * g.r * g.in)], g.r * g.in);
      }
      return;
    }
    for (int i = 0; i < g.n; ++i) {
      const TargetSlot s = target_slot(d_, g.targets[static_cast<size_t>(i)]);
      LoraModule& gm = lgrads->layers[static_cast<size_t>(l)][static_cast<size_t>(g.targets[static_cast<size_t>(i)])];
      const float* dys = dy + s.col_offset;
      // dxa = s * dy B;  dB += s * dy^T xa
      lora_dy_products(dxa.data() + i * g.r, R, gm.b.f32(), dys, s.out_stride, g.modules[static_cast<size_t>(i)]->b.f32(),
                       xa.data() + i * g.r, R, T, s.out, g.r, lora_scale_);
    }
    // dA (stacked) = dxa^T x, added to each target's gradient; dx += dxa A
    Scratch da = uninit(R * g.in);
    mm_tn(da.data(), dxa.data(), x, R, g.in, T, R, g.in, g.in);
    const KernelTable& k = kernels();
    for (int i = 0; i < g.n; ++i) {
      LoraModule& gm = lgrads->layers[static_cast<size_t>(l)][static_cast<size_t>(g.targets[static_cast<size_t>(i)])];
      k.axpy(gm.a.f32(), 1.0f, &da[static_cast<size_t>(i * g.r * g.in)], g.r * g.in);
    }
    if (!dx) return;
    const Scratch a = stacked_a(g);
    mm_nn(dx, dxa.data(), a.data(), T, g.in, R, R, g.in, g.in, 1.0f, 1.0f);
  }

  // Columns split across threads, rows summed in order (deterministic).
  static void bias_grad(float* db, const float* dy, int64_t rows, int64_t n, int64_t stride, int64_t offset) {
    parallel_rows(n, rows, [&](int64_t b, int64_t e) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = b; j < e; ++j) db[j] += dy[r * stride + offset + j];
    }, 64);
  }

  static void add_bias(float* y, const Tensor& b, int64_t rows, int64_t n) {
    if (b.empty()) return;
    const float* bp = b.f32();
    const KernelTable& k = kernels();
    parallel_rows(rows, n, [&](int64_t rb, int64_t re) {
      for (int64_t r = rb; r < re; ++r) k.axpy(y + r * n, 1.0f, bp, n);
    });
  }

  int64_t key_begin(int64_t t) const {
    int64_t kb = seq_.segment_start[t];
    if (c_.sliding_window > 0) kb = std::max<int64_t>(kb, t - c_.sliding_window + 1);
    return kb;
  }

  void layer_forward(int64_t l, LayerCache& lc, Scratch& x) {
    const Dims& d = d_;
    const int64_t T = d.T, C = d.C, I = d.I;
    const LayerWeights& L = w_.layers[static_cast<size_t>(l)];
    const LayerMatrices M(L);
    const KernelTable& k = kernels();
    lc.xn1 = uninit(T * C);
    lc.rstd1 = uninit(T);
    rmsnorm_fwd(lc.xn1.data(), lc.rstd1.data(), x.data(), L.attn_norm.f32(), T, C, d.eps);
    lc.qkv = uninit(T * d.NQKV);
    if (folds_group(l, 0, M.wqkv())) {
      lora_forward_group(l, 0, lc, lc.xn1.data(), lc.qkv.data(), &M.wqkv());
      add_bias(lc.qkv.data(), L.bqkv, T, d.NQKV);
    } else {
      matmul_xwt(lc.qkv.data(), lc.xn1.data(), M.wqkv(), T, C, d.NQKV);
      add_bias(lc.qkv.data(), L.bqkv, T, d.NQKV);
      lora_forward_group(l, 0, lc, lc.xn1.data(), lc.qkv.data());
    }
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
    lc.att = uninit(T * d.HD);
    attention_forward(lc);
    // Folded, the residual is the GEMM's accumulator: x += att Wo^T + the LoRA term, then the bias.
    if (folds(M.wo()) && lora_module(l, LoraTarget::kO)) {
      lora_forward(l, LoraTarget::kO, lc, lc.att.data(), x.data(), &M.wo(), /*accumulate=*/true);
      add_bias(x.data(), L.bo, T, C);
    } else {
      Scratch tmp = uninit(T * C);
      matmul_xwt(tmp.data(), lc.att.data(), M.wo(), T, d.HD, C);
      add_bias(tmp.data(), L.bo, T, C);
      lora_forward(l, LoraTarget::kO, lc, lc.att.data(), tmp.data());
      add_rows(x.data(), tmp.data(), T, C);
    }
    lc.x_mid = x;
    lc.xn2 = uninit(T * C);
    lc.rstd2 = uninit(T);
    rmsnorm_fwd(lc.xn2.data(), lc.rstd2.data(), x.data(), L.mlp_norm.f32(), T, C, d.eps);
    lc.gu = uninit(T * 2 * I);
    if (folds_group(l, 1, M.w_gate_up())) {
      lora_forward_group(l, 1, lc, lc.xn2.data(), lc.gu.data(), &M.w_gate_up());
      add_bias(lc.gu.data(), L.b_gate_up, T, 2 * I);
    } else {
      matmul_xwt(lc.gu.data(), lc.xn2.data(), M.w_gate_up(), T, C, 2 * I);
      add_bias(lc.gu.data(), L.b_gate_up, T, 2 * I);
      lora_forward_group(l, 1, lc, lc.xn2.data(), lc.gu.data());
    }
    lc.act = uninit(T * I);
    parallel_rows(T, I, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const float* gu = &lc.gu[static_cast<size_t>(t * 2 * I)];
        k.swiglu(&lc.act[static_cast<size_t>(t * I)], gu, gu + I, I);
      }
    });
    if (folds(M.w_down()) && lora_module(l, LoraTarget::kDown)) {
      lora_forward(l, LoraTarget::kDown, lc, lc.act.data(), x.data(), &M.w_down(), /*accumulate=*/true);
      add_bias(x.data(), L.b_down, T, C);
    } else {
      Scratch tmp = uninit(T * C);
      matmul_xwt(tmp.data(), lc.act.data(), M.w_down(), T, I, C);
      add_bias(tmp.data(), L.b_down, T, C);
      lora_forward(l, LoraTarget::kDown, lc, lc.act.data(), tmp.data());
      add_rows(x.data(), tmp.data(), T, C);
    }
  }

  // Attention runs over blocks of kQueryBlock query rows: block [r0, r1) only needs keys from
  // key_begin(r0) (the smallest key any of its rows sees: segment starts and sliding windows never move
  // backwards) up to r1, so the causal mask's upper triangle is mostly never computed, and the (rows,
  // keys) score block is all that exists at a time per thread. The heads of one KV group work together:
  // their query rows are stacked into one matrix, so each product with the group's K or V is one GEMM
  // of group x rows rows (one GEMM per head packed the same K and V once per head). The (group, block)
  // items run in parallel on the thread pool, largest blocks first; their GEMMs, called inside the
  // parallel region, run single-threaded.
  static constexpr int64_t kQueryBlock = 64;

  struct AttnItem {
    int64_t g, r0, r1, k0, rows, nk, n;  // n = group * rows stacked query rows
  };
  int64_t attn_blocks() const { return (d_.T + kQueryBlock - 1) / kQueryBlock; }
  // Group g's query block b: rows [r0, r1), keys [k0, r1).
  AttnItem attn_item(int64_t g, int64_t b) const {
    AttnItem it;
    it.g = g;
    it.r0 = b * kQueryBlock;
    it.r1 = std::min(d_.T, it.r0 + kQueryBlock);
    it.k0 = key_begin(it.r0);
    it.rows = it.r1 - it.r0;
    it.nk = it.r1 - it.k0;
    it.n = d_.group * it.rows;
    return it;
  }
  // fn over every (group, block) item, the last (largest) blocks first.
  void for_attn_items(const std::function<void(const AttnItem&)>& fn) const {
    const int64_t blocks = attn_blocks();
    parallel_rows(d_.KV * blocks, kQueryBlock * d_.T * d_.D * d_.group, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) fn(attn_item(i % d_.KV, blocks - 1 - i / d_.KV));
    }, 1);
  }

  // Stacked (it.n, D) rows, head-major (row hh * rows + t - r0), from or to the group's heads' columns of
  // src/dst (T rows, ld apart, head h at column h * D).
  void gather_heads(float* out, const float* src, int64_t ld, const AttnItem& it) const {
    const int64_t D = d_.D;
    for (int64_t hh = 0; hh < d_.group; ++hh)
      for (int64_t i = 0; i < it.rows; ++i)
        std::memcpy(out + (hh * it.rows + i) * D, src + (it.r0 + i) * ld + (it.g * d_.group + hh) * D,
                    static_cast<size_t>(D) * 4);
  }
  void scatter_heads(float* dst, int64_t ld, const float* in, const AttnItem& it) const {
    const int64_t D = d_.D;
    for (int64_t hh = 0; hh < d_.group; ++hh)
      for (int64_t i = 0; i < it.rows; ++i)
        std::memcpy(dst + (it.r0 + i) * ld + (it.g * d_.group + hh) * D, in + (hh * it.rows + i) * D,
                    static_cast<size_t>(D) * 4);
  }
  const float* keys(const LayerCache& lc, const AttnItem& it) const {
    return &lc.qkv[static_cast<size_t>(it.k0 * d_.NQKV + d_.HD + it.g * d_.D)];
  }
  const float* values(const LayerCache& lc, const AttnItem& it) const {
    return &lc.qkv[static_cast<size_t>(it.k0 * d_.NQKV + d_.HD + d_.KV * d_.D + it.g * d_.D)];
  }

  // Attention's products with K and V: c (m, n) = alpha a b^T, b given (n, k) rows ldb apart (attn_nt),
  // or c = a b for b (k, n) (attn_nn); as bf16 tile products under training.precision: bf16, as autocast runs them.
  void attn_nt(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
               int64_t ldc, float alpha = 1.0f) const {
    if (bf16_) amx_matmul(c, ldc, m, n, k, a, lda, b, ldb, AmxB::kTransposed, alpha, false);
    else mm_nt(c, a, b, m, n, k, lda, ldb, ldc, alpha);
  }
  void attn_nn(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
               int64_t ldc) const {
    if (bf16_) amx_matmul(c, ldc, m, n, k, a, lda, b, ldb, AmxB::kRowMajor, 1.0f, false);
    else mm_nn(c, a, b, m, n, k, lda, ldb, ldc);
  }

  // c (m, n) = a^T b for a (k, m) and b (k, n), both row-major: dV = P^T dO and dK = dS^T Q.
  void attn_tn(float* c, const float* a, const float* b, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
               int64_t ldc) const {
    if (bf16_) amx_matmul(c, ldc, m, n, k, a, lda, b, ldb, AmxB::kRowMajor, 1.0f, false, /*a_transposed=*/true);
    else mm_tn(c, a, b, m, n, k, lda, ldb, ldc);
  }

  // P (it.n, nk) for the stacked queries qs: scale Q K_g^T, each row t softmaxed over its keys
  // [key_begin(t), t] and zero elsewhere. Backward calls this again rather than keeping P.
  void attention_probs(const LayerCache& lc, const AttnItem& it, const float* qs, Scratch& p) const {
    const KernelTable& k = kernels();
    if (p.size() < static_cast<size_t>(it.n * it.nk)) p.resize(static_cast<size_t>(d_.group * kQueryBlock * d_.T));
    attn_nt(p.data(), qs, keys(lc, it), it.n, it.nk, d_.D, d_.D, d_.NQKV, it.nk, d_.scale);
    for (int64_t row = 0; row < it.n; ++row) {
      const int64_t t = it.r0 + row % it.rows;
      float* pr = &p[static_cast<size_t>(row * it.nk)];
      const int64_t kb = key_begin(t) - it.k0, n = t - it.k0 + 1;
      std::fill(pr, pr + kb, 0.0f);
      k.softmax(pr + kb, n - kb, 1.0f);
      std::fill(pr + n, pr + it.nk, 0.0f);
    }
  }

  void attention_forward(LayerCache& lc) {
    const int64_t D = d_.D;
    for_attn_items([&](const AttnItem& it) {
      thread_local Scratch qs, p, os;
      qs.resize(static_cast<size_t>(it.n * D));
      os.resize(static_cast<size_t>(it.n * D));
      gather_heads(qs.data(), lc.qkv.data(), d_.NQKV, it);
      attention_probs(lc, it, qs.data(), p);
      attn_nn(os.data(), p.data(), values(lc, it), it.n, D, it.nk, it.nk, d_.NQKV, D);
      scatter_heads(lc.att.data(), d_.HD, os.data(), it);
    });
  }

  // Attention backward per (group, query block), with P recomputed, on the stacked rows:
  //   dV_g += P^T dO;  dP = dO V_g^T;  dS = P * (dP - rowsum(P * dP)) * scale;
  //   dQ = dS K_g;     dK_g += dS^T Q
  // Each item's dK and dV go to private buffers, summed per key over the blocks in block order, so the
  // result does not depend on the schedule. dqkv is assigned whole.
  void attention_backward(const LayerCache& lc, const Scratch& datt, Scratch& dqkv) {
    const Dims& d = d_;
    const KernelTable& k = kernels();
    const int64_t T = d.T, D = d.D, blocks = attn_blocks();
    // Item (g, block b) keeps dK then dV for its keys [k0, r1) at offset[b] within group g's share.
    std::vector<int64_t> offset(static_cast<size_t>(blocks) + 1, 0);
    for (int64_t b = 0; b < blocks; ++b)
      offset[static_cast<size_t>(b) + 1] = offset[static_cast<size_t>(b)] + 2 * attn_item(0, b).nk * D;
    const int64_t per_group = offset.back();
    Scratch dkv = uninit(d.KV * per_group);
    for_attn_items([&](const AttnItem& it) {
      thread_local Scratch qs, dos, p, dp, dqs;
      qs.resize(static_cast<size_t>(it.n * D));
      dos.resize(static_cast<size_t>(it.n * D));
      dqs.resize(static_cast<size_t>(it.n * D));
      gather_heads(qs.data(), lc.qkv.data(), d.NQKV, it);
      gather_heads(dos.data(), datt.data(), d.HD, it);
      attention_probs(lc, it, qs.data(), p);
      if (dp.size() < p.size()) dp.resize(p.size());
      float* dk = &dkv[static_cast<size_t>(it.g * per_group + offset[static_cast<size_t>(it.r0 / kQueryBlock)])];
      float* dv = dk + it.nk * D;
      attn_tn(dv, p.data(), dos.data(), it.nk, D, it.n, it.nk, D, D);
      attn_nt(dp.data(), dos.data(), values(lc, it), it.n, it.nk, D, D, d.NQKV, it.nk);
      for (int64_t row = 0; row < it.n; ++row) {
        const int64_t t = it.r0 + row % it.rows;
        float* pr = &p[static_cast<size_t>(row * it.nk)];
        float* dr = &dp[static_cast<size_t>(row * it.nk)];
        const int64_t kb = key_begin(t) - it.k0, n = t - it.k0 + 1;
        const float dsum = k.dot(pr + kb, dr + kb, n - kb);
        for (int64_t j = kb; j < n; ++j) dr[j] = pr[j] * (dr[j] - dsum) * d.scale;
        std::fill(dr, dr + kb, 0.0f);
        std::fill(dr + n, dr + it.nk, 0.0f);
      }
      attn_nn(dqs.data(), dp.data(), keys(lc, it), it.n, D, it.nk, it.nk, d.NQKV, D);
      scatter_heads(dqkv.data(), d.NQKV, dqs.data(), it);
      attn_tn(dk, dp.data(), qs.data(), it.nk, D, it.n, it.nk, D, D);
    });
    parallel_rows(T, d.KV * 2 * D * blocks, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        for (int64_t g = 0; g < d.KV; ++g) {
          float* dk = &dqkv[static_cast<size_t>(t * d.NQKV + d.HD + g * D)];
          float* dv = dk + d.KV * D;
          std::fill(dk, dk + D, 0.0f);
          std::fill(dv, dv + D, 0.0f);
          for (int64_t blk = t / kQueryBlock; blk < blocks; ++blk) {
            const AttnItem it = attn_item(g, blk);
            if (t < it.k0) continue;  // a later block's keys can start past t (sliding window, segments)
            const float* src =
                &dkv[static_cast<size_t>(g * per_group + offset[static_cast<size_t>(blk)] + (t - it.k0) * D)];
            k.axpy(dk, 1.0f, src, D);
            k.axpy(dv, 1.0f, src + it.nk * D, D);
          }
        }
      }
    });
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
  // training.precision: bf16 (the model holds its matrices as bf16 tiles, or multiplies its NF4 blocks
  // as tiles): attention's products from Q, K and V run in bf16 too, as autocast runs them (attn_nt, attn_nn;
  // the softmax and its backward stay f32).
  bool bf16_ = !w_.layers.empty() && (w_.layers[0].amx_wqkv != nullptr || w_.layers[0].blocks_on_amx);
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

namespace {

Result<StepStats> run_forward_backward(const Model& model, LoraRef lora, LoraWeights* lora_grads, ModelWeights* full_grads,
                                       const TrainSequence& seq, float loss_scale, const ExampleScales* scales,
                                       const TrainOptions& options) {
  Pass pass(model, lora, seq, options);
  TL_TRY(pass.validate());
  std::vector<LayerCache> caches;
  Scratch x;
  pass.forward(caches, x);
  Scratch dx;
  StepStats st = pass.head(x, &dx, loss_scale, full_grads, scales);
  if (st.tokens == 0) return st;
  for (int64_t l = model.config().num_layers - 1; l >= 0; --l) {
    pass.layer_backward(l, caches[static_cast<size_t>(l)], dx, lora_grads, full_grads);
  }
  pass.embedding_backward(dx, full_grads);
  return st;
}

Result<StepStats> run_forward(const Model& model, LoraRef lora, const TrainSequence& seq, std::vector<double>* example_loss) {
  TrainOptions opt;
  opt.training = false;
  opt.gradient_checkpointing = true;  // keeps only layer inputs: evaluation needs no activations
  Pass pass(model, lora, seq, opt);
  TL_TRY(pass.validate());
  std::vector<LayerCache> caches;
  Scratch x;
  pass.forward(caches, x);
  return pass.head(x, nullptr, 0.0f, nullptr, nullptr, example_loss);
}

}  // namespace

Result<StepStats> forward_backward(const Model& model, LoraRef lora, LoraWeights* lora_grads, ModelWeights* full_grads,
                                   const TrainSequence& seq, float loss_scale, const TrainOptions& options) {
  return run_forward_backward(model, lora, lora_grads, full_grads, seq, loss_scale, nullptr, options);
}

Result<StepStats> forward_backward(const Model& model, LoraRef lora, LoraWeights* lora_grads, ModelWeights* full_grads,
                                   const TrainSequence& seq, const ExampleScales& scales, const TrainOptions& options) {
  return run_forward_backward(model, lora, lora_grads, full_grads, seq, 0.0f, &scales, options);
}

Result<StepStats> sequence_loss(const Model& model, LoraRef lora, const TrainSequence& seq) {
  return run_forward(model, lora, seq, nullptr);
}

Result<std::vector<double>> example_losses(const Model& model, LoraRef lora, const TrainSequence& seq) {
  std::vector<double> out;
  TL_TRY(run_forward(model, lora, seq, &out).status());
  return out;
}

}  // namespace tl
