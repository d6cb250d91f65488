// AMX GEMM micro-kernel (layouts in gemm_kernels.h): a 32 x 32 tile of C as 2 x 2 AMX tiles of
// 16 x 16 f32 (tmm0-3), two A tiles of 16 rows x 32 bf16 (tmm4-5) and two B tiles of 16 k-pairs x
// 16 columns (tmm6-7) per 32 steps of the reduction: four tdpbf16ps, each 16 x 16 x 32.
// Every thread that runs it loads the tile configuration first and releases the tiles after
// (Kernel::thread_begin / thread_end), so no tile state outlives a call.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include <cstring>

#include "gemm.h"
#include "gemm_kernels.h"
#include "gemm_x86.h"

#if defined(__x86_64__) || defined(_M_X64)

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,amx-tile,amx-bf16")

namespace vlatext {
namespace gemm_detail {
namespace {

constexpr int kMR = 32, kNR = 32, kKB = 32;

// The 64-byte tile configuration (palette 1): 8 tiles of 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

void tiles_begin() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  // gcc 12's ldtilecfg builtin does not tell the optimizer that it reads cfg (the stores above
  // were dropped as dead): a compiler barrier keeps them
  __asm__ volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

void tiles_end() { _tile_release(); }

// B: bf16 pairs of 32 columns; one 16-column tile row is one k-pair (64 bytes), rows 128 bytes apart.
void pack_b(void* dst, const void* src, DType dt, int64_t sj, int64_t sk, int64_t w, int64_t kc, int64_t kc_pad) {
  pack_pairs<kNR>(static_cast<uint32_t*>(dst), src, dt, sj, sk, w, kc, kc_pad);
}

// A: per 32 rows and 32 k, a 32 x 32 bf16 block (rows 0-15: tile 4, rows 16-31: tile 5), rows past m zero.
AView prep_a(void* buf, const void* src, DType dt, int64_t sam, int64_t sak, int64_t m, int64_t kc, int64_t kc_pad) {
  uint16_t* d = static_cast<uint16_t*>(buf);
  const int64_t nkb = kc_pad / kKB, m_pad = (m + kMR - 1) / kMR * kMR, es = (int64_t)dtype_size(dt);
  for (int64_t i = 0; i < m_pad; i++) {
    const int64_t t = i / kMR, r = i % kMR;
    for (int64_t kb = 0; kb < nkb; kb++) {
      uint16_t* row = d + ((t * nkb + kb) * kMR + r) * kKB;
      const int64_t left = kc - kb * kKB, n = i >= m || left <= 0 ? 0 : left < kKB ? left : kKB;
      convert_bf16(row, static_cast<const char*>(src) + (i * sam + kb * kKB * sak) * es, dt, sak, n, kKB);
    }
  }
  return AView{buf, 0, 0, kMR * kc_pad / 2};
}

int64_t a_elems(int64_t mc_pad, int64_t kc_pad) { return mc_pad * kc_pad; }

// c (32, 32) (+)= A panel . B panel, 32 k a step
void micro(int64_t kc_pad, const void* a_, int64_t ars, int64_t aks, int mv, const void* bp_, float* C, int64_t ldc, bool add) {
  (void)ars, (void)aks, (void)mv;
  const uint16_t* a = static_cast<const uint16_t*>(a_);
  const uint16_t* b = static_cast<const uint16_t*>(bp_);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  // loads interleaved with the products that need them: the tile registers are not renamed, so a
  // load waits for the last product reading its register; in this order each product can start
  // as soon as its two operands are in
  const int64_t nkb = kc_pad / kKB;
  for (int64_t kb = 0; kb < nkb; kb++) {
    const uint16_t* ak = a + kb * kMR * kKB;
    const uint16_t* bk = b + kb * kKB * kNR;  // 16 pairs x 32 columns x 2
    _tile_loadd(4, ak, 64);
    _tile_loadd(6, bk, kNR * 4);
    _tile_dpbf16ps(0, 4, 6);
    _tile_loadd(7, bk + 32, kNR * 4);
    _tile_dpbf16ps(1, 4, 7);
    _tile_loadd(5, ak + 16 * kKB, 64);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  // C through a 4 KB buffer in L1 and vector adds: tile loads and stores of C rows a row stride
  // apart ran at a third of this speed (bench: 512 x 4864 x 896)
  alignas(64) float t[kMR * kNR];
  _tile_stored(0, t, kNR * 4);
  _tile_stored(1, t + 16, kNR * 4);
  _tile_stored(2, t + 16 * kNR, kNR * 4);
  _tile_stored(3, t + 16 * kNR + 16, kNR * 4);
  for (int i = 0; i < kMR; i++) {
    __m512 lo = _mm512_load_ps(t + i * kNR), hi = _mm512_load_ps(t + i * kNR + 16);
    if (add) lo = _mm512_add_ps(lo, _mm512_loadu_ps(C + i * ldc)), hi = _mm512_add_ps(hi, _mm512_loadu_ps(C + i * ldc + 16));
    _mm512_storeu_ps(C + i * ldc, lo);
    _mm512_storeu_ps(C + i * ldc + 16, hi);
  }
}

}  // namespace
}  // namespace gemm_detail
}  // namespace vlatext

#pragma GCC pop_options

namespace vlatext {
namespace gemm_detail {

// kc = 256: a B panel (256 x 32 bf16, 16 KB) stays in L1 across the row tiles, beside the A panel
// streaming in from L2 (16 KB a tile); the A block (mc x kc) and the B block (nc x kc) in L2.
const Kernel& kernel_amx() {
  static const Kernel k{"amx", kMR, kNR, kKB, 256, 256, 256, 2, true, pack_b, prep_a, a_elems, micro, tiles_begin, tiles_end};
  return k;
}

}  // namespace gemm_detail
}  // namespace vlatext

#endif
