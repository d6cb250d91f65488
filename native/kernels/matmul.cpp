// The linear layer over the GEMM core (gemm.h): each form is one strided product, no operand
// transposed in memory.
//   forward   out (N, OC)   = bias + inp (N, C) . W^T     A = inp,    B(c, o) = W[o * C + c]
//   dinp      dinp (N, C)  += dout (N, OC) . W (OC, C)    A = dout,   B(o, c) = W[o * C + c]
//   dweight   dW (OC, C)   += dout^T (OC, N) . inp (N, C) A(o, n) = dout[n * OC + o], B = inp
#include "matmul.h"

#include "gemm.h"
#include "vec.h"

namespace vlatext {

void matmul_forward_ref(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC) {
  for (int64_t n = 0; n < N; n++) {
    for (int o = 0; o < OC; o++) {
      float s = bias ? bias[o] : 0.0f;
      for (int c = 0; c < C; c++) s += inp[n * C + c] * weight[(int64_t)o * C + c];
      out[n * OC + o] = s;
    }
  }
}

void matmul_backward_ref(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int C, int OC) {
  for (int64_t n = 0; n < N; n++) {
    for (int o = 0; o < OC; o++) {
      const float d = dout[n * OC + o];
      if (dbias) dbias[o] += d;
      for (int c = 0; c < C; c++) {
        if (dinp) dinp[n * C + c] += d * weight[(int64_t)o * C + c];
        if (dweight) dweight[(int64_t)o * C + c] += d * inp[n * C + c];
      }
    }
  }
}

// target_clones compiles AVX-512, AVX2+FMA (x86-64-v3) and baseline copies; the loader picks one per CPU.
__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) float dot(const float* __restrict a, const float* __restrict b, int n) { return dot_inline(a, b, n); }

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void axpy(float* __restrict y, const float* __restrict x, float alpha, int n) { axpy_inline(y, x, alpha, n); }

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) float dot_bf16(const float* __restrict a, const uint16_t* __restrict b, int n) { return dot_bf16_inline(a, b, n); }

void matmul_forward(ThreadPool& pool, Isa isa, float* out, const float* inp, ConstTensorRef weight, const float* bias, int64_t N, int C, int OC) {
  if (bias)
    pool.parallel_for(N, [&](int, int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; n++)
        for (int o = 0; o < OC; o++) out[n * OC + o] = bias[o];
    }, 0, grain_for(OC));
  gemm(pool, isa, out, OC, inp, C, 1, weight, 1, C, N, OC, C, bias != nullptr);
}

void matmul_backward(ThreadPool& pool, Isa isa, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, ConstTensorRef weight, int64_t N, int C, int OC) {
  if (dinp) gemm(pool, isa, dinp, C, dout, OC, 1, weight, C, 1, N, C, OC, true);
  // a bf16 weight is frozen: it has no gradient
  if (dweight && weight.dtype == DType::F32) gemm(pool, isa, dweight, C, dout, 1, OC, ConstTensorRef{inp, DType::F32}, C, 1, OC, C, N, true);
  if (dbias)
    // column sums of dout, 16 columns at a time (one line of each row), added to dbias once
    pool.parallel_for((OC + 15) / 16, [&](int, int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; g++) {
        const int64_t o0 = g * 16, w = OC - o0 < 16 ? OC - o0 : 16;
        float s[16] = {};
        for (int64_t n = 0; n < N; n++)
          for (int64_t j = 0; j < w; j++) s[j] += dout[n * OC + o0 + j];
        for (int64_t j = 0; j < w; j++) dbias[o0 + j] += s[j];
      }
    }, 0, grain_for(16 * N));
}

// The f32 entry points: the same at the best level this CPU has.
void matmul_forward(ThreadPool& pool, float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC) {
  matmul_forward(pool, cpu_best_isa(), out, inp, ConstTensorRef{weight, DType::F32}, bias, N, C, OC);
}

void matmul_backward(ThreadPool& pool, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int C, int OC) {
  matmul_backward(pool, cpu_best_isa(), dinp, dweight, dbias, dout, inp, ConstTensorRef{weight, DType::F32}, N, C, OC);
}

}  // namespace vlatext
