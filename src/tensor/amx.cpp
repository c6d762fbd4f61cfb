#include "tensor/amx.h"

#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "core/check.h"
#include "tensor/dtype.h"
#include "tensor/kernels.h"
#include "tensor/thread_pool.h"

// Only the functions marked TL_AMX_TARGET or TL_BF16_TARGET use AVX-512 instructions, and they run only
// after bf16_tiles_available(); AMX's own (tiles_amx, ensure_tiles' configuration) only where the CPU
// has the tile unit. The rest of this file is built for the baseline ISA like the rest of the engine.
#define TL_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))
#define TL_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

namespace tl {

namespace {

constexpr int64_t kTile = 512;  // bf16 elements in one 16 x 32 tile
constexpr int64_t kChunkTiles = 16;  // the sum runs in chunks of 16 tiles, 512 values

struct AmxState {
  bool ok = false;
  bool amx = false;  // the tile unit itself; otherwise its products run on AVX512-BF16 (block_32x32)
  std::string reason;
};

const AmxState& amx_state() {
  static const AmxState state = [] {
    AmxState s;
    // TUNELOOP_ISA below avx512 (tests, comparisons) keeps the engine off every wider unit, AMX too.
    if (active_isa() != Isa::kAvx512) {
      s.reason = cpu_supports(Isa::kAvx512)
                     ? std::string("the kernels are limited to ") + isa_name(active_isa()) + " (TUNELOOP_ISA)"
                     : std::string("this CPU has no AVX-512, so neither AMX-BF16 nor AVX512-BF16 (Intel Cooper Lake / "
                                   "Sapphire Rapids or AMD Zen 4 and later have them)");
      return s;
    }
    __builtin_cpu_init();
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(0));
    const bool amx_bf16 = (edx >> 22) & 1, amx_tile = (edx >> 24) & 1;
    __asm__ volatile("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(1));
    const bool avx512_bf16 = (eax >> 5) & 1;
    if (!avx512_bf16 || !__builtin_cpu_supports("avx512bw")) {
      s.reason = "this CPU has neither AMX-BF16 nor AVX512-BF16 (Intel Cooper Lake / Sapphire Rapids or AMD Zen 4 "
                 "and later have them)";
      return s;
    }
    s.ok = true;
    // Linux hands out the 8 KB tile state only to processes that ask (since 5.16); refused, the products
    // run on AVX512-BF16 like a CPU without the tile unit.
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    const char* unit = std::getenv("TUNELOOP_BF16_UNIT");
    const bool held_off = unit && std::string(unit) == "avx512-bf16";
    s.amx = !held_off && amx_tile && amx_bf16 && syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
    return s;
  }();
  return state;
}

uint16_t* alloc_bf16(int64_t elems) {
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(1, elems)) * 2;
  auto* p = static_cast<uint16_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  if (!p) throw std::bad_alloc();
  return p;
}

int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// The first `left` of 16 lanes (all for 16 or more, none for 0 or less): masked loads of ragged edges.
__mmask16 lane_mask(int64_t left) {
  return left >= 16 ? __mmask16{0xffff} : left <= 0 ? __mmask16{0} : static_cast<__mmask16>((1u << left) - 1);
}

struct TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-3: a 2 x 2 block of 16 x 16 f32 sums; 4-5: two 16-row strips of A; 6-7: two 16-column
// strips of B. All 16 rows of 64 bytes. The configuration is per thread.
TL_AMX_TARGET void ensure_tiles() {
  thread_local bool ready = false;
  if (ready || !amx_state().amx) return;
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  // GCC does not see _tile_loadconfig read the struct and drops the stores above without this.
  __asm__ volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
  ready = true;
}

// x (m, k) f32 -> a as 16 x 32 bf16 tiles, each 1 KB contiguous: for each 16-row strip of x, its kp / 32
// tiles in order; rows and columns past the matrix zero. Strips [s0, s1). Contiguous tiles load as 16
// sequential cache lines, where rows kp * 2 bytes apart would fall into few L1 sets at some widths.
TL_AMX_TARGET void to_bf16_tiles(uint16_t* a, int64_t kp, const float* x, int64_t ldx, int64_t s0, int64_t s1,
                                 int64_t m, int64_t k) {
  const int64_t tiles = kp / 32;
  for (int64_t s = s0; s < s1; ++s)
    for (int64_t i = 0; i < 16; ++i) {
      const int64_t r = s * 16 + i;
      uint16_t* dst = a + s * tiles * kTile + i * 32;
      if (r >= m) {
        for (int64_t kb = 0; kb < tiles; ++kb) std::memset(dst + kb * kTile, 0, 64);
        continue;
      }
      const float* src = x + r * ldx;
      for (int64_t kb = 0; kb < tiles; ++kb) {
        const int64_t c = kb * 32;
        const __mmask16 lo = lane_mask(k - c), hi = lane_mask(k - c - 16);
        const __m512 v0 = _mm512_maskz_loadu_ps(lo, src + c);
        const __m512 v1 = _mm512_maskz_loadu_ps(hi, src + c + 16);
        _mm512_store_si512(dst + kb * kTile, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(v1, v0)));
      }
    }
}

// The 16 x 16 transpose of 32-bit elements: out[c] = (r[0][c], ..., r[15][c]).
TL_AMX_TARGET void transpose16x16_epi32(const __m512i r[16], __m512i out[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_epi32(0xffff, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_epi32(0xffff, r[2 * i], r[2 * i + 1]);
  }
  // u[4i + j], 128-bit lane L: rows 4i .. 4i + 3 of column 4L + j.
  for (int i = 0; i < 4; ++i) {
    u[4 * i] = _mm512_maskz_unpacklo_epi64(0xff, t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_maskz_unpackhi_epi64(0xff, t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_maskz_unpacklo_epi64(0xff, t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_maskz_unpackhi_epi64(0xff, t[4 * i + 1], t[4 * i + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i x = _mm512_maskz_shuffle_i32x4(0xffff, u[j], u[4 + j], 0x44);
    const __m512i y = _mm512_maskz_shuffle_i32x4(0xffff, u[j], u[4 + j], 0xEE);
    const __m512i z = _mm512_maskz_shuffle_i32x4(0xffff, u[8 + j], u[12 + j], 0x44);
    const __m512i w = _mm512_maskz_shuffle_i32x4(0xffff, u[8 + j], u[12 + j], 0xEE);
    out[j] = _mm512_maskz_shuffle_i32x4(0xffff, x, z, 0x88);
    out[4 + j] = _mm512_maskz_shuffle_i32x4(0xffff, x, z, 0xDD);
    out[8 + j] = _mm512_maskz_shuffle_i32x4(0xffff, y, w, 0x88);
    out[12 + j] = _mm512_maskz_shuffle_i32x4(0xffff, y, w, 0xDD);
  }
}

// The same tiles for a = src^T (m, k), from src (k, m) row-major with rows ld apart: each tile is the
// transpose of a 32 x 16 block of src, two 16 x 16 transposes of its f32 bits, rounded pairwise.
TL_AMX_TARGET void to_bf16_tiles_transposed(uint16_t* a, int64_t kp, const float* src, int64_t ld, int64_t m,
                                            int64_t k) {
  const int64_t tiles = kp / 32, strips = round_up(m, 32) / 16;
  __m512i lo[16], hi[16], tlo[16], thi[16];
  for (int64_t s = 0; s < strips; ++s) {
    const int64_t c0 = s * 16;
    const __mmask16 cols = lane_mask(m - c0);
    for (int64_t kb = 0; kb < tiles; ++kb) {
      const int64_t r0 = kb * 32;
      for (int64_t i = 0; i < 16; ++i) {
        lo[i] = r0 + i < k ? _mm512_castps_si512(_mm512_maskz_loadu_ps(cols, src + (r0 + i) * ld + c0))
                           : _mm512_setzero_si512();
        hi[i] = r0 + 16 + i < k ? _mm512_castps_si512(_mm512_maskz_loadu_ps(cols, src + (r0 + 16 + i) * ld + c0))
                                : _mm512_setzero_si512();
      }
      transpose16x16_epi32(lo, tlo);
      transpose16x16_epi32(hi, thi);
      uint16_t* tile = a + (s * tiles + kb) * kTile;
      for (int64_t i = 0; i < 16; ++i)
        _mm512_store_si512(tile + i * 32, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(_mm512_castsi512_ps(thi[i]),
                                                                                       _mm512_castsi512_ps(tlo[i]))));
    }
  }
}

// A second sum for the same 32 x 32 block, run after the first in the same tiles: the low-rank term's
// tiled u (rp / 32 tiles a strip) and its V's two 16-column blocks.
struct ExtraTiles {
  const uint16_t* a = nullptr;
  int64_t kp = 0;
  const uint16_t* b0 = nullptr;
  const uint16_t* b1 = nullptr;
};

// One sum of a 2 x 2 block of tiles: A's 16-row strips a0, a1 and B's 16-column strips b0, b1, over
// tiles [kb0, kb1) of each.
struct Strips {
  const uint16_t *a0, *a1, *b0, *b1;
  int64_t kb0, kb1;
};

// The 2 x 2 block of 16 x 16 sums at out[0..3] (rows `ld` floats apart) (+)= the products `sum`, then `extra`
// (may be null: the low-rank term); `load` starts from out's values, otherwise from zero. On the tile
// unit:
TL_AMX_TARGET void tiles_amx(float* const out[4], int64_t ld, bool load, const Strips& sum, const Strips* extra) {
  const size_t stride = static_cast<size_t>(ld) * 4;
  if (load) {
    _tile_loadd(0, out[0], stride);
    _tile_loadd(1, out[1], stride);
    _tile_loadd(2, out[2], stride);
    _tile_loadd(3, out[3], stride);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  for (const Strips* st : {&sum, extra}) {
    if (!st) continue;
    for (int64_t kb = st->kb0; kb < st->kb1; ++kb) {
      _tile_loadd(4, st->a0 + kb * kTile, 64);
      _tile_loadd(5, st->a1 + kb * kTile, 64);
      _tile_loadd(6, st->b0 + kb * kTile, 64);
      _tile_loadd(7, st->b1 + kb * kTile, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, out[0], stride);
  _tile_stored(1, out[1], stride);
  _tile_stored(2, out[2], stride);
  _tile_stored(3, out[3], stride);
}

// 8 rows of the sum's A strip `strip` (from row i0 of its tiles) times both B strips: acc[i][j] is row
// i's 16 sums with strip j. A tile row holds, for each k pair p, the pair as one 32-bit word; B's row p
// the pair for each of 16 columns (AMX's VNNI order), which is VDPBF16PS's operand layout: acc += a's
// pair p broadcast * B row p is TDPBF16PS's step p for one row.
TL_BF16_TARGET inline void rows8_bf16(__m512 (&acc)[8][2], const Strips& st, int strip, int64_t i0) {
  const uint16_t* a = strip ? st.a1 : st.a0;
  for (int64_t kb = st.kb0; kb < st.kb1; ++kb) {
    const uint16_t* at = a + kb * kTile + i0 * 32;
    const uint16_t* bt0 = st.b0 + kb * kTile;
    const uint16_t* bt1 = st.b1 + kb * kTile;
    for (int p = 0; p < 16; ++p) {
      const __m512bh v0 = reinterpret_cast<__m512bh>(_mm512_load_si512(bt0 + p * 32));
      const __m512bh v1 = reinterpret_cast<__m512bh>(_mm512_load_si512(bt1 + p * 32));
      for (int i = 0; i < 8; ++i) {
        int32_t pair;
        std::memcpy(&pair, at + i * 32 + 2 * p, 4);
        const __m512bh u = reinterpret_cast<__m512bh>(_mm512_set1_epi32(pair));
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], u, v0);
        acc[i][1] = _mm512_dpbf16_ps(acc[i][1], u, v1);
      }
    }
  }
}

// The same block without the tile unit (AMD Zen 4, Intel Cooper Lake, or a kernel that refused the tile
// state), in four 8-row passes whose 16 accumulators stay in registers over the whole sum. Each sum
// takes its products in the tile unit's order (tiles in order, pairs in order), so the splits of a sum
// that give the same bits on AMX give them here too; AMX's own bits are not promised.
TL_BF16_TARGET void tiles_avx512(float* const out[4], int64_t ld, bool load, const Strips& sum, const Strips* extra) {
  for (int pass = 0; pass < 4; ++pass) {
    const int strip = pass >> 1, i0 = (pass & 1) * 8;
    __m512 acc[8][2];
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 2; ++j)
        acc[i][j] = load ? _mm512_loadu_ps(out[strip * 2 + j] + (i0 + i) * ld) : _mm512_setzero_ps();
    rows8_bf16(acc, sum, strip, i0);
    if (extra) rows8_bf16(acc, *extra, strip, i0);
    for (int i = 0; i < 8; ++i)
      for (int j = 0; j < 2; ++j) _mm512_storeu_ps(out[strip * 2 + j] + (i0 + i) * ld, acc[i][j]);
  }
}

// y rows [r0, r0 + 32) x columns [c0, c0 + 32) (+)= the tiled a (its strips r0 / 16 and r0 / 16 + 1)
// times the B whose 16-column blocks start at b0 and b1 (kp / 32 tiles each), over the sum's tiles
// [kb0, kb1), then `extra` (may be null) over all its tiles. Full blocks go through the tiles straight
// to y; edge blocks through a scratch.
void block_32x32(float* y, int64_t ldy, int64_t m, int64_t n, int64_t r0, int64_t c0, const uint16_t* a, int64_t kp,
                 const uint16_t* b0, const uint16_t* b1, int64_t kb0, int64_t kb1, bool accumulate,
                 const ExtraTiles* extra = nullptr) {
  const bool full = r0 + 32 <= m && c0 + 32 <= n;
  alignas(64) float edge[4][256];
  float* out[4];
  int64_t ld = ldy;
  if (full) {
    for (int t = 0; t < 4; ++t) out[t] = y + (r0 + (t >> 1) * 16) * ldy + c0 + (t & 1) * 16;
  } else {
    ld = 16;
    for (int t = 0; t < 4; ++t) {
      out[t] = edge[t];
      std::memset(edge[t], 0, sizeof edge[t]);
      if (!accumulate) continue;
      const int64_t tr = r0 + (t >> 1) * 16, tc = c0 + (t & 1) * 16;
      for (int64_t i = 0; i < 16 && tr + i < m; ++i)
        for (int64_t j = 0; j < 16 && tc + j < n; ++j) edge[t][i * 16 + j] = y[(tr + i) * ldy + tc + j];
    }
  }
  const int64_t tiles = kp / 32;
  const uint16_t* a0 = a + (r0 / 16) * tiles * kTile;
  const Strips sum{a0, a0 + tiles * kTile, b0, b1, kb0, kb1};
  Strips term{};
  if (extra) {
    const int64_t et = extra->kp / 32;
    const uint16_t* e0 = extra->a + (r0 / 16) * et * kTile;
    term = {e0, e0 + et * kTile, extra->b0, extra->b1, 0, et};
  }
  (amx_state().amx ? tiles_amx : tiles_avx512)(out, ld, accumulate || !full, sum, extra ? &term : nullptr);
  if (full) return;
  for (int t = 0; t < 4; ++t) {
    const int64_t tr = r0 + (t >> 1) * 16, tc = c0 + (t & 1) * 16;
    for (int64_t i = 0; i < 16 && tr + i < m; ++i)
      for (int64_t j = 0; j < 16 && tc + j < n; ++j) y[(tr + i) * ldy + tc + j] = edge[t][i * 16 + j];
  }
}

// rows x cols of src (rows ld apart) times s, dense in buf: a small operand scaled before it is rounded.
const float* scaled_copy(std::vector<float>& buf, const float* src, int64_t ld, int64_t rows, int64_t cols, float s) {
  buf.resize(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) buf[static_cast<size_t>(i * cols + j)] = s * src[i * ld + j];
  return buf.data();
}

// A converted per call, kept for the caller thread's life (the workers only read it); 64-byte aligned.
struct AScratch {
  std::unique_ptr<uint16_t[], decltype(&std::free)> p{nullptr, &std::free};
  int64_t elems = 0;
  uint16_t* get(int64_t n) {
    if (n > elems) {
      p.reset(alloc_bf16(n));
      elems = n;
    }
    return p.get();
  }
};

template <typename T>
void pack_b(uint16_t* out, const T* b, int64_t ldb, int64_t n, int64_t k, bool transposed);

// y (m, n) (+)= the tiled a (kp / 32 tiles a strip) times B (+ the extra term's tiles: up, rp / 32 tiles a
// strip, times vp) (+ bias), for B given as 16-column blocks of kp / 32 tiles each.
void tiles_gemm(float* y, int64_t ldy, int64_t m, int64_t n, const uint16_t* ap, int64_t kp, const uint16_t* b,
                const float* bias, bool accumulate, const uint16_t* up = nullptr, int64_t rp = 0,
                const uint16_t* vp = nullptr) {
  const int64_t mp = round_up(m, 32);
  const bool low_rank = up != nullptr;
  // Items: a block of rows x a group of 32-column strips, run in chunks of the sum (16 tiles, 512
  // values): a chunk's B strips (32 KB per 32 columns) stay in L1/L2 while the block's 32-row strips pass
  // over them, and the block's A chunk (1 KB a row, at most 512 KB) stays in L2 while the strips go by;
  // the partial sums wait in y between chunks. Each row block streams all of B and each column group all
  // of A, so the shape is the one that moves the fewest bytes with work for every thread. A sum of one
  // chunk keeps at least four items a thread (dynamic claiming evens out a core slowed by a neighbour);
  // a longer one, whose A no longer stays in L2 between groups, takes the least traffic among shapes
  // that split the blocks evenly over the threads: for the LM head's input gradient (B 32 MB, A 8 MB)
  // one item a thread, each streaming A once (+10% on that GEMM, +25% on gate/up's input gradient in
  // the step; the one-chunk q/k/v forward ran 25-30% slower with one item a thread, hence the split).
  const int64_t threads = ThreadPool::global().size();
  const int64_t col_groups = round_up(n, 32) / 32;
  const double a_bytes = 2.0 * static_cast<double>(mp * kp), b_bytes = 2.0 * static_cast<double>(col_groups * 32 * kp);
  const int64_t total = mp / 32 * col_groups, even = (total + threads - 1) / threads;
  int64_t rb = 32, gb = 1;
  double best = -1;
  for (int64_t r = 32; r <= 512; r *= 2)
    for (int64_t g = 1; g <= 16; g *= 2) {
      if ((r > 32 && r / 2 >= mp) || (g > 1 && g / 2 >= col_groups)) continue;  // no bigger than needed
      const int64_t blocks = (mp + r - 1) / r, groups = (col_groups + g - 1) / g, items = blocks * groups;
      const int64_t per_item = std::min(r, mp) / 32 * std::min(g, col_groups);  // 32 x 32 blocks, at most
      const bool enough = kp <= 32 * kChunkTiles ? items >= 4 * threads
                                                 : (items + threads - 1) / threads * per_item <= even + even / 10;
      const double traffic = static_cast<double>(blocks) * b_bytes + static_cast<double>(groups) * a_bytes;
      // Prefer shapes with enough items; among those (or among none), the least traffic.
      const double score = (enough ? 0.0 : 1e18) + traffic;
      if (best < 0 || score < best) best = score, rb = std::min(r, mp), gb = std::min(g, col_groups);
    }
  const int64_t row_blocks = (mp + rb - 1) / rb, super_groups = (col_groups + gb - 1) / gb;
  const int64_t tiles = kp / 32;
  auto run = [&](int64_t begin, int64_t end) {
    ensure_tiles();
    for (int64_t item = begin; item < end; ++item) {
      const int64_t blk = item / super_groups, sg = item % super_groups;
      const int64_t r_begin = blk * rb, r_end = std::min(m, r_begin + rb);
      const int64_t g_begin = sg * gb, g_end = std::min(col_groups, g_begin + gb);
      for (int64_t kb0 = 0; kb0 < tiles; kb0 += kChunkTiles) {
        const int64_t kb1 = std::min(tiles, kb0 + kChunkTiles);
        const bool last = kb1 == tiles;
        for (int64_t g = g_begin; g < g_end; ++g) {
          const uint16_t* b0 = b + (2 * g) * tiles * kTile;
          const uint16_t* b1 = b0 + tiles * kTile;
          // The low-rank term's sum runs in the last chunk's tiles, after the main sum.
          ExtraTiles extra;
          if (low_rank && last) {
            const int64_t rt = rp / 32;
            extra = {up, rp, vp + (2 * g) * rt * kTile, vp + (2 * g + 1) * rt * kTile};
          }
          for (int64_t r0 = r_begin; r0 < r_end; r0 += 32)
            block_32x32(y, ldy, m, n, r0, g * 32, ap, kp, b0, b1, kb0, kb1, accumulate || kb0 > 0,
                        low_rank && last ? &extra : nullptr);
        }
      }
      if (!bias) continue;
      const int64_t c0 = g_begin * 32, nc = std::min(n, g_end * 32) - c0;
      for (int64_t r = r_begin; r < r_end; ++r)
        for (int64_t j = 0; j < nc; ++j) y[r * ldy + c0 + j] += bias[c0 + j];
    }
  };
  const int64_t items = row_blocks * super_groups;
  if (m * n * kp < 64 * kMinParallelWork) return run(0, items);
  ThreadPool::global().parallel_for(items, run, 1);
}

// y (m, n) (+)= bf16(x) (m, k) B (+ low_rank) (+ bias), for B given as 16-column blocks of kp / 32 tiles
// each.
void amx_gemm(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n, int64_t k,
              const uint16_t* b, const float* bias, bool accumulate, const AmxLowRank* lr) {
  TL_CHECK(bf16_tiles_available());
  if (m <= 0 || n <= 0) return;
  const int64_t kp = round_up(k, 32), mp = round_up(m, 32);
  thread_local AScratch scratch;
  uint16_t* ap = scratch.get(mp * kp);
  parallel_rows(mp / 16, 16 * kp, [&](int64_t s0, int64_t s1) { to_bf16_tiles(ap, kp, x, ldx, s0, s1, m, k); }, 1);
  if (!lr || lr->r <= 0) return tiles_gemm(y, ldy, m, n, ap, kp, b, bias, accumulate);
  const int64_t r = lr->r, rp = round_up(r, 32);
  const float* u = lr->u;
  int64_t ldu = lr->ldu;
  thread_local AScratch a_tiles, u_tiles, v_tiles;
  if (lr->a) {
    // u = x A^T (or dy B) from the input's tiles (LoRA's xa or dxa), written out for the caller.
    TL_CHECK(lr->xa);
    uint16_t* tp = a_tiles.get(rp * kp);
    pack_b(tp, lr->a, lr->lda, r, k, /*transposed=*/lr->per_output);
    tiles_gemm(lr->xa, ldu, m, r, ap, kp, tp, nullptr, false);
    u = lr->xa;
  }
  // The term's tiles: u scaled, then rounded; V packed as a B of n columns and an r-long sum.
  thread_local std::vector<float> u_scaled;
  if (lr->scale != 1.0f) {
    u = scaled_copy(u_scaled, u, ldu, m, r, lr->scale);
    ldu = r;
  }
  uint16_t* up = u_tiles.get(mp * rp);
  to_bf16_tiles(up, rp, u, ldu, 0, mp / 16, m, r);
  uint16_t* vp = v_tiles.get(round_up(n, 32) * rp);
  pack_b(vp, lr->v, lr->ldv, n, r, /*transposed=*/lr->per_output);
  tiles_gemm(y, ldy, m, n, ap, kp, b, bias, accumulate, up, rp, vp);
}

// 16 values of a row as f32, the lanes past `mask` zero: from f32, or from bf16 (exact, by a shift).
TL_AMX_TARGET inline __m512 load16(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }
TL_AMX_TARGET inline __m512 load16(const uint16_t* p, __mmask16 mask) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, p)), 16));
}

// B (k, n) row-major -> 16-column blocks of kp / 32 VNNI tiles: tile row i holds, for each of its 16
// columns, rows 2i and 2i + 1 of the tile's 32 rows of B, interleaved; tiles [kb0, kb1) of the sum only
// (kb1 = -1: all). Each pair of B's rows is read along its length, every 16-column block's tile row in
// turn: B's rows stream, where a block at a time read 64 bytes from each of k rows (for LoRA's dy and x
// in its bf16 weight gradients: 8% of a step's samples so, 5.4% now).
template <typename T>
TL_AMX_TARGET void pack_b_rowmajor(uint16_t* out, const T* b, int64_t ldb, int64_t n, int64_t k, int64_t np,
                                   int64_t kp, int64_t kb0 = 0, int64_t kb1 = -1) {
  alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i idx = _mm512_load_si512(kInterleave);
  const int64_t tiles = kp / 32;
  if (kb1 < 0) kb1 = tiles;
  for (int64_t kb = kb0; kb < kb1; ++kb)
    for (int64_t i = 0; i < 16; ++i) {
      const int64_t r = kb * 32 + 2 * i;
      for (int64_t cb = 0; cb < np / 16; ++cb) {
        const int64_t c0 = cb * 16;
        const __mmask16 cols = lane_mask(n - c0);
        const __m512 v0 = r < k ? load16(b + r * ldb + c0, cols) : _mm512_setzero_ps();
        const __m512 v1 = r + 1 < k ? load16(b + (r + 1) * ldb + c0, cols) : _mm512_setzero_ps();
        const __m512i both = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(v1, v0));
        _mm512_store_si512(out + (cb * tiles + kb) * kTile + i * 32, _mm512_permutexvar_epi16(idx, both));
      }
    }
}

// B given as X = B^T (n, k) row-major -> the same tiles: tile row i holds, for each column j, X's row j
// values 2i and 2i + 1 of the tile's 32, i.e. the 16 x 16 transpose of X's rows as pairs.
template <typename T>
TL_AMX_TARGET void pack_b_transposed(uint16_t* out, const T* x, int64_t ldx, int64_t n, int64_t k, int64_t np,
                                     int64_t kp) {
  const int64_t tiles = kp / 32;
  __m512i rows[16], cols[16];
  for (int64_t cb = 0; cb < np / 16; ++cb)
    for (int64_t kb = 0; kb < tiles; ++kb) {
      const int64_t c = kb * 32;
      const __mmask16 lo = lane_mask(k - c), hi = lane_mask(k - c - 16);
      for (int64_t j = 0; j < 16; ++j) {
        const int64_t row = cb * 16 + j;
        if (row >= n) {
          rows[j] = _mm512_setzero_si512();
          continue;
        }
        const T* src = x + row * ldx + c;
        const __m512 v0 = load16(src, lo), v1 = load16(src + 16, hi);
        rows[j] = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(v1, v0));
      }
      transpose16x16_epi32(rows, cols);
      uint16_t* tile = out + (cb * tiles + kb) * kTile;
      for (int64_t i = 0; i < 16; ++i) _mm512_store_si512(tile + i * 32, cols[i]);
    }
}

// All of B's tiles into out: n output columns (16-column blocks, padded to a multiple of 32 columns), a
// sum of k (kp / 32 tiles a block); B (k, n) row-major (bands of 32 rows in parallel), or given as B^T
// (n, k) when transposed (16-column blocks in parallel).
template <typename T>
void pack_b(uint16_t* out, const T* b, int64_t ldb, int64_t n, int64_t k, bool transposed) {
  const int64_t kp = round_up(std::max<int64_t>(k, 1), 32), tiles = kp / 32, np = round_up(n, 32);
  if (!transposed) {
    parallel_rows(tiles, 32 * np, [&](int64_t kb0, int64_t kb1) { pack_b_rowmajor(out, b, ldb, n, k, np, kp, kb0, kb1); }, 1);
    return;
  }
  parallel_rows(np / 16, 16 * kp, [&](int64_t b0, int64_t b1) {
    for (int64_t cb = b0; cb < b1; ++cb) {
      const int64_t c0 = cb * 16, nc = std::max<int64_t>(0, std::min<int64_t>(16, n - c0));
      uint16_t* dst = out + cb * tiles * kTile;
      pack_b_transposed(dst, b + std::min(c0, n - 1) * ldb, ldb, nc, k, 16, kp);
    }
  }, 1);
}

}  // namespace

void amx_matmul(float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                int64_t ldb, AmxB layout, float alpha, bool accumulate, bool a_transposed) {
  TL_CHECK(bf16_tiles_available());
  TL_CHECK(alpha == 1.0f || !accumulate);
  if (m <= 0 || n <= 0) return;
  const int64_t kp = round_up(std::max<int64_t>(k, 1), 32), mp = round_up(m, 32), np = round_up(n, 32);
  thread_local AScratch a_buf, b_buf;
  uint16_t* ap = a_buf.get(mp * kp);
  uint16_t* bp = b_buf.get(np * kp);
  if (a_transposed) to_bf16_tiles_transposed(ap, kp, a, lda, m, k);
  else to_bf16_tiles(ap, kp, a, lda, 0, mp / 16, m, k);
  if (layout == AmxB::kRowMajor) pack_b_rowmajor(bp, b, ldb, n, k, np, kp);
  else pack_b_transposed(bp, b, ldb, n, k, np, kp);
  ensure_tiles();
  const int64_t tiles = kp / 32;
  for (int64_t g = 0; g < np / 32; ++g) {
    const uint16_t* b0 = bp + (2 * g) * tiles * kTile;
    for (int64_t r0 = 0; r0 < m; r0 += 32)
      block_32x32(c, ldc, m, n, r0, g * 32, ap, kp, b0, b0 + tiles * kTile, 0, tiles, accumulate);
  }
  if (alpha == 1.0f) return;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) c[i * ldc + j] *= alpha;
}

void amx_gemm_tn(float* c, int64_t ldc, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float alpha, bool accumulate) {
  TL_CHECK(bf16_tiles_available());
  if (m <= 0 || n <= 0) return;
  const int64_t kp = round_up(std::max<int64_t>(k, 1), 32), mp = round_up(m, 32);
  thread_local AScratch a_buf, b_buf;
  thread_local std::vector<float> a_scaled;
  if (alpha != 1.0f) {
    a = scaled_copy(a_scaled, a, lda, k, m, alpha);
    lda = m;
  }
  uint16_t* ap = a_buf.get(mp * kp);
  to_bf16_tiles_transposed(ap, kp, a, lda, m, k);
  uint16_t* bp = b_buf.get(round_up(n, 32) * kp);
  pack_b(bp, b, ldb, n, k, /*transposed=*/false);
  tiles_gemm(c, ldc, m, n, ap, kp, bp, nullptr, accumulate);
}

bool bf16_tiles_available() { return amx_state().ok; }
std::string bf16_tiles_unavailable_reason() { return amx_state().reason; }
const char* bf16_tiles_unit() { return !amx_state().ok ? "none" : amx_state().amx ? "AMX" : "AVX512-BF16"; }

void AmxMatrix::Free::operator()(uint16_t* p) const { std::free(p); }

AmxMatrix AmxMatrix::pack(const float* w, int64_t n, int64_t k, int64_t ldw) {
  TL_CHECK(n > 0 && k > 0);
  if (ldw == 0) ldw = k;
  AmxMatrix m;
  m.n_ = n;
  m.k_ = k;
  const int64_t kp = m.k_pad(), np = m.n_pad();
  // Forward: B = W^T, given as W; the sum runs over W's columns.
  m.fwd_elems_ = np / 16 * (kp / 32) * kTile;
  m.fwd_.reset(alloc_bf16(m.fwd_elems_));
  pack_b(m.fwd_.get(), w, ldw, n, k, /*transposed=*/true);
  // Backward: B = W itself; the sum runs over W's rows.
  m.bwd_elems_ = round_up(k, 32) / 16 * (np / 32) * kTile;
  m.bwd_.reset(alloc_bf16(m.bwd_elems_));
  pack_b(m.bwd_.get(), w, ldw, k, n, /*transposed=*/false);
  return m;
}

namespace {

template <typename T>
void gemm_packing_b(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n, int64_t k, const T* b,
                    int64_t ldb, bool b_transposed, const float* bias, bool accumulate, const AmxLowRank* low_rank) {
  TL_CHECK(bf16_tiles_available());
  if (m <= 0 || n <= 0) return;
  const int64_t kp = round_up(std::max<int64_t>(k, 1), 32), np = round_up(n, 32);
  // B's tiles for this call, on the caller's scratch.
  thread_local AScratch b_buf;
  uint16_t* bp = b_buf.get(np * kp);
  pack_b(bp, b, ldb, n, k, b_transposed);
  amx_gemm(y, ldy, x, ldx, m, n, k, bp, bias, accumulate, low_rank);
}

}  // namespace

void amx_gemm_b(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n, int64_t k, const float* b,
                int64_t ldb, bool b_transposed, const float* bias, bool accumulate, const AmxLowRank* low_rank) {
  gemm_packing_b(y, ldy, x, ldx, m, n, k, b, ldb, b_transposed, bias, accumulate, low_rank);
}

void amx_gemm_b(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, int64_t n, int64_t k,
                const uint16_t* b, int64_t ldb, bool b_transposed, const float* bias, bool accumulate,
                const AmxLowRank* low_rank) {
  gemm_packing_b(y, ldy, x, ldx, m, n, k, b, ldb, b_transposed, bias, accumulate, low_rank);
}

uint16_t AmxMatrix::at(int64_t r, int64_t c) const {
  const int64_t nb = r / 16, kb = c / 32, i = (c % 32) / 2, j = c % 2;
  return fwd_[static_cast<size_t>((nb * (k_pad() / 32) + kb) * kTile + i * 32 + 2 * (r % 16) + j)];
}

uint16_t AmxMatrix::at_bwd(int64_t r, int64_t c) const {
  const int64_t cb = c / 16, nb = r / 32, i = (r % 32) / 2, j = r % 2;
  return bwd_[static_cast<size_t>((cb * (n_pad() / 32) + nb) * kTile + i * 32 + 2 * (c % 16) + j)];
}

void amx_gemm_xwt(float* y, int64_t ldy, const float* x, int64_t ldx, int64_t m, const AmxMatrix& w,
                  const float* bias, bool accumulate, const AmxLowRank* low_rank) {
  amx_gemm(y, ldy, x, ldx, m, w.rows(), w.cols(), w.fwd(), bias, accumulate, low_rank);
}

void amx_gemm_dyw(float* dx, int64_t lddx, const float* dy, int64_t lddy, int64_t m, const AmxMatrix& w,
                  bool accumulate, const AmxLowRank* low_rank) {
  amx_gemm(dx, lddx, dy, lddy, m, w.cols(), w.rows(), w.bwd(), nullptr, accumulate, low_rank);
}

}  // namespace tl
