#include "norm.h"

#include <cmath>
#include <vector>

namespace vlatext {

static void rmsnorm_row(float* out, float* rstd, const float* x, const float* w, int C, float eps) {
  double ss = 0;
  for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
  const float r = 1.0f / std::sqrt((float)(ss / C) + eps);
  *rstd = r;
  for (int c = 0; c < C; c++) out[c] = x[c] * r * w[c];
}

// dL/dx_c = r w_c g_c - r^3 x_c / C * sum_j (w_j g_j x_j)
static void rmsnorm_backward_row(float* dx, float* dw, const float* g, const float* x, const float* w, float r, int C) {
  double dot = 0;
  for (int c = 0; c < C; c++) dot += (double)w[c] * g[c] * x[c];
  const float k = (float)(dot / C) * r * r * r;
  for (int c = 0; c < C; c++) {
    if (dx) dx[c] += r * w[c] * g[c] - k * x[c];
    if (dw) dw[c] += g[c] * x[c] * r;
  }
}

void rmsnorm_forward_ref(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps) {
  for (int64_t n = 0; n < N; n++) rmsnorm_row(out + n * C, rstd + n, inp + n * C, weight, C, eps);
}

void rmsnorm_backward_ref(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int64_t N, int C) {
  for (int64_t n = 0; n < N; n++) rmsnorm_backward_row(dinp ? dinp + n * C : nullptr, dweight, dout + n * C, inp + n * C, weight, rstd[n], C);
}

void rmsnorm_forward(ThreadPool& pool, float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps) {
  pool.parallel_for(N, [&](int, int64_t a, int64_t b) {
    for (int64_t n = a; n < b; n++) rmsnorm_row(out + n * C, rstd + n, inp + n * C, weight, C, eps);
  }, 0, grain_for(2 * C));
}

void rmsnorm_backward(ThreadPool& pool, float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int64_t N, int C) {
  const int parts = pool.size();
  std::vector<std::vector<float>> dw(dweight ? parts : 0, std::vector<float>(C, 0.0f));
  pool.parallel_for(
      N,
      [&](int p, int64_t a, int64_t b) {
        for (int64_t n = a; n < b; n++) rmsnorm_backward_row(dinp ? dinp + n * C : nullptr, dweight ? dw[p].data() : nullptr, dout + n * C, inp + n * C, weight, rstd[n], C);
      },
      parts);
  if (dweight)
    for (int p = 0; p < parts; p++)
      for (int c = 0; c < C; c++) dweight[c] += dw[p][c];
}

}  // namespace vlatext
