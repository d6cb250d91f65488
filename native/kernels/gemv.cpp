// GEMV for decoding (gemm.h, kGemvRows): C (M, N) (+)= A (M, K) . B with M <= 8 rows and
// B(k, j) = B[j * sbn + k], the rows of a weight (N, K). Memory-bound: each weight row is read
// once, with full-line loads, against all M activation rows (in L1), R rows of the weight at
// a time (R streams, the next R rows prefetched line for line meanwhile: a weight row is only
// 28-56 lines, too short for the hardware prefetcher to lock on); bf16 weights are widened in
// registers and multiplied in f32.
//   avx512 bf16: one 64-byte load is 32 weights; x << 16 is the even ones as f32, x & 0xffff0000
//   the odd ones, so the activations are split into even and odd halves per 32 once a call.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "gemm.h"
#include "gemm_kernels.h"
#include "gemm_x86.h"

namespace vlatext {
namespace gemm_detail {

void gemv_portable(float* C, int64_t ldc, const float* A, int64_t lda, ConstTensorRef B, int64_t sbn, int64_t M, int64_t K, int64_t j0, int64_t j1, bool accumulate, float* scratch) {
  (void)scratch;
  for (int64_t j = j0; j < j1; j++)
    for (int64_t i = 0; i < M; i++) {
      const float* a = A + i * lda;
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t k = 0;
      if (B.dtype == DType::F32) {
        const float* w = B.f32() + j * sbn;
        for (; k + 8 <= K; k += 8)
          for (int u = 0; u < 8; u++) acc[u] += a[k + u] * w[k + u];
        for (; k < K; k++) acc[0] += a[k] * w[k];
      } else {
        const uint16_t* w = B.bf16() + j * sbn;
        for (; k + 8 <= K; k += 8)
          for (int u = 0; u < 8; u++) acc[u] += a[k + u] * bf16_to_f32(w[k + u]);
        for (; k < K; k++) acc[0] += a[k] * bf16_to_f32(w[k]);
      }
      const float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      C[i * ldc + j] = accumulate ? C[i * ldc + j] + s : s;
    }
}

}  // namespace gemm_detail
}  // namespace vlatext

#if defined(__x86_64__) || defined(_M_X64)

// ---- AVX2 + FMA: 8 floats a vector, tails in scalar ----
#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace vlatext {
namespace gemm_detail {
namespace {

inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline __m256 load8(const void* w, bool bf16, int64_t k) {
  if (!bf16) return _mm256_loadu_ps(static_cast<const float*>(w) + k);
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + k));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

inline float scalar_at(const void* w, bool bf16, int64_t k) { return bf16 ? bf16_to_f32(static_cast<const uint16_t*>(w)[k]) : static_cast<const float*>(w)[k]; }

// R columns j .. j + R against M rows: acc[i][r] 8 lanes of sum_k A(i, k) W(j + r, k)
template <int M, int R>
void cols_avx2(float* C, int64_t ldc, const float* A, int64_t lda, const void* W, bool bf16, int64_t sbn, int64_t K, int64_t j, bool accumulate) {
  const int64_t es = bf16 ? 2 : 4;
  const char* w[R];
  for (int r = 0; r < R; r++) w[r] = static_cast<const char*>(W) + (j + r) * sbn * es;
  __m256 acc[M][R];
  for (int i = 0; i < M; i++)
    for (int r = 0; r < R; r++) acc[i][r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    __m256 x[R];
    for (int r = 0; r < R; r++) x[r] = load8(w[r], bf16, k);
    for (int i = 0; i < M; i++) {
      const __m256 a = _mm256_loadu_ps(A + i * lda + k);
      for (int r = 0; r < R; r++) acc[i][r] = _mm256_fmadd_ps(a, x[r], acc[i][r]);
    }
  }
  for (int i = 0; i < M; i++)
    for (int r = 0; r < R; r++) {
      float s = hsum8(acc[i][r]);
      for (int64_t kk = k; kk < K; kk++) s += A[i * lda + kk] * scalar_at(w[r], bf16, kk);
      float* c = C + i * ldc + j + r;
      *c = accumulate ? *c + s : s;
    }
}

template <int M>
void rows_avx2(float* C, int64_t ldc, const float* A, int64_t lda, const void* W, bool bf16, int64_t sbn, int64_t K, int64_t j0, int64_t j1, bool accumulate) {
  constexpr int R = M <= 2 ? 4 : M <= 4 ? 2 : 1;
  int64_t j = j0;
  for (; j + R <= j1; j += R) cols_avx2<M, R>(C, ldc, A, lda, W, bf16, sbn, K, j, accumulate);
  for (; j < j1; j++) cols_avx2<M, 1>(C, ldc, A, lda, W, bf16, sbn, K, j, accumulate);
}

}  // namespace

void gemv_avx2(float* C, int64_t ldc, const float* A, int64_t lda, ConstTensorRef B, int64_t sbn, int64_t M, int64_t K, int64_t j0, int64_t j1, bool accumulate, float* scratch) {
  (void)scratch;
  const bool bf16 = B.dtype == DType::BF16;
  switch (M) {
    case 1: return rows_avx2<1>(C, ldc, A, lda, B.data, bf16, sbn, K, j0, j1, accumulate);
    case 2: return rows_avx2<2>(C, ldc, A, lda, B.data, bf16, sbn, K, j0, j1, accumulate);
    case 3: return rows_avx2<3>(C, ldc, A, lda, B.data, bf16, sbn, K, j0, j1, accumulate);
    case 4: return rows_avx2<4>(C, ldc, A, lda, B.data, bf16, sbn, K, j0, j1, accumulate);
    case 5: return rows_avx2<5>(C, ldc, A, lda, B.data, bf16, sbn, K, j0, j1, accumulate);
    case 6: return rows_avx2<6>(C, ldc, A, lda, B.data, bf16, sbn, K, j0, j1, accumulate);
    case 7: return rows_avx2<7>(C, ldc, A, lda, B.data, bf16, sbn, K, j0, j1, accumulate);
    default: return rows_avx2<8>(C, ldc, A, lda, B.data, bf16, sbn, K, j0, j1, accumulate);
  }
}

}  // namespace gemm_detail
}  // namespace vlatext

#pragma GCC pop_options

// ---- AVX-512: 64-byte loads, masked tails ----
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,fma")

namespace vlatext {
namespace gemm_detail {
namespace {

// C(i, j + r) (+)= the horizontal sum of acc[i][r]
template <int M, int R>
inline void store_sums(float* C, int64_t ldc, int64_t j, __m512 (&acc)[M][R], bool accumulate) {
#pragma GCC unroll 8
  for (int i = 0; i < M; i++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const float s = _mm512_reduce_add_ps(acc[i][r]);
      float* c = C + i * ldc + j + r;
      *c = accumulate ? *c + s : s;
    }
}

// f32 weight: R columns, 16 k a step (one line of each of R weight rows); the last step masked
template <int M, int R>
void cols_f32(float* C, int64_t ldc, const float* A, int64_t lda, const float* W, int64_t sbn, int64_t K, int64_t j, bool accumulate) {
  const float* w[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) w[r] = W + (j + r) * sbn;
  __m512 acc[M][R];
#pragma GCC unroll 8
  for (int i = 0; i < M; i++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) acc[i][r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 mask = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
    __m512 x[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      x[r] = _mm512_maskz_loadu_ps(mask, w[r] + k);
      _mm_prefetch(reinterpret_cast<const char*>(w[r] + R * sbn + k), _MM_HINT_T0);  // the next R rows
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; i++) {
      const __m512 a = _mm512_maskz_loadu_ps(mask, A + i * lda + k);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) acc[i][r] = _mm512_fmadd_ps(a, x[r], acc[i][r]);
    }
  }
  store_sums<M, R>(C, ldc, j, acc, accumulate);
}

// bf16 weight: R columns, 32 k a step against the even/odd-split activations Ae (lda = Kp);
// even and odd products in separate accumulators (no chain of two FMAs a step)
template <int M, int R>
void cols_bf16(float* C, int64_t ldc, const float* Ae, int64_t Kp, const uint16_t* W, int64_t sbn, int64_t K, int64_t j, bool accumulate) {
  const uint16_t* w[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) w[r] = W + (j + r) * sbn;
  const __m512i hi_mask = _mm512_set1_epi32((int)0xffff0000u);
  __m512 acc[M][R], acc2[M][R];
#pragma GCC unroll 8
  for (int i = 0; i < M; i++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) acc[i][r] = acc2[i][r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 32) {
    const __mmask32 mask = K - k >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << (K - k)) - 1);
    __m512 ev[R], od[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const __m512i x = _mm512_maskz_loadu_epi16(mask, w[r] + k);
      _mm_prefetch(reinterpret_cast<const char*>(w[r] + R * sbn + k), _MM_HINT_T0);  // the next R rows
      ev[r] = _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
      od[r] = _mm512_castsi512_ps(_mm512_and_si512(x, hi_mask));
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; i++) {
      const __m512 ae = _mm512_load_ps(Ae + i * Kp + k), ao = _mm512_load_ps(Ae + i * Kp + k + 16);
#pragma GCC unroll 8
      for (int r = 0; r < R; r++) {
        acc[i][r] = _mm512_fmadd_ps(ae, ev[r], acc[i][r]);
        acc2[i][r] = _mm512_fmadd_ps(ao, od[r], acc2[i][r]);
      }
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < M; i++)
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) acc[i][r] = _mm512_add_ps(acc[i][r], acc2[i][r]);
  store_sums<M, R>(C, ldc, j, acc, accumulate);
}

template <int M>
void rows_avx512(float* C, int64_t ldc, const float* A, int64_t lda, ConstTensorRef B, int64_t sbn, int64_t K, int64_t j0, int64_t j1, bool accumulate, float* scratch) {
  // accumulators M x R (2 M x R for bf16), plus R weight vectors (2R for bf16) and the
  // activations: at most 32 zmm
  constexpr int R = M <= 2 ? 8 : M <= 4 ? 4 : 2, RB = M == 1 ? 6 : M <= 3 ? 3 : M <= 5 ? 2 : 1;
  int64_t j = j0;
  if (B.dtype == DType::F32) {
    for (; j + R <= j1; j += R) cols_f32<M, R>(C, ldc, A, lda, B.f32(), sbn, K, j, accumulate);
    for (; j < j1; j++) cols_f32<M, 1>(C, ldc, A, lda, B.f32(), sbn, K, j, accumulate);
    return;
  }
  // Ae[i * Kp + 32c + t] = A(i, 32c + 2t), Ae[i * Kp + 32c + 16 + t] = A(i, 32c + 2t + 1), zeros past K
  const int64_t Kp = (K + 31) / 32 * 32;
  const __m512i ev_idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i od_idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int i = 0; i < M; i++)
    for (int64_t k = 0; k < Kp; k += 32) {
      const int64_t n0 = K - k, n1 = K - k - 16;
      const __mmask16 m0 = n0 >= 16 ? (__mmask16)0xffff : n0 > 0 ? (__mmask16)((1u << n0) - 1) : (__mmask16)0;
      const __mmask16 m1 = n1 >= 16 ? (__mmask16)0xffff : n1 > 0 ? (__mmask16)((1u << n1) - 1) : (__mmask16)0;
      const __m512 lo = _mm512_maskz_loadu_ps(m0, A + i * lda + k), hi = _mm512_maskz_loadu_ps(m1, A + i * lda + k + 16);
      _mm512_store_ps(scratch + i * Kp + k, _mm512_permutex2var_ps(lo, ev_idx, hi));
      _mm512_store_ps(scratch + i * Kp + k + 16, _mm512_permutex2var_ps(lo, od_idx, hi));
    }
  for (; j + RB <= j1; j += RB) cols_bf16<M, RB>(C, ldc, scratch, Kp, B.bf16(), sbn, K, j, accumulate);
  for (; j < j1; j++) cols_bf16<M, 1>(C, ldc, scratch, Kp, B.bf16(), sbn, K, j, accumulate);
}

}  // namespace

void gemv_avx512(float* C, int64_t ldc, const float* A, int64_t lda, ConstTensorRef B, int64_t sbn, int64_t M, int64_t K, int64_t j0, int64_t j1, bool accumulate, float* scratch) {
  switch (M) {
    case 1: return rows_avx512<1>(C, ldc, A, lda, B, sbn, K, j0, j1, accumulate, scratch);
    case 2: return rows_avx512<2>(C, ldc, A, lda, B, sbn, K, j0, j1, accumulate, scratch);
    case 3: return rows_avx512<3>(C, ldc, A, lda, B, sbn, K, j0, j1, accumulate, scratch);
    case 4: return rows_avx512<4>(C, ldc, A, lda, B, sbn, K, j0, j1, accumulate, scratch);
    case 5: return rows_avx512<5>(C, ldc, A, lda, B, sbn, K, j0, j1, accumulate, scratch);
    case 6: return rows_avx512<6>(C, ldc, A, lda, B, sbn, K, j0, j1, accumulate, scratch);
    case 7: return rows_avx512<7>(C, ldc, A, lda, B, sbn, K, j0, j1, accumulate, scratch);
    default: return rows_avx512<8>(C, ldc, A, lda, B, sbn, K, j0, j1, accumulate, scratch);
  }
}

}  // namespace gemm_detail
}  // namespace vlatext

#pragma GCC pop_options

#endif
