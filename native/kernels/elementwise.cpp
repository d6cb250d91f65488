#include "elementwise.h"

#include <cmath>

#include "vec.h"

namespace vlatext {

static inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void swiglu_forward_ref(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = gate[i] * sigmoidf(gate[i]) * up[i];
}

// d silu(g)/dg = s(g) (1 + g (1 - s(g)))
void swiglu_backward_ref(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float s = sigmoidf(gate[i]);
    if (dgate) dgate[i] += dout[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
    if (dup) dup[i] += dout[i] * gate[i] * s;
  }
}

namespace {

// The same formulas as the references, with exp_inline so that the loops vectorize.
inline float sigmoid_fast(float x) { return 1.0f / (1.0f + exp_inline(-x)); }

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void swiglu_forward_fast(float* __restrict out, const float* __restrict gate, const float* __restrict up, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = gate[i] * sigmoid_fast(gate[i]) * up[i];
}

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void swiglu_backward_fast(float* __restrict dgate, float* __restrict dup, const float* __restrict dout, const float* __restrict gate, const float* __restrict up, int64_t n) {
  if (dgate && dup) {
    for (int64_t i = 0; i < n; i++) {
      const float s = sigmoid_fast(gate[i]);
      dgate[i] += dout[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
      dup[i] += dout[i] * gate[i] * s;
    }
    return;
  }
  swiglu_backward_ref(dgate, dup, dout, gate, up, n);
}

}  // namespace

void swiglu_forward(ThreadPool& pool, float* out, const float* gate, const float* up, int64_t n) {
  pool.parallel_for(n, [&](int, int64_t a, int64_t b) { swiglu_forward_fast(out + a, gate + a, up + a, b - a); }, 0, grain_for(16));
}

void swiglu_backward(ThreadPool& pool, float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  pool.parallel_for(n, [&](int, int64_t a, int64_t b) { swiglu_backward_fast(dgate ? dgate + a : nullptr, dup ? dup + a : nullptr, dout + a, gate + a, up + a, b - a); }, 0, grain_for(16));
}

void gelu_forward_ref(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * (float)M_SQRT1_2));
}

// d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density
void gelu_backward_ref(float* dx, const float* dout, const float* x, int64_t n) {
  const float inv_sqrt_2pi = 0.3989422804014327f;
  for (int64_t i = 0; i < n; i++) {
    const float cdf = 0.5f * (1.0f + std::erf(x[i] * (float)M_SQRT1_2));
    dx[i] += dout[i] * (cdf + x[i] * inv_sqrt_2pi * std::exp(-0.5f * x[i] * x[i]));
  }
}

void gelu_forward(ThreadPool& pool, float* out, const float* x, int64_t n) {
  pool.parallel_for(n, [&](int, int64_t a, int64_t b) { gelu_forward_ref(out + a, x + a, b - a); }, 0, grain_for(16));
}

void gelu_backward(ThreadPool& pool, float* dx, const float* dout, const float* x, int64_t n) {
  pool.parallel_for(n, [&](int, int64_t a, int64_t b) { gelu_backward_ref(dx + a, dout + a, x + a, b - a); }, 0, grain_for(16));
}

void embedding_forward_ref(float* out, const int32_t* tokens, const float* table, int64_t N, int C) {
  for (int64_t n = 0; n < N; n++)
    for (int c = 0; c < C; c++) out[n * C + c] = table[(int64_t)tokens[n] * C + c];
}

void embedding_backward_ref(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int C) {
  for (int64_t n = 0; n < N; n++)
    for (int c = 0; c < C; c++) dtable[(int64_t)tokens[n] * C + c] += dout[n * C + c];
}

void embedding_forward(ThreadPool& pool, float* out, const int32_t* tokens, const float* table, int64_t N, int C) {
  pool.parallel_for(N, [&](int, int64_t a, int64_t b) { embedding_forward_ref(out + a * C, tokens + a, table, b - a, C); }, 0, grain_for(C));
}

void embedding_backward(ThreadPool& pool, float* dtable, const float* dout, const int32_t* tokens, int64_t N, int C) {
  // split channels, not tokens: two equal tokens never race
  pool.parallel_for(C, [&](int, int64_t c0, int64_t c1) {
    for (int64_t n = 0; n < N; n++)
      for (int64_t c = c0; c < c1; c++) dtable[(int64_t)tokens[n] * C + c] += dout[n * C + c];
  }, 0, grain_for(N));
}

void add_forward(ThreadPool& pool, float* out, const float* a, const float* b, int64_t n) {
  pool.parallel_for(n, [&](int, int64_t s, int64_t e) {
    for (int64_t i = s; i < e; i++) out[i] = a[i] + b[i];
  }, 0, grain_for(1));
}

void embedding_forward(ThreadPool& pool, float* out, const int32_t* tokens, ConstTensorRef table, int64_t N, int C) {
  if (table.dtype == DType::F32) return embedding_forward(pool, out, tokens, table.f32(), N, C);
  const uint16_t* t = table.bf16();
  pool.parallel_for(N, [&](int, int64_t a, int64_t b) {
    for (int64_t n = a; n < b; n++)
      for (int c = 0; c < C; c++) out[n * C + c] = bf16_to_f32(t[(int64_t)tokens[n] * C + c]);
  }, 0, grain_for(C));
}

}  // namespace vlatext
