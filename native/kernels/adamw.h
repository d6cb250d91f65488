// AdamW as PyTorch's torch.optim.AdamW computes it (decoupled weight decay):
//   p -= lr * wd * p
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// with g = grad * grad_scale (grad_scale < 1 applies global-norm clipping).
//   params, grads, m, v (n); step t starts at 1.
#pragma once

#include <cstdint>

#include "../core/threadpool.h"

namespace vlatext {

struct AdamWConfig {
  float lr, beta1, beta2, eps, weight_decay;
};

void adamw_update_ref(float* params, float* m, float* v, const float* grads, int64_t n, const AdamWConfig& cfg, int t, float grad_scale);
void adamw_update(ThreadPool& pool, float* params, float* m, float* v, const float* grads, int64_t n, const AdamWConfig& cfg, int t, float grad_scale);

// Sum of squares of the gradients (double), for global-norm clipping.
double grad_sq_norm(ThreadPool& pool, const float* grads, int64_t n);

// The factor that brings a global norm down to max_norm (1 when it is already below, or max_norm <= 0).
inline float clip_scale(double sq_norm, float max_norm) {
  if (max_norm <= 0) return 1.0f;
  const double norm = __builtin_sqrt(sq_norm);
  return norm > max_norm ? (float)(max_norm / (norm + 1e-6)) : 1.0f;
}

}  // namespace vlatext
