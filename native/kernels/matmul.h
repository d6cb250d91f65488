// Linear layer, llm.c conventions. Shapes: N rows (B*T flattened), C inputs, OC outputs.
//   out    (N, OC)   inp (N, C)   weight (OC, C)   bias (OC) or nullptr
// forward:  out[n,o] = bias[o] + sum_c inp[n,c] * weight[o,c]
// backward: dinp += dout . weight,  dweight += dout^T . inp,  dbias += sum_n dout
// Gradients ACCUMULATE (+=) into dinp, dweight, dbias; any may be nullptr to skip it.
// *_ref are the scalar oracles; the others are blocked, vectorized, multithreaded.
#pragma once

#include <cstdint>

#include "../core/threadpool.h"

namespace vlatext {

void matmul_forward_ref(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC);
void matmul_backward_ref(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int C, int OC);

void matmul_forward(ThreadPool& pool, float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC);
void matmul_backward(ThreadPool& pool, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int C, int OC);

// Dot product of two contiguous float vectors (AVX2+FMA when available).
float dot(const float* a, const float* b, int n);
// y += alpha * x
void axpy(float* y, const float* x, float alpha, int n);

}  // namespace vlatext
