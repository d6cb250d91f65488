// AVX-512 helpers shared by the GEMM files (gemm_avx512.cpp, gemm_amx.cpp, gemv.cpp). All
// static inline and compiled for AVX-512 here (their own target region), so every file has
// its own copy and code built for the baseline never calls them. Layouts: gemm_kernels.h.
#pragma once

#if defined(__x86_64__) || defined(_M_X64)

#include <immintrin.h>

#include <cstdint>

#include "../core/dtype.h"

// gcc 12 warns falsely about the _mm512_undefined_* placeholders inside the AVX-512 intrinsics
// (gcc bug 105593) wherever they are inlined: off for the files that include this header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl")

namespace vlatext {
namespace gemm_detail {

// 16 values src[off ..] (lanes outside mask zero) as f32: f32 loaded, bf16 widened exactly.
static inline __m512 load16_f32(const void* src, DType dt, int64_t off, __mmask16 mask) {
  if (dt == DType::F32) return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(src) + off);
  const __m256i h = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(src) + off);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// x rounded to bf16 (RNE, NaN kept quiet: as f32_to_bf16), the result in each lane's upper 16 bits.
static inline __m512i rne_bf16_hi(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
}

// 16 values src[off ..] as bf16 in the low 16 bits of each dword (upper bits zero).
static inline __m512i load16_bf16_lo(const void* src, DType dt, int64_t off, __mmask16 mask) {
  if (dt == DType::BF16) return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(src) + off));
  return _mm512_srli_epi32(rne_bf16_hi(_mm512_maskz_loadu_ps(mask, static_cast<const float*>(src) + off)), 16);
}

// 16 bf16 pairs src[off .. off + 2n) (n <= 16 pairs) as dwords (pair p: element 2p low, 2p + 1 high).
static inline __m512i load16_pairs(const void* src, DType dt, int64_t off, int n) {
  if (dt == DType::BF16) return _mm512_maskz_loadu_epi32((__mmask16)((1u << n) - 1), static_cast<const uint16_t*>(src) + off);
  // f32: rounded, narrowed to 16 words per 16 floats; consecutive words are the pairs
  const float* s = static_cast<const float*>(src) + off;
  const int lo = n >= 8 ? 16 : 2 * n, hi = n >= 8 ? 2 * (n - 8) : 0;
  const __m256i a = _mm512_cvtepi32_epi16(_mm512_srli_epi32(rne_bf16_hi(_mm512_maskz_loadu_ps((__mmask16)((1u << lo) - 1), s)), 16));
  const __m256i b = _mm512_cvtepi32_epi16(_mm512_srli_epi32(rne_bf16_hi(_mm512_maskz_loadu_ps((__mmask16)((1u << hi) - 1), s + 16)), 16));
  return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}

// r[i][j] <- r[j][i] for 16 x 16 floats (or dwords, cast).
static inline void transpose16(__m512 (&r)[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  __m512 u[16];
  for (int g = 0; g < 4; g++) {
    const __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]), t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  // u[4g + q], 128-bit lane L: column 4L + q of rows 4g .. 4g + 3
  for (int q = 0; q < 4; q++) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44), v1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
    const __m512 w0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xee), w1 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xee);
    r[q] = _mm512_shuffle_f32x4(v0, v1, 0x88);
    r[4 + q] = _mm512_shuffle_f32x4(v0, v1, 0xdd);
    r[8 + q] = _mm512_shuffle_f32x4(w0, w1, 0x88);
    r[12 + q] = _mm512_shuffle_f32x4(w0, w1, 0xdd);
  }
}

static inline uint16_t bf16_at(const void* src, DType dt, int64_t at) { return dt == DType::BF16 ? static_cast<const uint16_t*>(src)[at] : f32_to_bf16(static_cast<const float*>(src)[at]); }

// A bf16 pair panel of W columns: dwords D[kp * W + j] = (S(j, 2kp), S(j, 2kp + 1)),
// S(j, k) = src[j * sj + k * sk], zeros past w and kc; kc_pad even.
template <int W>
static inline void pack_pairs(uint32_t* dst, const void* src, DType dt, int64_t sj, int64_t sk, int64_t w, int64_t kc, int64_t kc_pad) {
  const int64_t kp_n = kc_pad / 2, kp_full = w == W && (sj == 1 || sk == 1) ? kc / 2 : 0;
  if (kp_full > 0 && sk == 1) {
    // pairs contiguous in each column's source: 16 pairs of 16 columns, transposed as dwords
    for (int64_t kp0 = 0; kp0 < kp_full; kp0 += 16) {
      const int n = kp_full - kp0 < 16 ? (int)(kp_full - kp0) : 16;
      for (int v = 0; v < W / 16; v++) {
        __m512 r[16];
        for (int j = 0; j < 16; j++) r[j] = _mm512_castsi512_ps(load16_pairs(src, dt, (16 * v + j) * sj + 2 * kp0, n));
        transpose16(r);
        for (int t = 0; t < n; t++) _mm512_store_ps(reinterpret_cast<float*>(dst + (kp0 + t) * W + 16 * v), r[t]);
      }
    }
  } else if (kp_full > 0) {
    // sj == 1: rows of k contiguous along j; interleave rows 2kp and 2kp + 1
    for (int64_t kp = 0; kp < kp_full; kp++)
      for (int v = 0; v < W / 16; v++) {
        const __m512i lo = load16_bf16_lo(src, dt, 2 * kp * sk + 16 * v, 0xffff), hi = load16_bf16_lo(src, dt, (2 * kp + 1) * sk + 16 * v, 0xffff);
        _mm512_store_si512(dst + kp * W + 16 * v, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
      }
  }
  for (int64_t kp = kp_full; kp < kp_n; kp++)
    for (int64_t j = 0; j < W; j++) {
      const uint32_t lo = j < w && 2 * kp < kc ? bf16_at(src, dt, j * sj + 2 * kp * sk) : 0u;
      const uint32_t hi = j < w && 2 * kp + 1 < kc ? bf16_at(src, dt, j * sj + (2 * kp + 1) * sk) : 0u;
      dst[kp * W + j] = lo | hi << 16;
    }
}

// d[0 .. n) = bf16 of s[k * sk] (f32 rounded), zeros to n_pad.
static inline void convert_bf16(uint16_t* d, const void* s, DType dt, int64_t sk, int64_t n, int64_t n_pad) {
  int64_t k = 0;
  if (sk == 1)
    for (; k < n; k += 16) {
      const int c = n - k < 16 ? (int)(n - k) : 16;
      const __mmask16 mask = (__mmask16)((1u << c) - 1);
      _mm256_mask_storeu_epi16(d + k, mask, _mm512_cvtepi32_epi16(load16_bf16_lo(s, dt, k, mask)));
    }
  for (; k < n; k++) d[k] = bf16_at(s, dt, k * sk);
  for (k = n; k < n_pad; k++) d[k] = 0;
}

// bf16 rows d[i * lda + k] of A(i, k) = src[i * sam + k * sak]: rows m .. m_pad and k past kc zero.
static inline void pack_rows_bf16(uint16_t* d, int64_t lda, const void* src, DType dt, int64_t sam, int64_t sak, int64_t m, int64_t m_pad, int64_t kc, int64_t kc_pad) {
  const int64_t es = (int64_t)dtype_size(dt);
  for (int64_t i = 0; i < m_pad; i++) {
    if (i < m) convert_bf16(d + i * lda, static_cast<const char*>(src) + i * sam * es, dt, sak, kc, kc_pad);
    else
      for (int64_t k = 0; k < kc_pad; k++) d[i * lda + k] = 0;
  }
}

}  // namespace gemm_detail
}  // namespace vlatext

#pragma GCC pop_options

#endif
