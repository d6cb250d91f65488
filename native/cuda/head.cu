// The per-row pieces of the chunked LM-head cross-entropy on the GPU; the products between
// them (hidden . head_chunk^T and back) are the backend's GEMMs (cuda_backend.cu). Per chunk
// of vocabulary rows: the row's running max and sum of exponentials are updated online
// (rescaled when the max grows), the target's logit is picked up where it falls; at the end
// lse = max + log(sum) and the row's loss lse - logit[target]. Reference: native/kernels/head.cpp
// (which sums the loss in double: so does head_total, in row order, in one block).
#include <cmath>

#include "common.cuh"
#include "kernels.h"

namespace vlatext {
namespace cuk {

namespace {

__global__ void k_head_init(float* run_max, float* run_sum, float* target_logit, int64_t K) {
  VLATEXT_GRID_STRIDE(i, K) run_max[i] = -INFINITY, run_sum[i] = 0.0f, target_logit[i] = 0.0f;
}

// One block per row.
__global__ void k_head_stats(float* run_max, float* run_sum, float* target_logit, const float* logits, const int32_t* targets, int Vc, int v0) {
  const int64_t k = blockIdx.x;
  const int t = targets[k];
  if (t < 0) return;  // ignored rows keep lse 0 and no loss (the whole block leaves together)
  const float* x = logits + k * (int64_t)Vc;
  float m = -INFINITY;
  for (int i = threadIdx.x; i < Vc; i += blockDim.x) m = fmaxf(m, x[i]);
  __shared__ float part[32];
  m = warp_max(m);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = m;
  __syncthreads();
  m = threadIdx.x % 32 < (int)blockDim.x / 32 ? part[threadIdx.x % 32] : -INFINITY;
  m = warp_max(m);
  const float M = fmaxf(run_max[k], m);
  float s = 0;
  for (int i = threadIdx.x; i < Vc; i += blockDim.x) s += expf(x[i] - M);
  s = block_sum(s);
  if (threadIdx.x == 0) {
    run_sum[k] = run_sum[k] * expf(run_max[k] - M) + s;
    run_max[k] = M;
    if (t >= v0 && t < v0 + Vc) target_logit[k] = x[t - v0];
  }
}

__global__ void k_head_finish(float* lse, double* loss_parts, const float* run_max, const float* run_sum, const float* target_logit, const int32_t* targets, int64_t K) {
  VLATEXT_GRID_STRIDE(k, K) {
    if (targets[k] < 0) {
      lse[k] = 0.0f;
      loss_parts[k] = 0.0;
    } else {
      const float l = run_max[k] + logf(run_sum[k]);
      lse[k] = l;
      loss_parts[k] = (double)l - (double)target_logit[k];
    }
  }
}

__global__ void k_head_grad(float* logits, const float* lse, const int32_t* targets, float scale, int64_t K, int Vc, int v0) {
  VLATEXT_GRID_STRIDE(i, K * Vc) {
    const int64_t k = i / Vc;
    const int v = (int)(i % Vc);
    const int t = targets[k];
    const float e = logits[i] - lse[k];
    // weights below e^-80 flushed to 0, as head.cpp's softmax_exp does (they are denormals)
    logits[i] = t < 0 ? 0.0f : scale * ((e < -80.0f ? 0.0f : expf(e)) - (t == v0 + v ? 1.0f : 0.0f));
  }
}

// One block: each thread sums a contiguous run of rows, then the runs in order.
__global__ void k_head_total(double* out_sum, long long* out_kept, const double* parts, const int32_t* targets, int64_t K) {
  const int64_t per = (K + blockDim.x - 1) / blockDim.x;
  const int64_t a = threadIdx.x * per, b = min(K, a + per);
  double s = 0;
  long long kept = 0;
  for (int64_t k = a; k < b; k++) s += parts[k], kept += targets[k] >= 0;
  s = block_sum(s);
  kept = block_sum(kept);
  if (threadIdx.x == 0) *out_sum = s, *out_kept = kept;
}

}  // namespace

void head_init(cudaStream_t s, float* run_max, float* run_sum, float* target_logit, int64_t K) { k_head_init<<<grid_for(K), kThreads, 0, s>>>(run_max, run_sum, target_logit, K); }
void head_chunk_stats(cudaStream_t s, float* run_max, float* run_sum, float* target_logit, const float* logits, const int32_t* targets, int64_t K, int Vc, int v0) {
  if (K > 0) k_head_stats<<<(unsigned)K, kThreads, 0, s>>>(run_max, run_sum, target_logit, logits, targets, Vc, v0);
}
void head_finish(cudaStream_t s, float* lse, double* loss_parts, const float* run_max, const float* run_sum, const float* target_logit, const int32_t* targets, int64_t K) {
  k_head_finish<<<grid_for(K), kThreads, 0, s>>>(lse, loss_parts, run_max, run_sum, target_logit, targets, K);
}
void head_chunk_grad(cudaStream_t s, float* logits, const float* lse, const int32_t* targets, float scale, int64_t K, int Vc, int v0) {
  k_head_grad<<<grid_for(K * Vc), kThreads, 0, s>>>(logits, lse, targets, scale, K, Vc, v0);
}
void head_total(cudaStream_t s, double* out_sum, long long* out_kept, const double* parts, const int32_t* targets, int64_t K) { k_head_total<<<1, 1024, 0, s>>>(out_sum, out_kept, parts, targets, K); }

}  // namespace cuk
}  // namespace vlatext
