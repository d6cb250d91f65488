// LayerNorm with bias over the last dimension, and the tanh form of GELU: the two ops a
// SigLIP vision encoder (SmolVLM2) needs beyond the Qwen towers'. Shapes: N rows of C.
//   layernorm:  out (N, C) = (inp - mean) * rstd * weight + bias,
//               mean (N), rstd (N) = 1 / sqrt(var(inp) + eps) (biased variance, as torch)
//   gelu_tanh:  out (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (torch's
//               gelu(approximate="tanh"), transformers' gelu_pytorch_tanh),  x (n)
// The forward saves mean and rstd for the backward. Gradients ACCUMULATE (+=) into dinp,
// dweight, dbias and dx. *_ref are the scalar oracles; the others split rows (elements)
// over the pool and run the same arithmetic per row (element).
#pragma once

#include <cstdint>

#include "../core/threadpool.h"

namespace vlatext {

void layernorm_forward_ref(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t N, int C, float eps);
void layernorm_backward_ref(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t N, int C);
void layernorm_forward(ThreadPool& pool, float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t N, int C, float eps);
// dweight and dbias are reduced per thread then summed, so threads never write the same address.
void layernorm_backward(ThreadPool& pool, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t N, int C);

void gelu_tanh_forward_ref(float* out, const float* x, int64_t n);
void gelu_tanh_backward_ref(float* dx, const float* dout, const float* x, int64_t n);
void gelu_tanh_forward(ThreadPool& pool, float* out, const float* x, int64_t n);
void gelu_tanh_backward(ThreadPool& pool, float* dx, const float* dout, const float* x, int64_t n);

}  // namespace vlatext
