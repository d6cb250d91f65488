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

namespace {

// The reference's arithmetic, operation for operation (so the results are bit-identical),
// compiled for AVX-512 / AVX2 as well as the baseline: sqrt and division are correctly rounded
// in every lane, and -ffp-contract=off (binding.gyp / CMake) keeps a * b + c from fusing.
__attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3", "fp-contract=off"))) void adamw_range(float* __restrict params, float* __restrict m, float* __restrict v, const float* __restrict grads, int64_t n, float lr, float wd, float b1,
                                                                                 float b2, float eps, float bc1, float bc2, float grad_scale) {
  for (int64_t i = 0; i < n; i++) {
    const float g = grads[i] * grad_scale;
    float p = params[i];
    p -= lr * wd * p;
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] = p - lr * (mi / bc1) / (std::sqrt(vi / bc2) + eps);
  }
}

}  // namespace

void adamw_update(ThreadPool& pool, float* params, float* m, float* v, const float* grads, int64_t n, const AdamWConfig& cfg, int t, float grad_scale) {
  const float bc1 = 1.0f - std::pow(cfg.beta1, (float)t);
  const float bc2 = 1.0f - std::pow(cfg.beta2, (float)t);
  pool.parallel_for(n, [&](int, int64_t a, int64_t b) {
    adamw_range(params + a, m + a, v + a, grads + a, b - a, cfg.lr, cfg.weight_decay, cfg.beta1, cfg.beta2, cfg.eps, bc1, bc2, grad_scale);
  }, 0, grain_for(16));
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
