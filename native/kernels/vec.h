// Small vector helpers, inline so that kernels compiled per ISA (target_clones) can
// inline them and vectorize them for their own target. dot() and axpy() in matmul.h are
// the same loops behind a run-time CPU dispatch, for callers that are not cloned.
#pragma once

#include <cstdint>
#include <cstring>

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

// e^x for softmax weights and sigmoids, written so that a loop over it vectorizes (no calls,
// no branches): x = n ln2 + r with |r| <= ln2/2, e^r by Cephes' degree-6 polynomial, 2^n
// put into the exponent bits. Relative error below 2e-7 (about 2 ulp) over [-87.3, 88];
// 0 below -87.3 (where e^x would be denormal) and e^88 above 88. The tests compare it
// with std::exp over that range.
inline float exp_inline(float x) {
  const float lo = -87.3f, hi = 88.0f;
  const float xc = x < lo ? lo : (x > hi ? hi : x);
  const float n = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < lo ? 0.0f : p * scale;
}

// Sixteen floats as one value (GCC/Clang vector extension), for loops the vectorizer would
// leave scalar: one AVX-512 register, two AVX or four SSE registers, as the clone targets.
// Used only inside inline code of cloned kernels (never across a call: its ABI varies by ISA).
// (-Wpsabi notes that passing one by value differs between ISAs; these helpers are always inlined.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float f32x16 __attribute__((vector_size(64)));
inline f32x16 load16(const float* p) {
  f32x16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store16(float* p, const f32x16& v) { std::memcpy(p, &v, sizeof v); }
#pragma GCC diagnostic pop

// y += alpha * x
inline void axpy_inline(float* __restrict y, const float* __restrict x, float alpha, int n) {
  for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

}  // namespace vlatext
