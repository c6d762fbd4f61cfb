#include "tensor/matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "tensor/dtype.h"
#include "tensor/kernels.h"
#include "tensor/thread_pool.h"

namespace tl {

namespace {

// f32 elements per conversion block (4 MB): every block is a GEMM that packs the activations again, so
// blocks much smaller than this cost QLoRA throughput; much larger, memory.
constexpr int64_t kBlockFloats = int64_t{1} << 20;

// Converts W's element range [begin, begin + count) (row-major flat index) to f32.
void convert_range(float* dst, const WeightRef& w, int64_t begin, int64_t count) {
  if (w.f32) std::memcpy(dst, w.f32 + begin, static_cast<size_t>(count) * sizeof(float));
  else if (w.nf4) nf4_dequantize(dst, *w.nf4, begin, count);
  else convert_to_f32(dst, w.bf16 + begin, DType::kBF16, static_cast<size_t>(count));
}

// Writes rows [r0, r1) of w as f32 into out ((r1 - r0), cols), in parallel chunks.
void rows_to_f32(float* out, const WeightRef& w, int64_t r0, int64_t r1) {
  const int64_t cols = w.cols;
  parallel_rows(r1 - r0, cols, [&](int64_t b, int64_t e) {
    convert_range(out + b * cols, w, (r0 + b) * cols, (e - b) * cols);
  }, 4);
}

// One scratch block per thread that converts (the caller's; the conversion itself fans out).
float* scratch(int64_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < static_cast<size_t>(n)) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

// Panel p of x W^T: rows [32p, 32p + 32) of W, columns k0 .. k0 + kn, transposed (kn rows of 32): the
// rows are converted whole, then transposed 32 x 32 blocks at a time (a scalar gather was 5% of a
// QLoRA step).
void xwt_panel(float* panel, const WeightRef& w, int64_t p, int64_t k0, int64_t kn) {
  constexpr int64_t P = PackedMatrix::kPanel;
  const int64_t r0 = p * P, nr = std::min(P, w.rows - r0);
  // A full panel of an f32 matrix is transposed straight out of W; others are converted rows first.
  const float* src = nullptr;
  int64_t lds = kn;
  if (w.f32 && nr == P) {
    src = w.f32 + r0 * w.cols + k0;
    lds = w.cols;
  } else {
    thread_local std::vector<float> rows;
    rows.resize(static_cast<size_t>(P * kn));
    for (int64_t r = 0; r < nr; ++r) convert_range(rows.data() + r * kn, w, (r0 + r) * w.cols + k0, kn);
    if (nr < P) std::fill(rows.begin() + nr * kn, rows.end(), 0.0f);
    src = rows.data();
  }
  const KernelTable& kt = kernels();
  int64_t c = 0;
  for (; c + P <= kn; c += P) kt.transpose32(panel + c * P, P, src + c, lds);
  for (; c < kn; ++c)
    for (int64_t r = 0; r < P; ++r) panel[c * P + r] = src[r * lds + c];
}

// Rows k0 .. k0 + kn of the 32-column strip p of W: dy W's fill (tensor/packed.h, gemm_filled).
void dyw_panel(float* panel, const WeightRef& w, int64_t p, int64_t k0, int64_t kn) {
  constexpr int64_t P = PackedMatrix::kPanel;
  const int64_t c0 = p * P, nc = std::min(P, w.cols - c0);
  if (nc < P) std::fill(panel, panel + kn * P, 0.0f);
  if (w.bf16) {  // inline: a call per 32 elements would cost more than the conversion
    for (int64_t r = 0; r < kn; ++r) {
      const uint16_t* src = w.bf16 + (k0 + r) * w.cols + c0;
      float* dst = panel + r * P;
      for (int64_t j = 0; j < nc; ++j) dst[j] = bf16_to_f32(src[j]);
    }
    return;
  }
  for (int64_t r = 0; r < kn; ++r) convert_range(panel + r * P, w, (k0 + r) * w.cols + c0, nc);
}

// x W^T on panels converted on the fly (xwt_panel), one 32-wide panel per task into a per-thread
// scratch. Sums are chunked as tensor/packed.h chunks them, so the result is bit for bit the packed
// GEMM's on the converted matrix.
void converted_xwt(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, const WeightRef& w, bool accumulate,
                   const float* bias) {
  constexpr int64_t P = PackedMatrix::kPanel;
  const KernelTable& kt = kernels();
  const int64_t n = w.rows, k = w.cols, panels = (n + P - 1) / P;
  const int64_t chunk = k > kLongSum ? kSumChunk : k;
  // Items of kPanelsPerItem panels, converted side by side (as packed.cpp's GEMMs group theirs).
  constexpr int64_t kGroup = kPanelsPerItem;
  const int64_t groups = (panels + kGroup - 1) / kGroup;
  ThreadPool::global().parallel_for(groups, [&](int64_t b, int64_t e) {
    thread_local std::vector<float> panel;
    panel.resize(static_cast<size_t>(kGroup * chunk * P));
    for (int64_t g = b; g < e; ++g) {
      const int64_t p0 = g * kGroup, np = std::min(kGroup, panels - p0);
      const int64_t c0 = p0 * P, cols = std::min(np * P, n - c0);
      for (int64_t k0 = 0; k0 < k; k0 += chunk) {
        const int64_t kn = std::min(chunk, k - k0);
        for (int64_t q = 0; q < np; ++q) xwt_panel(panel.data() + q * kn * P, w, p0 + q, k0, kn);
        const PanelSegment seg{x + k0, ldx, panel.data(), kn, kn * P, P};
        kt.panel_gemm(y + c0, ldy, &seg, 1, m, cols, bias && k0 == 0 ? bias + c0 : nullptr, accumulate || k0 > 0);
      }
    }
  }, 1);
}

}  // namespace

int64_t matmul_block_rows(int64_t cols) {
  const int64_t rows = kBlockFloats / std::max<int64_t>(1, cols);
  return std::max<int64_t>(16, rows / 16 * 16);
}

namespace {

// The term with u given: for a term whose u is the input's own product (x A^T, dy B), that product
// multiplied apart first (the same tile products as from the whole matrix's tiles of the input), for
// the paths that multiply W a block at a time.
AmxLowRank with_u_computed(const AmxLowRank& lr, const float* in, int64_t ld, int64_t m, int64_t k) {
  AmxLowRank term = lr;
  if (lr.r > 0 && lr.a) {
    amx_gemm_b(lr.xa, lr.ldu, in, ld, m, lr.r, k, lr.a, lr.lda, /*b_transposed=*/lr.per_output, nullptr, false);
    term.u = lr.xa;
    term.a = nullptr;
  }
  return term;
}

}  // namespace

void matmul_xwt_low_rank(float* y, const float* x, const WeightRef& w, int64_t m, int64_t ldx, int64_t ldy,
                         const AmxLowRank& low_rank, bool accumulate) {
  TL_CHECK(on_amx(w) && low_rank.per_output);
  if (w.amx) {
    amx_gemm_xwt(y, ldy, x, ldx, m, *w.amx, nullptr, accumulate, &low_rank);
    return;
  }
  const AmxLowRank term = with_u_computed(low_rank, x, ldx, m, w.cols);
  // Blocks of W's rows are blocks of y's columns: every output keeps its one sum over k, then the term's
  // rows of V for those outputs.
  const int64_t nb = matmul_block_rows(w.cols);
  // A bf16 matrix is packed from its own rows; an NF4 one is dequantised to f32 a block at a time first.
  float* blk = w.bf16 ? nullptr : scratch(nb * w.cols);
  for (int64_t r0 = 0; r0 < w.rows; r0 += nb) {
    const int64_t r1 = std::min(w.rows, r0 + nb);
    AmxLowRank part = term;
    if (term.r > 0) part.v = term.v + r0 * term.ldv;
    if (w.bf16) {
      amx_gemm_b(y + r0, ldy, x, ldx, m, r1 - r0, w.cols, w.bf16 + r0 * w.cols, w.cols, /*b_transposed=*/true, nullptr,
                 accumulate, term.r > 0 ? &part : nullptr);
      continue;
    }
    rows_to_f32(blk, w, r0, r1);
    amx_gemm_b(y + r0, ldy, x, ldx, m, r1 - r0, w.cols, blk, w.cols, /*b_transposed=*/true, nullptr, accumulate,
               term.r > 0 ? &part : nullptr);
  }
}

void matmul_dyw_low_rank(float* dx, const float* dy, const WeightRef& w, int64_t m, int64_t lddy, int64_t lddx,
                         const AmxLowRank& low_rank, bool accumulate) {
  TL_CHECK(on_amx(w) && !low_rank.per_output);
  if (w.amx) {
    amx_gemm_dyw(dx, lddx, dy, lddy, m, *w.amx, accumulate, &low_rank);
    return;
  }
  const AmxLowRank term = with_u_computed(low_rank, dy, lddy, m, w.rows);
  // Blocks of W's rows split the sum, at multiples of AMX's 512-value chunks: the same bits as one pass,
  // the term added after the last block as after the whole sum.
  const int64_t nb = std::max<int64_t>(512, matmul_block_rows(w.cols) / 512 * 512);
  float* blk = w.bf16 ? nullptr : scratch(nb * w.cols);
  for (int64_t r0 = 0; r0 < w.rows; r0 += nb) {
    const int64_t r1 = std::min(w.rows, r0 + nb);
    const AmxLowRank* last = r1 == w.rows && term.r > 0 ? &term : nullptr;
    if (w.bf16) {
      amx_gemm_b(dx, lddx, dy + r0, lddy, m, w.cols, r1 - r0, w.bf16 + r0 * w.cols, w.cols, /*b_transposed=*/false,
                 nullptr, accumulate || r0 > 0, last);
      continue;
    }
    rows_to_f32(blk, w, r0, r1);
    amx_gemm_b(dx, lddx, dy + r0, lddy, m, w.cols, r1 - r0, blk, w.cols, /*b_transposed=*/false, nullptr,
               accumulate || r0 > 0, last);
  }
}

void matmul_xwt(float* y, const float* x, const WeightRef& w, int64_t m, int64_t ldx, int64_t ldy, bool accumulate) {
  if (on_amx(w)) {
    matmul_xwt_low_rank(y, x, w, m, ldx, ldy, AmxLowRank{}, accumulate);
    return;
  }
  if (w.packed) {
    packed_gemm(y, ldy, x, ldx, m, *w.packed, nullptr, accumulate);
    return;
  }
  converted_xwt(y, ldy, x, ldx, m, w, accumulate, nullptr);
}

void matmul_dyw(float* dx, const float* dy, const WeightRef& w, int64_t m, int64_t lddy, int64_t lddx, bool accumulate) {
  if (on_amx(w)) {
    AmxLowRank none;
    none.per_output = false;
    matmul_dyw_low_rank(dx, dy, w, m, lddy, lddx, none, accumulate);
    return;
  }
  if (w.packed) {
    packed_gemm_dyw(dx, lddx, dy, lddy, m, *w.packed, accumulate);
    return;
  }
  gemm_filled(dx, lddx, dy, lddy, m, w.cols, w.rows,
              [&](float* panel, int64_t p, int64_t k0, int64_t kn) { dyw_panel(panel, w, p, k0, kn); }, accumulate);
}

void matvec(float* y, const WeightRef& w, const float* x, const float* bias) {
  if (w.amx) {
    amx_gemm_xwt(y, w.rows, x, w.cols, 1, *w.amx, bias, false);
    return;
  }
  if ((w.nf4 || w.bf16) && w.blocks_on_amx) {
    matmul_xwt(y, x, w, 1, w.cols, w.rows);
    if (bias)
      for (int64_t r = 0; r < w.rows; ++r) y[r] += bias[r];
    return;
  }
  if (w.packed) {
    packed_gemm(y, w.rows, x, w.cols, 1, *w.packed, bias, false);
    return;
  }
  // One token: the packed kernel's one-row path on panels converted on the fly, the same chain as the
  // many-row path, so decode and prefill agree for every storage (an f32 matrix without a packed copy
  // too: full fine-tuning's, whose head recomputes a row this way when its target's probability underflows).
  converted_xwt(y, w.rows, x, w.cols, 1, w, false, bias);
}

void gather_rows(float* out, const WeightRef& w, const int32_t* ids, int64_t n) {
  for (int64_t t = 0; t < n; ++t) {
    const int64_t row = ids[t];
    float* dst = out + t * w.cols;
    if (w.f32) std::memcpy(dst, w.f32 + row * w.cols, static_cast<size_t>(w.cols) * 4);
    else convert_range(dst, w, row * w.cols, w.cols);
  }
}

}  // namespace tl
