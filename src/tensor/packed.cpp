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

PackedMatrix PackedMatrix::pack_transpose(const float* w, int64_t n, int64_t k) {
  // Panel p of W^T is rows [32p, 32p + 32) of W^T = columns [32p, 32p + 32) of W; its row c is W's row c
  // restricted to those columns.
  PackedMatrix m;
  m.n_ = k;
  m.k_ = n;
  m.data_.reset(alloc_panels(k, n));
  float* dst = m.data_.get();
  parallel_rows(m.panels(), n * kPanel, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      float* out = dst + p * n * kPanel;
      const int64_t c0 = p * kPanel, nc = std::min(kPanel, k - c0);
      if (nc < kPanel) std::memset(out, 0, static_cast<size_t>(n * kPanel) * 4);
      for (int64_t r = 0; r < n; ++r) std::memcpy(out + r * kPanel, w + r * k + c0, static_cast<size_t>(nc) * 4);
    }
  }, 1);
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

// The shared driver: y (m, n) (+)= sum over terms, each given as its first panel (segment with a = the
// term's x at row 0). Splits row blocks x panel groups over the team.
void run_panels(float* y, int64_t ldy, int64_t m, int64_t n, const PanelSegment* base, int nseg, const float* bias,
                bool accumulate) {
  if (m <= 0 || n <= 0) return;
  int64_t k_total = 0;
  for (int s = 0; s < nseg; ++s) k_total += base[s].k;
  const KernelTable& kt = kernels();
  const int64_t panels = (n + PackedMatrix::kPanel - 1) / PackedMatrix::kPanel;
  const int threads = ThreadPool::global().size();
  // Row blocks keep a block of x (about 1 MB) in L2 while every panel passes over it; blocks are whole
  // register tiles. With few panels, rows are split further so every thread has work.
  const int64_t tile = kt.panel_rows;
  int64_t rb = std::max<int64_t>(tile, (int64_t{1} << 18) / std::max<int64_t>(1, k_total) / tile * tile);
  if (panels < 4 * threads) {
    const int64_t want = (4 * threads + panels - 1) / panels;
    rb = std::min(rb, std::max<int64_t>(tile, (m + want - 1) / want / tile * tile));
  }
  rb = std::min(rb, m);
  const int64_t row_blocks = (m + rb - 1) / rb;
  // One row (decode): items of 4 panels, the width kernels.h interleaves to hide FMA latency.
  const int64_t group = m == 1 ? 4 : 1;
  const int64_t groups = (panels + group - 1) / group;
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
  // The small-loop rule in elements touched: the weights, plus m rows of input and output.
  if ((n + m) * k_total + m * n < kMinParallelWork) return run(0, row_blocks * groups);
  ThreadPool::global().parallel_for(row_blocks * groups, run, 1);
}

}  // namespace

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
  if (nseg == 1 && !any_rowmajor && base[0].k > kLongSum) {
    // A long sum (the LM head's input gradient, k = vocabulary): a whole panel would not stay in L2 while
    // row blocks pass over it, so the sum runs in chunks, each added to y. The chunking depends only on
    // k, so one row and many still agree.
    const PanelSegment whole = base[0];
    for (int64_t k0 = 0; k0 < whole.k; k0 += kSumChunk) {
      PanelSegment part = whole;
      part.a += k0;
      part.b += k0 * P;
      part.k = std::min(kSumChunk, whole.k - k0);
      run_panels(y, ldy, m, n, &part, 1, k0 == 0 ? bias : nullptr, accumulate || k0 > 0);
    }
    return;
  }
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

}  // namespace tl
