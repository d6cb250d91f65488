// Linear layer, llm.c conventions. Shapes: N rows (B*T flattened), C inputs, OC outputs.
//   out    (N, OC)   inp (N, C)   weight (OC, C)   bias (OC) or nullptr
// forward:  out[n,o] = bias[o] + sum_c inp[n,c] * weight[o,c]
// backward: dinp += dout . weight,  dweight += dout^T . inp,  dbias += sum_n dout
// Gradients ACCUMULATE (+=) into dinp, dweight, dbias; any may be nullptr to skip it.
// *_ref are the scalar oracles; the others run on the GEMM core (gemm.h): packed panels,
// register-blocked micro-kernels per instruction set, threads over blocks of the output.
#pragma once

#include <cstdint>

#include "../core/cpu.h"
#include "../core/dtype.h"
#include "../core/threadpool.h"

namespace vlatext {

void matmul_forward_ref(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC);
void matmul_backward_ref(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int C, int OC);

void matmul_forward(ThreadPool& pool, float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC);
void matmul_backward(ThreadPool& pool, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int C, int OC);

// The same with the weight in either storage type (f32, or bf16 for frozen weights) and the
// instruction set capped at `isa` (the caller's choice; the CPU's best when it is higher).
// A bf16 weight has no gradient: dweight must be nullptr for it. Numerics of a bf16 weight:
// at Avx512Bf16 and Amx the activations are rounded to bf16 and the bf16 x bf16 products
// accumulate in f32; below, the weight is widened to f32 (exactly) and multiplied in f32. A
// forward of at most kGemvRows rows (decoding) is a GEMV at every level: the weight is streamed
// once and widened in registers, the activations stay f32.
// The f32 entry points above are these at cpu_best_isa().
void matmul_forward(ThreadPool& pool, Isa isa, float* out, const float* inp, ConstTensorRef weight, const float* bias, int64_t N, int C, int OC);
void matmul_backward(ThreadPool& pool, Isa isa, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, ConstTensorRef weight, int64_t N, int C, int OC);

// Dot product of two contiguous float vectors (AVX2+FMA when available).
float dot(const float* a, const float* b, int n);
// y += alpha * x
void axpy(float* y, const float* x, float alpha, int n);
// Dot product of a float vector and a bf16 vector (widened exactly, accumulated in f32;
// AVX-512 or AVX2 when available).
float dot_bf16(const float* a, const uint16_t* b, int n);

}  // namespace vlatext
