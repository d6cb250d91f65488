#include "adamw.h"

#include <cmath>
#include <vector>

namespace vlatext {

void adamw_update_ref(float* params, float* m, float* v, const float* grads, int64_t n, const AdamWConfig& cfg, int t, float grad_scale) {
  const float bc1 = 1.0f - std::pow(cfg.beta1, (float)t);
  const float bc2 = 1.0f - std::pow(cfg.beta2, (float)t);
  for (int64_t i = 0; i < n; i++) {
    const float g = grads[i] * grad_scale;
    params[i] -= cfg.lr * cfg.weight_decay * params[i];
    m[i] = cfg.beta1 * m[i] + (1.0f - cfg.beta1) * g;
    v[i] = cfg.beta2 * v[i] + (1.0f - cfg.beta2) * g * g;
    params[i] -= cfg.lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + cfg.eps);
  }
}

void adamw_update(ThreadPool& pool, float* params, float* m, float* v, const float* grads, int64_t n, const AdamWConfig& cfg, int t, float grad_scale) {
  pool.parallel_for(n, [&](int, int64_t a, int64_t b) { adamw_update_ref(params + a, m + a, v + a, grads + a, b - a, cfg, t, grad_scale); }, 0, grain_for(16));
}

double grad_sq_norm(ThreadPool& pool, const float* grads, int64_t n) {
  const int parts = pool.size();
  std::vector<double> s(parts, 0.0);
  pool.parallel_for(
      n,
      [&](int p, int64_t a, int64_t b) {
        double acc = 0;
        for (int64_t i = a; i < b; i++) acc += (double)grads[i] * grads[i];
        s[p] = acc;
      },
      parts);
  double total = 0;
  for (double x : s) total += x;
  return total;
}

}  // namespace vlatext
