#include "reduce.h"

#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define VLATEXT_X86 1
#endif

namespace vlatext {

double reduce_sum_ref(const float* x, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) s += static_cast<double>(x[i]);
  return s;
}

double reduce_sum_portable(const float* x, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += x[i];
    s1 += x[i + 1];
    s2 += x[i + 2];
    s3 += x[i + 3];
  }
  for (; i < n; i++) s0 += x[i];  // tail: the last n % 4 values
  return (s0 + s1) + (s2 + s3);
}

#ifdef VLATEXT_X86
__attribute__((target("avx2,fma"))) double reduce_sum_avx2(const float* x, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), a2 = _mm256_setzero_pd(), a3 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 v0 = _mm256_loadu_ps(x + i);
    __m256 v1 = _mm256_loadu_ps(x + i + 8);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v0)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1)));
    a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(v1)));
    a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1)));
  }
  __m256d a = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, a);
  double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < n; i++) s += x[i];  // tail: the last n % 16 values
  return s;
}

bool cpu_has_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
double reduce_sum_avx2(const float* x, int64_t n) { return reduce_sum_portable(x, n); }
bool cpu_has_avx2() { return false; }
#endif

double reduce_sum_fast(const float* x, int64_t n) {
  return cpu_has_avx2() ? reduce_sum_avx2(x, n) : reduce_sum_portable(x, n);
}

double reduce_sum_mt(ThreadPool& pool, const float* x, int64_t n, int parts) {
  if (parts <= 0) parts = pool.size();
  std::vector<double> partial(static_cast<size_t>(parts), 0.0);
  pool.parallel_for(
      n, [&](int p, int64_t b, int64_t e) { partial[static_cast<size_t>(p)] = reduce_sum_fast(x + b, e - b); }, parts);
  double s = 0.0;
  for (double v : partial) s += v;
  return s;
}

}  // namespace vlatext
