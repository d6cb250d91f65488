// RMSNorm over the last dimension. Shapes: N rows of C.
//   out (N, C) = inp * rstd * weight,  rstd (N) = 1 / sqrt(mean(inp^2) + eps)
// The forward saves rstd for the backward. Gradients ACCUMULATE (+=) into dinp and dweight.
#pragma once

#include <cstdint>

#include "../core/threadpool.h"

namespace vlatext {

void rmsnorm_forward_ref(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps);
void rmsnorm_backward_ref(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int64_t N, int C);

void rmsnorm_forward(ThreadPool& pool, float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps);
// dweight is reduced per thread then summed, so threads never write the same address.
void rmsnorm_backward(ThreadPool& pool, float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int64_t N, int C);

}  // namespace vlatext
