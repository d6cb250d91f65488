// Sum of a float array, accumulated in double. x: (n).
//   reduce_sum_ref       the scalar reference (the oracle): one double accumulator, in order
//   reduce_sum_portable  4 interleaved double accumulators, plain C++ (any CPU)
//   reduce_sum_avx2      AVX2: 8 accumulators of 4 doubles, 32 floats per step, then an
//                        8-float step, then a scalar tail of n % 8; call only when
//                        cpu_has_avx2() (compiled with a function-level target attribute,
//                        so the rest of the addon stays baseline x86-64)
//   reduce_sum_fast      avx2 when the CPU has it (checked at run time), else portable
//   reduce_sum_mt        reduce_sum_fast over `parts` contiguous ranges on a thread pool,
//                        partial sums added in range order (deterministic for given parts)
//
// Every version adds the same float values in double, only in a different order, so
// they agree with the reference to within the rounding of double summation (see
// test/native/reduce.test.ts for the bound), and exactly whenever all partial sums are
// representable (e.g. integers times a power of two, far below 2^53).
#pragma once

#include <cstdint>

#include "../core/status.h"
#include "../core/threadpool.h"

namespace vlatext {

double reduce_sum_ref(const float* x, int64_t n);
double reduce_sum_portable(const float* x, int64_t n);
double reduce_sum_avx2(const float* x, int64_t n);
double reduce_sum_fast(const float* x, int64_t n);

// Which single-thread kernel reduce_sum_mt runs on each range.
enum class Simd { Auto, Scalar, Avx2 };  // Auto: Avx2 when the CPU has it; Scalar: reduce_sum_portable

// *out = sum(x[0..n)) on `pool`, split into `parts` ranges (parts == 0: pool.size()).
// Status::InvalidArgument when n < 0, x is null with n > 0, out is null, parts is
// outside [0, kReduceMaxParts], or simd is Avx2 on a CPU without AVX2/FMA.
constexpr int kReduceMaxParts = 4096;
Status reduce_sum_mt(double* out, ThreadPool& pool, const float* x, int64_t n, int parts, Simd simd = Simd::Auto);

// True when the CPU supports AVX2 and FMA (decided once, at run time).
bool cpu_has_avx2();

}  // namespace vlatext
