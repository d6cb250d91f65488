// Small per-element and per-row kernels. Gradients ACCUMULATE (+=).
//   swiglu:     out (N, F) = silu(gate) * up,   gate, up (N, F)
//   gelu:       out (n) = x * Phi(x) (the erf form, PyTorch's nn.GELU()),   x (n)
//   embedding:  out (N, C) = table[tokens[n], :],   table (V, C), tokens (N)
//   residual:   out (N) = a + b
#pragma once

#include <cstdint>

#include "../core/dtype.h"
#include "../core/threadpool.h"

namespace vlatext {

void swiglu_forward_ref(float* out, const float* gate, const float* up, int64_t n);
void swiglu_backward_ref(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);
void swiglu_forward(ThreadPool& pool, float* out, const float* gate, const float* up, int64_t n);
void swiglu_backward(ThreadPool& pool, float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);

void gelu_forward_ref(float* out, const float* x, int64_t n);
void gelu_backward_ref(float* dx, const float* dout, const float* x, int64_t n);
void gelu_forward(ThreadPool& pool, float* out, const float* x, int64_t n);
void gelu_backward(ThreadPool& pool, float* dx, const float* dout, const float* x, int64_t n);

void embedding_forward_ref(float* out, const int32_t* tokens, const float* table, int64_t N, int C);
// Repeated tokens add into the same row: this runs single-threaded over tokens, parallel over channels.
void embedding_backward_ref(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int C);
void embedding_forward(ThreadPool& pool, float* out, const int32_t* tokens, const float* table, int64_t N, int C);
void embedding_backward(ThreadPool& pool, float* dtable, const float* dout, const int32_t* tokens, int64_t N, int C);
// The same forward from a table in either storage type (bf16 rows widened exactly).
void embedding_forward(ThreadPool& pool, float* out, const int32_t* tokens, ConstTensorRef table, int64_t N, int C);

void add_forward(ThreadPool& pool, float* out, const float* a, const float* b, int64_t n);

}  // namespace vlatext
