// Sum of a float array, accumulated in double.
//   reduce_sum_ref    the scalar reference (the oracle): one double accumulator, in order
//   reduce_sum_fast   the optimized single-thread version: AVX2 (4 x 4 doubles) when the
//                     CPU has it, else 4 interleaved double accumulators
//   reduce_sum_mt     reduce_sum_fast over `parts` contiguous ranges on a thread pool,
//                     partial sums added in range order (deterministic for a given parts)
#pragma once

#include <cstdint>

#include "../core/threadpool.h"

namespace vlatext {

double reduce_sum_ref(const float* x, int64_t n);
double reduce_sum_portable(const float* x, int64_t n);
double reduce_sum_avx2(const float* x, int64_t n);  // call only when cpu_has_avx2()
double reduce_sum_fast(const float* x, int64_t n);
double reduce_sum_mt(ThreadPool& pool, const float* x, int64_t n, int parts);

bool cpu_has_avx2();

}  // namespace vlatext
