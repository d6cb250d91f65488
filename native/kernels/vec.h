// Small vector helpers, inline so that kernels compiled for AVX2 (target_clones) can
// inline them and vectorize them for their own target. dot() and axpy() in matmul.h are
// the same loops behind a run-time CPU dispatch, for callers that are not cloned.
#pragma once

#include <cstdint>

#include "../core/dtype.h"

namespace vlatext {

// sum_i a[i] * b[i]; 8 independent accumulators (one vector register's worth), summed pairwise
inline float dot_inline(const float* __restrict a, const float* __restrict b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

// sum_i a[i] * b[i] with b in bf16 (widened exactly); 16 accumulators (one AVX-512 register)
inline float dot_bf16_inline(const float* __restrict a, const uint16_t* __restrict b, int n) {
  float acc[16] = {};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; k++) acc[k] += a[i + k] * bf16_to_f32(b[i + k]);
  for (int k = 0; k < 8; k++) acc[k] += acc[k + 8];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; i++) s += a[i] * bf16_to_f32(b[i]);
  return s;
}

// y += alpha * x
inline void axpy_inline(float* __restrict y, const float* __restrict x, float alpha, int n) {
  for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

}  // namespace vlatext
