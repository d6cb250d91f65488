// AVX2 + FMA GEMM micro-kernel (see gemm_kernels.h for the layouts): a 6 x 16 tile of C in
// 12 ymm accumulators, two B vectors and one broadcast A value a step (15 of 16 registers).
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

#include "gemm.h"
#include "gemm_kernels.h"

#if defined(__x86_64__) || defined(_M_X64)

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace vlatext {
namespace gemm_detail {
namespace {

constexpr int kMR = 6, kNR = 16;

// Bp[k * 16 + j] = S(j, k); rows of B contiguous along j (sj == 1, f32) are copied two
// vectors a step, anything else goes through the generic loop.
void pack_b(void* dst_, const void* src, DType dt, int64_t sj, int64_t sk, int64_t w, int64_t kc, int64_t kc_pad) {
  float* dst = static_cast<float*>(dst_);
  if (dt != DType::F32 || sj != 1 || w != kNR) return pack_b_f32_generic<kNR>(dst, src, dt, sj, sk, w, kc, kc_pad);
  const float* s = static_cast<const float*>(src);
  for (int64_t k = 0; k < kc; k++) {
    _mm256_store_ps(dst + k * kNR, _mm256_loadu_ps(s + k * sk));
    _mm256_store_ps(dst + k * kNR + 8, _mm256_loadu_ps(s + k * sk + 8));
  }
  for (int64_t k = kc; k < kc_pad; k++) {
    _mm256_store_ps(dst + k * kNR, _mm256_setzero_ps());
    _mm256_store_ps(dst + k * kNR + 8, _mm256_setzero_ps());
  }
}

AView prep_a(void* buf, const void* src, DType dt, int64_t sam, int64_t sak, int64_t m, int64_t kc, int64_t kc_pad) {
  return prep_a_f32_generic<kMR>(buf, src, dt, sam, sak, m, kc, kc_pad);
}

int64_t a_elems(int64_t mc_pad, int64_t kc_pad) { return mc_pad * kc_pad; }

// c (6, 16) (+)= sum_k A(i, k) Bp[k * 16 + j]
void micro(int64_t kc, const void* a_, int64_t ars, int64_t aks, int mv, const void* bp_, float* C, int64_t ldc, bool add) {
  const float* a = static_cast<const float*>(a_);
  const float* bp = static_cast<const float*>(bp_);
  int64_t off[kMR];
  for (int i = 0; i < kMR; i++) off[i] = (i < mv ? i : 0) * ars;
  __m256 c[kMR][2];
  for (int i = 0; i < kMR; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_load_ps(bp + k * kNR), b1 = _mm256_load_ps(bp + k * kNR + 8);
    const float* ak = a + k * aks;
#pragma GCC unroll 6
    for (int i = 0; i < kMR; i++) {
      const __m256 x = _mm256_broadcast_ss(ak + off[i]);
      c[i][0] = _mm256_fmadd_ps(x, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(x, b1, c[i][1]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < kMR; i++) {
    float* ci = C + i * ldc;
    if (add) {
      c[i][0] = _mm256_add_ps(c[i][0], _mm256_loadu_ps(ci));
      c[i][1] = _mm256_add_ps(c[i][1], _mm256_loadu_ps(ci + 8));
    }
    _mm256_storeu_ps(ci, c[i][0]);
    _mm256_storeu_ps(ci + 8, c[i][1]);
  }
}

}  // namespace

const Kernel& kernel_avx2() {
  static const Kernel k{"avx2", kMR, kNR, 1, 256, 120, 1024, 4, false, pack_b, prep_a, a_elems, micro, nullptr, nullptr};
  return k;
}

}  // namespace gemm_detail
}  // namespace vlatext

#pragma GCC pop_options

#endif
