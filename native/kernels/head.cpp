#include "head.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "matmul.h"
#include "vec.h"

namespace vlatext {

namespace {

// exp(x) for the softmax weights, flushed to 0 below e^-80: smaller ones are float denormals,
// which slow every product they enter ~100x, and they are below 1e-34 of the row's largest
// weight (which is 1), so the sums cannot see them. exp_inline, so that loops over it vectorize.
inline float softmax_exp(float x) { return x < -80.0f ? 0.0f : exp_inline(x); }

// The softmax weights of one row: w_j = e^(x_j - shift) (flushed as softmax_exp does), written
// as scale * w_j to out when out is not nullptr (out may be x itself), and sum_j w_j returned.
// Vectorized (exp_inline); summed in 16 float lanes per block of 512, the blocks in double.
__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) double softmax_weights(float* out, const float* x, float shift, float scale, int n) {
  double total = 0;
  for (int b0 = 0; b0 < n; b0 += 512) {
    const int b1 = std::min(n, b0 + 512);
    float acc[16] = {};
    int j = b0;
    for (; j + 16 <= b1; j += 16) {
      float w[16];
      for (int k = 0; k < 16; k++) w[k] = softmax_exp(x[j + k] - shift);
      for (int k = 0; k < 16; k++) acc[k] += w[k];
      if (out)
        for (int k = 0; k < 16; k++) out[j + k] = w[k] * scale;
    }
    float s = 0;
    for (; j < b1; j++) {
      const float w = softmax_exp(x[j] - shift);
      s += w;
      if (out) out[j] = w * scale;
    }
    for (int k = 0; k < 16; k++) s += acc[k];
    total += s;
  }
  return total;
}

float head_at(ConstTensorRef head, int64_t i) { return head.dtype == DType::BF16 ? bf16_to_f32(head.bf16()[i]) : head.f32()[i]; }

// head rows [v0, v0 + n) as a weight of its own
ConstTensorRef rows_of(ConstTensorRef head, int64_t v0, int C) {
  const size_t off = (size_t)(v0 * C) * dtype_size(head.dtype);
  return {static_cast<const uint8_t*>(head.data) + off, head.dtype};
}

}  // namespace

double head_forward_ref(int64_t* kept, float* lse, float* dhidden, const float* hidden, const int32_t* targets, ConstTensorRef head, float loss_scale, int64_t K, int C, int V) {
  std::vector<double> logit((size_t)V);
  double sum = 0;
  *kept = 0;
  for (int64_t k = 0; k < K; k++) {
    lse[k] = 0;
    if (targets[k] < 0) continue;
    double m = -INFINITY;
    for (int v = 0; v < V; v++) {
      double s = 0;
      for (int c = 0; c < C; c++) s += (double)hidden[k * C + c] * head_at(head, (int64_t)v * C + c);
      logit[(size_t)v] = s;
      m = std::max(m, s);
    }
    double z = 0;
    for (int v = 0; v < V; v++) z += std::exp(logit[(size_t)v] - m);
    const double l = m + std::log(z);
    lse[k] = (float)l;
    sum += l - logit[(size_t)targets[k]];
    (*kept)++;
    if (!dhidden) continue;
    for (int v = 0; v < V; v++) {
      const double g = loss_scale * (std::exp(logit[(size_t)v] - l) - (v == targets[k] ? 1.0 : 0.0));
      for (int c = 0; c < C; c++) dhidden[k * C + c] += (float)(g * head_at(head, (int64_t)v * C + c));
    }
  }
  return sum;
}

void head_backward_ref(float* dhead, const float* hidden, const int32_t* targets, const float* lse, const float* head, float loss_scale, int64_t K, int C, int V) {
  for (int64_t k = 0; k < K; k++) {
    if (targets[k] < 0) continue;
    for (int v = 0; v < V; v++) {
      double s = 0;
      for (int c = 0; c < C; c++) s += (double)hidden[k * C + c] * head[(int64_t)v * C + c];
      const double g = loss_scale * (std::exp(s - lse[k]) - (v == targets[k] ? 1.0 : 0.0));
      for (int c = 0; c < C; c++) dhead[(int64_t)v * C + c] += (float)(g * hidden[k * C + c]);
    }
  }
}

double head_forward(ThreadPool& pool, Isa isa, int64_t* kept, float* lse, float* dhidden, float* logits, const float* hidden, const int32_t* targets, ConstTensorRef head, float loss_scale, int64_t K, int C,
                    int V, int chunk, HeadScratch* scratch) {
  *kept = 0;
  if (K <= 0) return 0;
  if (logits) chunk = V;  // the caller wants every logit: one chunk, written in place
  chunk = std::max(1, std::min(chunk, V));
  HeadScratch own;
  HeadScratch& sc = scratch ? *scratch : own;
  // buf: the chunk's logits when the caller keeps none, turned in place into the softmax weights
  // P = exp(logit - max) for acc; with kept logits, P gets buf of its own. Written whole per chunk.
  std::vector<float>& buf = sc.buf;
  if (!(logits && !dhidden) && buf.size() < (size_t)(K * chunk)) buf.resize((size_t)(K * chunk));
  std::vector<double> m((size_t)K, -INFINITY), z((size_t)K, 0.0);  // running max and sum of exp(logit - max)
  std::vector<float> tl((size_t)K, 0.0f);                            // the target's logit
  std::vector<float>& acc = sc.acc;                                  // sum_v exp(logit_v - max) head_v
  if (dhidden) acc.assign((size_t)(K * C), 0.0f);
  for (int v0 = 0; v0 < V; v0 += chunk) {
    const int n = std::min(chunk, V - v0);
    float* L = logits ? logits : buf.data();  // (K, n)
    float* P = dhidden ? buf.data() : nullptr;  // (K, n), may alias L
    const ConstTensorRef w = rows_of(head, v0, C);
    matmul_forward(pool, isa, L, hidden, w, nullptr, K, C, n);
    pool.parallel_for(K, [&](int, int64_t a, int64_t b) {
      for (int64_t k = a; k < b; k++) {
        float* row = L + k * n;
        const int32_t t = targets[k];
        if (t < 0) {
          if (P) std::fill(P + k * n, P + (k + 1) * n, 0.0f);  // no loss: the row adds nothing to acc
          continue;
        }
        float mx = row[0];
        for (int j = 1; j < n; j++) mx = std::max(mx, row[j]);
        const double m_new = std::max(m[(size_t)k], (double)mx);
        const double r = std::exp(m[(size_t)k] - m_new);  // 0 on the first chunk (m = -inf)
        double s = 0;
        if (t >= v0 && t < v0 + n) tl[(size_t)k] = row[t - v0];
        if (dhidden) {
          s = softmax_weights(P + k * n, row, (float)m_new, 1.0f, n);
          if (r != 1.0)
            for (int c = 0; c < C; c++) acc[(size_t)(k * C + c)] *= (float)r;
        } else {
          s = softmax_weights(nullptr, row, (float)m_new, 1.0f, n);
        }
        z[(size_t)k] = z[(size_t)k] * r + s;
        m[(size_t)k] = m_new;
      }
    }, 0, grain_for((int64_t)n * 4));
    // acc (K, C) += P (K, n) . head rows (n, C): the dinp form of the linear layer
    if (dhidden) matmul_backward(pool, isa, acc.data(), nullptr, nullptr, P, hidden, w, K, C, n);
  }
  std::vector<double> part((size_t)pool.size(), 0.0);
  std::vector<int64_t> cnt((size_t)pool.size(), 0);
  pool.parallel_for(K, [&](int p, int64_t a, int64_t b) {
    for (int64_t k = a; k < b; k++) {
      const int32_t t = targets[k];
      if (t < 0) {
        lse[k] = 0;
        continue;
      }
      const double l = m[(size_t)k] + std::log(z[(size_t)k]);
      lse[k] = (float)l;
      part[(size_t)p] += l - tl[(size_t)k];
      cnt[(size_t)p]++;
      if (!dhidden) continue;
      const float inv = (float)(loss_scale / z[(size_t)k]);
      for (int c = 0; c < C; c++) dhidden[k * C + c] += inv * acc[(size_t)(k * C + c)] - loss_scale * head_at(head, (int64_t)t * C + c);
    }
  }, pool.size());
  double sum = 0;
  for (size_t p = 0; p < part.size(); p++) sum += part[p], *kept += cnt[p];
  return sum;
}

void head_backward(ThreadPool& pool, Isa isa, float* dhead, float* dhidden, const float* hidden, const int32_t* targets, const float* lse, const float* logits, const float* head, float loss_scale, int64_t K,
                   int C, int V, int chunk, HeadScratch* scratch) {
  if (K <= 0) return;
  if (logits) chunk = V;
  chunk = std::max(1, std::min(chunk, V));
  HeadScratch own;
  std::vector<float>& G = (scratch ? *scratch : own).buf;  // written whole per chunk
  if (G.size() < (size_t)(K * chunk)) G.resize((size_t)(K * chunk));
  for (int v0 = 0; v0 < V; v0 += chunk) {
    const int n = std::min(chunk, V - v0);
    const ConstTensorRef w{head + (int64_t)v0 * C, DType::F32};
    if (logits) std::copy(logits, logits + K * (int64_t)V, G.data());
    else matmul_forward(pool, isa, G.data(), hidden, w, nullptr, K, C, n);
    // G = loss_scale * (softmax - onehot), 0 for ignored rows
    pool.parallel_for(K, [&](int, int64_t a, int64_t b) {
      for (int64_t k = a; k < b; k++) {
        float* row = G.data() + k * n;
        const int32_t t = targets[k];
        if (t < 0) {
          std::fill(row, row + n, 0.0f);
          continue;
        }
        softmax_weights(row, row, lse[k], loss_scale, n);
        if (t >= v0 && t < v0 + n) row[t - v0] -= loss_scale;
      }
    }, 0, grain_for((int64_t)n * 4));
    matmul_backward(pool, isa, dhidden, dhead ? dhead + (int64_t)v0 * C : nullptr, nullptr, G.data(), hidden, w, K, C, n);
  }
}

}  // namespace vlatext
