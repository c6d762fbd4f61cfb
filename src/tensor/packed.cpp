#include "tensor/packed.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "core/check.h"
#include "tensor/kernels.h"
#include "tensor/thread_pool.h"

namespace tl {

void PackedMatrix::Free::operator()(float* p) const { std::free(p); }

namespace {
// Storage for an (n, k) packed matrix, 64-byte aligned so each 32-float panel row is two cache lines.
float* alloc_panels(int64_t n, int64_t k) {
  const int64_t panels = (n + PackedMatrix::kPanel - 1) / PackedMatrix::kPanel;
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(1, panels * k * PackedMatrix::kPanel)) * 4;
  float* p = static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

PackedMatrix PackedMatrix::pack(const float* w, int64_t n, int64_t k, int64_t ldw) {
  PackedMatrix m;
  m.n_ = n;
  m.k_ = k;
  m.data_.reset(alloc_panels(n, k));
  m.repack(w, ldw);
  return m;
}

void PackedMatrix::repack(const float* w, int64_t ldw) {
  if (ldw == 0) ldw = k_;
  float* dst = data_.get();
  // One panel per task: read 32 rows of W, write them transposed (k rows of 32).
  parallel_rows(panels(), k_ * kPanel, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      float* out = dst + p * k_ * kPanel;
      const int64_t r0 = p * kPanel, nr = std::min(kPanel, n_ - r0);
      if (nr < kPanel) std::memset(out, 0, static_cast<size_t>(k_ * kPanel) * 4);
      for (int64_t r = 0; r < nr; ++r) {
        const float* src = w + (r0 + r) * ldw;
        for (int64_t c = 0; c < k_; ++c) out[c * kPanel + r] = src[c];
      }
    }
  }, 1);
}

void PackedMatrix::unpack(float* w) const {
  parallel_rows(panels(), k_ * kPanel, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const float* src = panel(p);
      const int64_t r0 = p * kPanel, nr = std::min(kPanel, n_ - r0);
      for (int64_t r = 0; r < nr; ++r)
        for (int64_t c = 0; c < k_; ++c) w[(r0 + r) * k_ + c] = src[c * kPanel + r];
    }
  }, 1);
}

namespace {

// The small-loop rule in elements touched (the weights, plus m rows of input and output): below it, a
// parallel region costs more than it saves.
bool small_gemm(int64_t m, int64_t n, int64_t k) { return (n + m) * k + m * n < kMinParallelWork; }

// Rows per row block of an (m, k) x whose row blocks each make `items` work items (panels or groups of
// them), `tile` rows to a register tile. A block keeps its x (at most 1 MB) in L2 while every panel
// passes over it. The rows are shared out evenly over as few blocks as that allows, in whole tiles: a
// block cut at the largest size would leave a sliver (8 of 512 rows at k = 512) that streams every panel
// again for a few rows. With few items, rows are split further so every thread has work.
int64_t row_block_rows(int64_t m, int64_t k, int64_t items, int64_t tile) {
  const int threads = ThreadPool::global().size();
  const int64_t max_rows = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, k));
  int64_t blocks = (m + max_rows - 1) / max_rows;
  if (items < 4 * threads) blocks = std::max(blocks, (4 * threads + items - 1) / items);
  const int64_t per_block = (m + blocks - 1) / blocks;
  return std::min(m, (per_block + tile - 1) / tile * tile);
}

// The shared driver: y (m, n) (+)= sum over terms, each given as its first panel (segment with a = the
// term's x at row 0). Splits row blocks x panel groups over the team.
void run_panels(float* y, int64_t ldy, int64_t m, int64_t n, const PanelSegment* base, int nseg, const float* bias,
                bool accumulate) {
  if (m <= 0 || n <= 0) return;
  int64_t k_total = 0;
  for (int s = 0; s < nseg; ++s) k_total += base[s].k;
  const KernelTable& kt = kernels();
  const int64_t panels = (n + PackedMatrix::kPanel - 1) / PackedMatrix::kPanel;
  // One row (decode): items of 4 panels, the width kernels.h interleaves to hide FMA latency.
  const int64_t group = m == 1 ? 4 : kPanelsPerItem;
  const int64_t groups = (panels + group - 1) / group;
  const int64_t rb = row_block_rows(m, k_total, groups, kt.panel_rows);
  const int64_t row_blocks = (m + rb - 1) / rb;
  auto run = [&](int64_t b, int64_t e) {
    PanelSegment segs[4];
    for (int64_t item = b; item < e; ++item) {
      const int64_t blk = item / groups, g = item % groups;
      const int64_t r0 = blk * rb, rows = std::min(rb, m - r0);
      const int64_t c0 = g * group * PackedMatrix::kPanel, cols = std::min(group * PackedMatrix::kPanel, n - c0);
      for (int s = 0; s < nseg; ++s) {
        segs[s] = base[s];
        segs[s].a += r0 * base[s].lda;
        segs[s].b += g * group * base[s].panel_stride;
      }
      kt.panel_gemm(y + r0 * ldy + c0, ldy, segs, nseg, rows, cols, bias ? bias + c0 : nullptr, accumulate);
    }
  };
  if (small_gemm(m, n, k_total)) return run(0, row_blocks * groups);
  ThreadPool::global().parallel_for(row_blocks * groups, run, 1);
}

// One packed term: a long sum (the LM head's input gradient, k = vocabulary) would not keep a whole
// panel in L2 while row blocks pass over it, so it runs in chunks, each added to y. The chunking depends
// only on k, so one row and many still agree.
void run_packed(float* y, int64_t ldy, int64_t m, int64_t n, const PanelSegment& whole, const float* bias,
                bool accumulate) {
  if (whole.k <= kLongSum) return run_panels(y, ldy, m, n, &whole, 1, bias, accumulate);
  for (int64_t k0 = 0; k0 < whole.k; k0 += kSumChunk) {
    PanelSegment part = whole;
    part.a += k0;
    part.b += k0 * PackedMatrix::kPanel;
    part.k = std::min(kSumChunk, whole.k - k0);
    run_panels(y, ldy, m, n, &part, 1, k0 == 0 ? bias : nullptr, accumulate || k0 > 0);
  }
}

}  // namespace

void packed_gemm_cols(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, const PackedMatrix& w,
                      int64_t col0, const float* bias, bool accumulate) {
  constexpr int64_t P = PackedMatrix::kPanel;
  TL_CHECK(col0 >= 0 && col0 % P == 0 && col0 < w.rows());
  const PanelSegment seg{x, ldx, w.panel(col0 / P), w.cols(), w.cols() * P, P};
  run_packed(y, ldy, m, w.rows() - col0, seg, bias ? bias + col0 : nullptr, accumulate);
}

void gemm(float* y, int64_t ldy, int64_t m, int64_t n, std::span<const GemmTerm> terms, const float* bias,
          bool accumulate) {
  TL_CHECK(!terms.empty() && terms.size() <= 4);
  constexpr int64_t P = PackedMatrix::kPanel;
  const int nseg = static_cast<int>(terms.size());
  bool any_rowmajor = false;
  PanelSegment base[4];
  for (int s = 0; s < nseg; ++s) {
    const GemmTerm& t = terms[static_cast<size_t>(s)];
    if (t.packed) {
      TL_CHECK(t.packed->rows() == n);
      base[s] = {t.x, t.ldx, t.packed->panel(0), t.packed->cols(), t.packed->cols() * P, P};
    } else {
      base[s] = {t.x, t.ldx, t.b, t.k, P, t.ldb};
      any_rowmajor = true;
    }
  }
  const int64_t full = any_rowmajor ? n / P * P : n;
  if (nseg == 1 && !any_rowmajor) return run_packed(y, ldy, m, n, base[0], bias, accumulate);
  if (full > 0) run_panels(y, ldy, m, full, base, nseg, bias, accumulate);
  if (full == n) return;
  // The partial last strip of the row-major terms is copied and zero-padded: reading it in place would
  // run past the end of B's last row.
  thread_local std::vector<float> pad;
  int64_t need = 0;
  for (const GemmTerm& t : terms)
    if (!t.packed) need += t.k * P;
  pad.assign(static_cast<size_t>(need), 0.0f);
  float* dst = pad.data();
  for (int s = 0; s < nseg; ++s) {
    const GemmTerm& t = terms[static_cast<size_t>(s)];
    if (t.packed) {
      base[s].b = t.packed->panel(full / P);
      continue;
    }
    for (int64_t r = 0; r < t.k; ++r) std::memcpy(dst + r * P, t.b + r * t.ldb + full, static_cast<size_t>(n - full) * 4);
    base[s] = {t.x, t.ldx, dst, t.k, P, P};
    dst += t.k * P;
  }
  run_panels(y + full, ldy, m, n - full, base, nseg, bias ? bias + full : nullptr, accumulate);
}

bool swiglu_fusable(const PackedMatrix& w) {
  return !w.empty() && w.rows() % (2 * PackedMatrix::kPanel) == 0 && w.cols() <= kLongSum;
}

void packed_gemm_swiglu(float* act, int64_t ldact, const float* x, int64_t ldx, int64_t m, const PackedMatrix& w,
                        const float* bias) {
  TL_CHECK(swiglu_fusable(w));
  if (m <= 0) return;
  constexpr int64_t P = PackedMatrix::kPanel;
  const KernelTable& kt = kernels();
  const int64_t k = w.cols(), features = w.rows() / 2, panels = features / P;
  // Each item streams a gate panel and its up panel: twice a panel's bytes for the same x.
  const int64_t rb = row_block_rows(m, k, panels, kt.swiglu_rows);
  const int64_t row_blocks = (m + rb - 1) / rb;
  auto run = [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t blk = item / panels, p = item % panels;
      const int64_t r0 = blk * rb, rows = std::min(rb, m - r0);
      kt.panel_gemm_swiglu(act + r0 * ldact + p * P, ldact, x + r0 * ldx, ldx, k, w.panel(p), w.panel(panels + p), rows,
                           bias ? bias + p * P : nullptr, bias ? bias + features + p * P : nullptr);
    }
  };
  if (small_gemm(m, w.rows(), k)) return run(0, row_blocks * panels);
  ThreadPool::global().parallel_for(row_blocks * panels, run, 1);
}

void gemm_filled(float* dx, int64_t lddx, const float* dy, int64_t lddy, int64_t m, int64_t n, int64_t k,
                 const PanelFill& fill, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  constexpr int64_t P = PackedMatrix::kPanel;
  if (k <= 0) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::memset(dx + i * lddx, 0, static_cast<size_t>(n) * 4);
    return;
  }
  const KernelTable& kt = kernels();
  const int64_t panels = (n + P - 1) / P;
  // Items are (kPanelsPerItem panels, row part): each fills its panels into the thread's scratch (in
  // L1/L2, no other thread reads it) and runs the kernel down its rows; rows are split only when there
  // are too few items to go round.
  constexpr int64_t kGroup = kPanelsPerItem;
  const int64_t groups = (panels + kGroup - 1) / kGroup;
  const int threads = ThreadPool::global().size();
  const int64_t tile = kt.panel_rows;
  const int64_t parts = groups >= 2 * threads ? 1 : (2 * threads + groups - 1) / groups;
  const int64_t per_part = (m + parts - 1) / parts;
  const int64_t part_rows = (per_part + tile - 1) / tile * tile;
  const int64_t row_parts = (m + part_rows - 1) / part_rows;
  for (int64_t k0 = 0; k0 < k; k0 += kGradChunk) {
    const int64_t kn = std::min(kGradChunk, k - k0);
    auto run = [&](int64_t b, int64_t e) {
      // The thread's scratch: an item's panels of a chunk, kept for the thread's life.
      thread_local const std::unique_ptr<float[], decltype(&std::free)> buf(alloc_panels(kGroup * P, kGradChunk),
                                                                             &std::free);
      for (int64_t item = b; item < e; ++item) {
        const int64_t g = item / row_parts, r0 = (item % row_parts) * part_rows, rows = std::min(part_rows, m - r0);
        const int64_t p0 = g * kGroup, np = std::min(kGroup, panels - p0);
        for (int64_t q = 0; q < np; ++q) fill(buf.get() + q * kn * P, p0 + q, k0, kn);
        const PanelSegment seg{dy + r0 * lddy + k0, lddy, buf.get(), kn, kn * P, P};
        kt.panel_gemm(dx + r0 * lddx + p0 * P, lddx, &seg, 1, rows, std::min(np * P, n - p0 * P), nullptr,
                      accumulate || k0 > 0);
      }
    };
    const int64_t items = groups * row_parts;
    if (small_gemm(m, n, kn)) run(0, items);
    else ThreadPool::global().parallel_for(items, run, 1);
  }
}

void packed_gemm_dyw(float* dx, int64_t lddx, const float* dy, int64_t lddy, int64_t m, const PackedMatrix& w,
                     bool accumulate) {
  constexpr int64_t P = PackedMatrix::kPanel;
  const KernelTable& kt = kernels();
  // Strip p of B = W^T is columns [32p, 32p + 32) of W; its rows k0 .. are W's rows, 32 to a panel of
  // the packing, where they are columns: each 32 x 32 block transposed (k0 is a multiple of 32).
  auto fill = [&](float* panel, int64_t p, int64_t k0, int64_t kn) {
    const int64_t c0 = p * P, nc = std::min(P, w.cols() - c0);
    for (int64_t r = 0; r < kn; r += P) {
      const float* src = w.panel((k0 + r) / P) + c0 * P;
      const int64_t nr = std::min(P, kn - r);
      if (nc == P && nr == P) {
        kt.transpose32(panel + r * P, P, src, P);
        continue;
      }
      for (int64_t j = 0; j < nr; ++j)
        for (int64_t c = 0; c < P; ++c) panel[(r + j) * P + c] = c < nc ? src[c * P + j] : 0.0f;
    }
  };
  gemm_filled(dx, lddx, dy, lddy, m, w.cols(), w.rows(), fill, accumulate);
}

}  // namespace tl
