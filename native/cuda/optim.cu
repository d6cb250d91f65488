// AdamW and the squared norm on the GPU. Reference: native/kernels/adamw.cpp.
// AdamW repeats the reference's arithmetic operation for operation with correctly rounded
// intrinsics (no fused multiply-add, IEEE division and square root), so given the same bias
// corrections (computed on the host with the same std::pow) its results are bit-identical.
// The squared norm accumulates in double per thread and per block; the block partials are
// summed on the host in order (as native/cuda/reduce.cu does).
#include <cmath>

#include "../kernels/adamw.h"
#include "common.cuh"
#include "kernels.h"

namespace vlatext {
namespace cuk {

namespace {

__global__ void k_adamw(float* params, float* m, float* v, const float* grads, int64_t n, float lr, float wd, float b1, float b2, float eps, float bc1, float bc2, float grad_scale) {
  VLATEXT_GRID_STRIDE(i, n) {
    const float g = __fmul_rn(grads[i], grad_scale);
    float p = params[i];
    p = __fsub_rn(p, __fmul_rn(__fmul_rn(lr, wd), p));
    const float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(__fsub_rn(1.0f, b1), g));
    const float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, b2), g), g));
    m[i] = mi;
    v[i] = vi;
    params[i] = __fsub_rn(p, __fdiv_rn(__fmul_rn(lr, __fdiv_rn(mi, bc1)), __fadd_rn(__fsqrt_rn(__fdiv_rn(vi, bc2)), eps)));
  }
}

constexpr int kNormBlocks = 1024;

__global__ void k_sq_norm(double* block_sums, const float* x, int64_t n) {
  double s = 0;
  VLATEXT_GRID_STRIDE(i, n) s += (double)x[i] * x[i];
  s = block_sum(s);
  if (threadIdx.x == 0) block_sums[blockIdx.x] = s;
}

}  // namespace

void adamw(cudaStream_t s, float* params, float* m, float* v, const float* grads, int64_t n, const AdamWConfig& cfg, int t, float grad_scale) {
  if (n <= 0) return;
  const float bc1 = 1.0f - std::pow(cfg.beta1, (float)t);
  const float bc2 = 1.0f - std::pow(cfg.beta2, (float)t);
  k_adamw<<<grid_for(n), kThreads, 0, s>>>(params, m, v, grads, n, cfg.lr, cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.eps, bc1, bc2, grad_scale);
}

int sq_norm_blocks(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return (int)(b < 1 ? 1 : b > kNormBlocks ? kNormBlocks : b);
}

void sq_norm_partial(cudaStream_t s, double* block_sums, const float* x, int64_t n) { k_sq_norm<<<(unsigned)sq_norm_blocks(n), kThreads, 0, s>>>(block_sums, x, n); }

}  // namespace cuk
}  // namespace vlatext
