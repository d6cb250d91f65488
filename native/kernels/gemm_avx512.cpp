// AVX-512 GEMM micro-kernels (layouts in gemm_kernels.h):
//   avx512      f32: a 6 x 64 tile of C in 24 zmm accumulators; a step loads 4 B vectors and
//               broadcasts 6 A values (10 loads for 24 FMAs).
//   avx512bf16  the same tile over bf16 k-pairs: vdpbf16ps adds a(2p) b(2p) + a(2p+1) b(2p+1)
//               to each f32 lane, B packed in pairs, A as bf16 rows broadcast a pair at a time.
// and their packers: B's two orientations (rows contiguous along j, or along k: a weight read as
// W^T, transposed 16 x 16 in registers), f32 -> bf16 rounding (RNE, as f32_to_bf16) in vectors.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "gemm.h"
#include "gemm_kernels.h"
#include "gemm_x86.h"

#if defined(__x86_64__) || defined(_M_X64)

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,fma")

namespace vlatext {
namespace gemm_detail {
namespace {

constexpr int kMR = 6, kNV = 4, kNR = 16 * kNV;

// ---- f32 ----

constexpr int kFMR = 6, kFNV = 4, kFNR = 16 * kFNV;

// Bp[k * 64 + j] = S(j, k). f32 or bf16 (widened) sources with rows contiguous along j or
// along k; anything else, and partial panels, through the generic loop.
void pack_b_f32(void* dst_, const void* src, DType dt, int64_t sj, int64_t sk, int64_t w, int64_t kc, int64_t kc_pad) {
  float* dst = static_cast<float*>(dst_);
  if (w != kFNR || (sj != 1 && sk != 1)) return pack_b_f32_generic<kFNR>(dst, src, dt, sj, sk, w, kc, kc_pad);
  if (sj == 1) {
    for (int64_t k = 0; k < kc; k++)
      for (int v = 0; v < kFNV; v++) _mm512_store_ps(dst + k * kFNR + 16 * v, load16_f32(src, dt, k * sk + 16 * v, 0xffff));
  } else {
    // sk == 1: 16 columns x 16 k at a time, transposed in registers
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
      const int kn = kc - k0 < 16 ? (int)(kc - k0) : 16;
      const __mmask16 mask = (__mmask16)((1u << kn) - 1);
      for (int v = 0; v < kFNV; v++) {
        __m512 r[16];
        for (int j = 0; j < 16; j++) r[j] = load16_f32(src, dt, (16 * v + j) * sj + k0, mask);
        transpose16(r);
        for (int t = 0; t < kn; t++) _mm512_store_ps(dst + (k0 + t) * kFNR + 16 * v, r[t]);
      }
    }
  }
  for (int64_t k = kc; k < kc_pad; k++)
    for (int v = 0; v < kFNV; v++) _mm512_store_ps(dst + k * kFNR + 16 * v, _mm512_setzero_ps());
}

AView prep_a_f32(void* buf, const void* src, DType dt, int64_t sam, int64_t sak, int64_t m, int64_t kc, int64_t kc_pad) {
  return prep_a_f32_generic<kFMR>(buf, src, dt, sam, sak, m, kc, kc_pad);
}

int64_t a_elems_f32(int64_t mc_pad, int64_t kc_pad) { return mc_pad * kc_pad; }

// c (6, 64) (+)= sum_k A(i, k) Bp[k * 64 + j]
void micro_f32(int64_t kc, const void* a_, int64_t ars, int64_t aks, int mv, const void* bp_, float* C, int64_t ldc, bool add) {
  const float* a = static_cast<const float*>(a_);
  const float* bp = static_cast<const float*>(bp_);
  int64_t off[kFMR];
  for (int i = 0; i < kFMR; i++) off[i] = (i < mv ? i : 0) * ars;
  __m512 c[kFMR][kFNV];
#pragma GCC unroll 6
  for (int i = 0; i < kFMR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < kFNV; v++) c[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    __m512 b[kFNV];
#pragma GCC unroll 4
    for (int v = 0; v < kFNV; v++) b[v] = _mm512_load_ps(bp + k * kFNR + 16 * v);
    const float* ak = a + k * aks;
#pragma GCC unroll 6
    for (int i = 0; i < kFMR; i++) {
      const __m512 x = _mm512_set1_ps(ak[off[i]]);
#pragma GCC unroll 4
      for (int v = 0; v < kFNV; v++) c[i][v] = _mm512_fmadd_ps(x, b[v], c[i][v]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < kFMR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < kFNV; v++) {
      float* ci = C + i * ldc + 16 * v;
      _mm512_storeu_ps(ci, add ? _mm512_add_ps(c[i][v], _mm512_loadu_ps(ci)) : c[i][v]);
    }
}

// ---- bf16 (vdpbf16ps) ----

// Bp dwords D[kp * 64 + j] = (S(j, 2kp), S(j, 2kp + 1)), f32 rounded.
void pack_b_pairs(void* dst, const void* src, DType dt, int64_t sj, int64_t sk, int64_t w, int64_t kc, int64_t kc_pad) {
  pack_pairs<kNR>(static_cast<uint32_t*>(dst), src, dt, sj, sk, w, kc, kc_pad);
}

// bf16 rows, lda = kc_pad + 32 (a row stride off the 4 KB aliasing of a power of two)
int64_t a_lda(int64_t kc_pad) { return kc_pad + 32; }
int64_t a_elems_bf16(int64_t mc_pad, int64_t kc_pad) { return mc_pad * a_lda(kc_pad); }

AView prep_a_bf16(void* buf, const void* src, DType dt, int64_t sam, int64_t sak, int64_t m, int64_t kc, int64_t kc_pad) {
  const int64_t lda = a_lda(kc_pad), m_pad = (m + kMR - 1) / kMR * kMR;
  pack_rows_bf16(static_cast<uint16_t*>(buf), lda, src, dt, sam, sak, m, m_pad, kc, kc_pad);
  return AView{buf, lda / 2, 1, kMR * lda / 2};
}

// c (6, 64) (+)= sum_kp A(i, kp) . Bp(kp, j) over bf16 pairs
void micro_bf16(int64_t kc_pad, const void* a_, int64_t ars, int64_t aks, int mv, const void* bp_, float* C, int64_t ldc, bool add) {
  const int32_t* a = static_cast<const int32_t*>(a_);
  const int32_t* bp = static_cast<const int32_t*>(bp_);
  (void)mv;  // rows past mv are zeros in the prepared block
  int64_t off[kMR];
  for (int i = 0; i < kMR; i++) off[i] = i * ars;
  __m512 c[kMR][kNV];
#pragma GCC unroll 6
  for (int i = 0; i < kMR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; v++) c[i][v] = _mm512_setzero_ps();
  const int64_t kp_n = kc_pad / 2;
  for (int64_t kp = 0; kp < kp_n; kp++) {
    __m512bh b[kNV];
#pragma GCC unroll 4
    for (int v = 0; v < kNV; v++) b[v] = (__m512bh)_mm512_load_si512(bp + kp * kNR + 16 * v);
    const int32_t* ak = a + kp * aks;
#pragma GCC unroll 6
    for (int i = 0; i < kMR; i++) {
      const __m512bh x = (__m512bh)_mm512_set1_epi32(ak[off[i]]);
#pragma GCC unroll 4
      for (int v = 0; v < kNV; v++) c[i][v] = _mm512_dpbf16_ps(c[i][v], x, b[v]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < kMR; i++)
#pragma GCC unroll 4
    for (int v = 0; v < kNV; v++) {
      float* ci = C + i * ldc + 16 * v;
      _mm512_storeu_ps(ci, add ? _mm512_add_ps(c[i][v], _mm512_loadu_ps(ci)) : c[i][v]);
    }
}

}  // namespace
}  // namespace gemm_detail
}  // namespace vlatext

#pragma GCC pop_options

namespace vlatext {
namespace gemm_detail {

// Blocks (measured at the 20M and 0.5B models' shapes): a B panel of kc = 128 (32 KB) stays in L1
// across the row tiles; the B block (nc = 256 columns, 128 KB) and the C block it updates
// (mc = 240 rows x 256, 240 KB) stay in L2 across the reduction blocks; A streams from L2.
const Kernel& kernel_avx512() {
  static const Kernel k{"avx512", kFMR, kFNR, 1, 128, 240, 256, 4, false, pack_b_f32, prep_a_f32, a_elems_f32, micro_f32, nullptr, nullptr};
  return k;
}

// the same blocks (in bf16, half the bytes)
const Kernel& kernel_avx512bf16() {
  static const Kernel k{"avx512bf16", kMR, kNR, 2, 256, 240, 256, 2, true, pack_b_pairs, prep_a_bf16, a_elems_bf16, micro_bf16, nullptr, nullptr};
  return k;
}

}  // namespace gemm_detail
}  // namespace vlatext

#endif
