#include "layernorm.h"

#include <cmath>
#include <vector>

namespace vlatext {

// Two passes in double (mean, then the centred variance): the row statistics torch computes
// in float with Welford's algorithm agree to float rounding.
static void layernorm_row(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b, int C, float eps) {
  double s = 0;
  for (int c = 0; c < C; c++) s += x[c];
  const double m = s / C;
  double v = 0;
  for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
  const float mf = (float)m, r = (float)(1.0 / std::sqrt(v / C + (double)eps));
  *mean = mf;
  *rstd = r;
  for (int c = 0; c < C; c++) out[c] = (x[c] - mf) * r * w[c] + (b ? b[c] : 0.0f);
}

// xhat = (x - mean) r,  g' = g w:  dL/dx_c = r (g'_c - mean(g') - xhat_c mean(g' xhat))
static void layernorm_backward_row(float* dx, float* dw, float* db, const float* g, const float* x, const float* w, float mean, float r, int C) {
  double sg = 0, sgx = 0;
  for (int c = 0; c < C; c++) {
    const double gw = (double)g[c] * w[c], xh = ((double)x[c] - mean) * r;
    sg += gw;
    sgx += gw * xh;
  }
  const float mg = (float)(sg / C), mgx = (float)(sgx / C);
  for (int c = 0; c < C; c++) {
    const float xh = (x[c] - mean) * r;
    if (dx) dx[c] += r * (g[c] * w[c] - mg - xh * mgx);
    if (dw) dw[c] += g[c] * xh;
    if (db) db[c] += g[c];
  }
}

void layernorm_forward_ref(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t N, int C, float eps) {
  for (int64_t n = 0; n < N; n++) layernorm_row(out + n * C, mean + n, rstd + n, inp + n * C, weight, bias, C, eps);
}

void layernorm_backward_ref(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t N, int C) {
  for (int64_t n = 0; n < N; n++) layernorm_backward_row(dinp ? dinp + n * C : nullptr, dweight, dbias, dout + n * C, inp + n * C, weight, mean[n], rstd[n], C);
}

void layernorm_forward(ThreadPool& pool, float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t N, int C, float eps) {
  pool.parallel_for(N, [&](int, int64_t a, int64_t b) {
    for (int64_t n = a; n < b; n++) layernorm_row(out + n * C, mean + n, rstd + n, inp + n * C, weight, bias, C, eps);
  }, 0, grain_for(3 * C));
}

void layernorm_backward(ThreadPool& pool, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t N, int C) {
  const int parts = pool.size();
  std::vector<std::vector<float>> dw(dweight ? parts : 0, std::vector<float>(C, 0.0f)), db(dbias ? parts : 0, std::vector<float>(C, 0.0f));
  pool.parallel_for(
      N,
      [&](int p, int64_t a, int64_t b) {
        for (int64_t n = a; n < b; n++)
          layernorm_backward_row(dinp ? dinp + n * C : nullptr, dweight ? dw[p].data() : nullptr, dbias ? db[p].data() : nullptr, dout + n * C, inp + n * C, weight, mean[n], rstd[n], C);
      },
      parts);
  for (int p = 0; p < parts; p++)
    for (int c = 0; c < C; c++) {
      if (dweight) dweight[c] += dw[p][c];
      if (dbias) dbias[c] += db[p][c];
    }
}

namespace {
constexpr float kSqrt2OverPi = 0.7978845608028654f, kCoef = 0.044715f;
inline float gelu_tanh(float x) { return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + kCoef * x * x * x))); }
// d/dx: 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2),  t = tanh(u)
inline float gelu_tanh_grad(float x) {
  const float t = std::tanh(kSqrt2OverPi * (x + kCoef * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kCoef * x * x);
}
}  // namespace

void gelu_tanh_forward_ref(float* out, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = gelu_tanh(x[i]);
}
void gelu_tanh_backward_ref(float* dx, const float* dout, const float* x, int64_t n) {
  for (int64_t i = 0; i < n; i++) dx[i] += dout[i] * gelu_tanh_grad(x[i]);
}
void gelu_tanh_forward(ThreadPool& pool, float* out, const float* x, int64_t n) {
  pool.parallel_for(n, [&](int, int64_t a, int64_t b) {
    for (int64_t i = a; i < b; i++) out[i] = gelu_tanh(x[i]);
  }, 0, grain_for(8));
}
void gelu_tanh_backward(ThreadPool& pool, float* dx, const float* dout, const float* x, int64_t n) {
  pool.parallel_for(n, [&](int, int64_t a, int64_t b) {
    for (int64_t i = a; i < b; i++) dx[i] += dout[i] * gelu_tanh_grad(x[i]);
  }, 0, grain_for(8));
}

}  // namespace vlatext
