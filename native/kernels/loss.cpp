#include "loss.h"

#include <cmath>
#include <vector>

namespace vlatext {

static float row_lse(const float* x, int V) {
  float m = -INFINITY;
  for (int i = 0; i < V; i++) m = std::max(m, x[i]);
  double z = 0;
  for (int i = 0; i < V; i++) z += std::exp((double)(x[i] - m));
  return m + (float)std::log(z);
}

double cross_entropy_forward_ref(float* lse, int64_t* kept, const float* logits, const int32_t* targets, int64_t N, int V) {
  double sum = 0;
  *kept = 0;
  for (int64_t n = 0; n < N; n++) {
    lse[n] = row_lse(logits + n * V, V);
    if (targets[n] < 0) continue;
    sum += lse[n] - logits[n * V + targets[n]];
    (*kept)++;
  }
  return sum;
}

void cross_entropy_backward_ref(float* dlogits, const float* logits, const float* lse, const int32_t* targets, float dloss, int64_t N, int V) {
  for (int64_t n = 0; n < N; n++) {
    float* d = dlogits + n * V;
    if (targets[n] < 0) {
      for (int i = 0; i < V; i++) d[i] = 0.0f;
      continue;
    }
    for (int i = 0; i < V; i++) d[i] = std::exp(logits[n * V + i] - lse[n]) * dloss;
    d[targets[n]] -= dloss;
  }
}

double cross_entropy_forward(ThreadPool& pool, float* lse, int64_t* kept, const float* logits, const int32_t* targets, int64_t N, int V) {
  const int parts = pool.size();
  std::vector<double> sums(parts, 0.0);
  std::vector<int64_t> counts(parts, 0);
  pool.parallel_for(
      N, [&](int p, int64_t a, int64_t b) { sums[p] = cross_entropy_forward_ref(lse + a, &counts[p], logits + a * V, targets + a, b - a, V); }, parts);
  double sum = 0;
  *kept = 0;
  for (int p = 0; p < parts; p++) {
    sum += sums[p];
    *kept += counts[p];
  }
  return sum;
}

void cross_entropy_backward(ThreadPool& pool, float* dlogits, const float* logits, const float* lse, const int32_t* targets, float dloss, int64_t N, int V) {
  pool.parallel_for(N, [&](int, int64_t a, int64_t b) { cross_entropy_backward_ref(dlogits + a * V, logits + a * V, lse + a, targets + a, dloss, b - a, V); });
}

}  // namespace vlatext
