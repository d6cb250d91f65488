#include "attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "matmul.h"
#include "vec.h"

namespace vlatext {

namespace {

constexpr int kTile = 32;  // keys per tile in the online softmax

inline const float* row(const float* base, int64_t token, int heads, int h, int hd) { return base + (token * heads + h) * hd; }
inline float* row(float* base, int64_t token, int heads, int h, int hd) { return base + (token * heads + h) * hd; }

// One query row against keys/values rows [j0, j1) (absolute rows of k and v, kv head kvh):
// out = sum_j softmax(q.k_j * scale) v_j, tile by tile with an online softmax; lse saved.
// Cloned for AVX2 (with the vector helpers inlined): at head sizes like 16 and 64 the
// per-call cost of an out-of-line dot product was most of the attention's time.
__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void attend_range(float* o, float* lse, const float* qt, const float* k, const float* v, int64_t j0, int64_t j1, int KV, int kvh, int hd, float* scores) {
  const float scale = 1.0f / std::sqrt((float)hd);
  float m = -INFINITY, l = 0.0f;
  for (int i = 0; i < hd; i++) o[i] = 0.0f;
  for (int64_t s0 = j0; s0 < j1; s0 += kTile) {
    const int64_t s1 = std::min(j1, s0 + kTile);
    float tile_max = -INFINITY;
    for (int64_t j = s0; j < s1; j++) {
      scores[j - s0] = dot_inline(qt, row(k, j, KV, kvh, hd), hd) * scale;
      tile_max = std::max(tile_max, scores[j - s0]);
    }
    const float m_new = std::max(m, tile_max);
    const float correction = std::exp(m - m_new);  // exp(-inf) = 0 on the first tile
    l *= correction;
    for (int i = 0; i < hd; i++) o[i] *= correction;
    const int nt = (int)(s1 - s0);
    for (int j = 0; j < nt; j++) scores[j] = exp_inline(scores[j] - m_new);  // vectorized
    for (int64_t j = s0; j < s1; j++) {
      const float p = scores[j - s0];
      l += p;
      axpy_inline(o, row(v, j, KV, kvh, hd), p, hd);
    }
    m = m_new;
  }
  for (int i = 0; i < hd; i++) o[i] /= l;
  *lse = m + std::log(l);
}

// Causal: query t of a sequence starting at row `base` sees rows base .. base+t.
void attend_row(float* o, float* lse, const float* qt, const float* k, const float* v, int64_t base, int t, const AttnShape& s, int kvh, float* scores) {
  attend_range(o, lse, qt, k, v, base, base + t + 1, s.KV, kvh, s.hd, scores);
}

// Gradients for one (sequence, kv head) group: all query heads that read this kv head.
// p (T): scratch for one query row's probabilities.
__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void backward_group(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const AttnShape& s, int b, int kvh, float* p) {
  const float scale = 1.0f / std::sqrt((float)s.hd);
  const int group = s.NH / s.KV;
  const int64_t base = (int64_t)b * s.T;
  for (int h = kvh * group; h < (kvh + 1) * group; h++) {
    for (int t = 0; t < s.T; t++) {
      const float* qt = row(q, base + t, s.NH, h, s.hd);
      const float* dot_ = row(dout, base + t, s.NH, h, s.hd);
      const float* ot = row(out, base + t, s.NH, h, s.hd);
      float* dqt = row(dq, base + t, s.NH, h, s.hd);
      const float L = lse[((int64_t)b * s.NH + h) * s.T + t];
      const float D = dot_inline(dot_, ot, s.hd);  // sum_i dout_i out_i = sum_s p_s (dout . v_s)
      for (int j = 0; j <= t; j++) p[j] = dot_inline(qt, row(k, base + j, s.KV, kvh, s.hd), s.hd) * scale - L;
      for (int j = 0; j <= t; j++) p[j] = exp_inline(p[j]);  // vectorized
      for (int j = 0; j <= t; j++) {
        const float* kj = row(k, base + j, s.KV, kvh, s.hd);
        const float* vj = row(v, base + j, s.KV, kvh, s.hd);
        const float dp = dot_inline(dot_, vj, s.hd);
        const float ds = p[j] * (dp - D) * scale;
        axpy_inline(dqt, kj, ds, s.hd);
        axpy_inline(row(dk, base + j, s.KV, kvh, s.hd), qt, ds, s.hd);
        axpy_inline(row(dv, base + j, s.KV, kvh, s.hd), dot_, p[j], s.hd);
      }
    }
  }
}

}  // namespace

void attention_forward_ref(float* out, float* lse, const float* q, const float* k, const float* v, const AttnShape& s) {
  const float scale = 1.0f / std::sqrt((float)s.hd);
  const int group = s.NH / s.KV;
  std::vector<double> p(s.T);
  for (int b = 0; b < s.B; b++)
    for (int h = 0; h < s.NH; h++)
      for (int t = 0; t < s.T; t++) {
        const int64_t base = (int64_t)b * s.T;
        const float* qt = row(q, base + t, s.NH, h, s.hd);
        double m = -INFINITY;
        for (int j = 0; j <= t; j++) {
          double d = 0;
          for (int i = 0; i < s.hd; i++) d += (double)qt[i] * row(k, base + j, s.KV, h / group, s.hd)[i];
          p[j] = d * scale;
          m = std::max(m, p[j]);
        }
        double z = 0;
        for (int j = 0; j <= t; j++) z += (p[j] = std::exp(p[j] - m));
        float* o = row(out, base + t, s.NH, h, s.hd);
        for (int i = 0; i < s.hd; i++) {
          double acc = 0;
          for (int j = 0; j <= t; j++) acc += p[j] / z * row(v, base + j, s.KV, h / group, s.hd)[i];
          o[i] = (float)acc;
        }
        lse[((int64_t)b * s.NH + h) * s.T + t] = (float)(m + std::log(z));
      }
}

// The textbook backward with the probability matrix materialized (double), independent of
// the tiled version: P = softmax(QK^T * scale), dV = P^T dO, dP = dO V^T,
// dS = P * (dP - rowsum(P * dP)), dQ = dS K * scale, dK = dS^T Q * scale.
void attention_backward_ref(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const AttnShape& s) {
  (void)out;
  (void)lse;
  const double scale = 1.0 / std::sqrt((double)s.hd);
  const int group = s.NH / s.KV;
  std::vector<double> P((size_t)s.T * s.T), dP((size_t)s.T * s.T);
  for (int b = 0; b < s.B; b++)
    for (int h = 0; h < s.NH; h++) {
      const int kvh = h / group;
      const int64_t base = (int64_t)b * s.T;
      for (int t = 0; t < s.T; t++) {
        double m = -INFINITY;
        for (int j = 0; j <= t; j++) {
          double d = 0;
          for (int i = 0; i < s.hd; i++) d += (double)row(q, base + t, s.NH, h, s.hd)[i] * row(k, base + j, s.KV, kvh, s.hd)[i];
          P[(size_t)t * s.T + j] = d * scale;
          m = std::max(m, d * scale);
        }
        double z = 0;
        for (int j = 0; j <= t; j++) z += (P[(size_t)t * s.T + j] = std::exp(P[(size_t)t * s.T + j] - m));
        for (int j = 0; j <= t; j++) P[(size_t)t * s.T + j] /= z;
        double rowsum = 0;
        for (int j = 0; j <= t; j++) {
          double d = 0;
          for (int i = 0; i < s.hd; i++) d += (double)row(dout, base + t, s.NH, h, s.hd)[i] * row(v, base + j, s.KV, kvh, s.hd)[i];
          dP[(size_t)t * s.T + j] = d;
          rowsum += d * P[(size_t)t * s.T + j];
        }
        for (int j = 0; j <= t; j++) {
          const double p = P[(size_t)t * s.T + j];
          const double ds = p * (dP[(size_t)t * s.T + j] - rowsum) * scale;
          for (int i = 0; i < s.hd; i++) {
            row(dq, base + t, s.NH, h, s.hd)[i] += (float)(ds * row(k, base + j, s.KV, kvh, s.hd)[i]);
            row(dk, base + j, s.KV, kvh, s.hd)[i] += (float)(ds * row(q, base + t, s.NH, h, s.hd)[i]);
            row(dv, base + j, s.KV, kvh, s.hd)[i] += (float)(p * row(dout, base + t, s.NH, h, s.hd)[i]);
          }
        }
      }
    }
}

void attention_forward(ThreadPool& pool, float* out, float* lse, const float* q, const float* k, const float* v, const AttnShape& s) {
  // independent (b, h, t) rows; parallel over (b, h) pairs
  const int group = s.NH / s.KV;
  pool.parallel_for((int64_t)s.B * s.NH, [&](int, int64_t a, int64_t e) {
    std::vector<float> scores(kTile);
    for (int64_t bh = a; bh < e; bh++) {
      const int b = (int)(bh / s.NH), h = (int)(bh % s.NH);
      const int64_t base = (int64_t)b * s.T;
      for (int t = 0; t < s.T; t++)
        attend_row(row(out, base + t, s.NH, h, s.hd), lse + ((int64_t)b * s.NH + h) * s.T + t, row(q, base + t, s.NH, h, s.hd), k, v, base, t, s, h / group, scores.data());
    }
  }, 0, grain_for((int64_t)s.T * s.T * s.hd));
}

void attention_forward_cached(ThreadPool& pool, float* out, const float* q, const float* k, const float* v, int start, int n, int NH, int KV, int hd) {
  const AttnShape s{1, start + n, NH, KV, hd};
  const int group = NH / KV;
  pool.parallel_for((int64_t)n * NH, [&](int, int64_t a, int64_t e) {
    std::vector<float> scores(kTile);
    for (int64_t ih = a; ih < e; ih++) {
      const int i = (int)(ih / NH), h = (int)(ih % NH);
      float lse;
      attend_row(out + ((int64_t)i * NH + h) * hd, &lse, q + ((int64_t)i * NH + h) * hd, k, v, 0, start + i, s, h / group, scores.data());
    }
  }, 0, grain_for((int64_t)(start + n) * hd * 2));
}

void attention_segments_ref(float* out, const float* q, const float* k, const float* v, const int32_t* cu, int n_seg, int NH, int hd) {
  const double scale = 1.0 / std::sqrt((double)hd);
  for (int sg = 0; sg < n_seg; sg++)
    for (int h = 0; h < NH; h++)
      for (int64_t t = cu[sg]; t < cu[sg + 1]; t++) {
        std::vector<double> p((size_t)(cu[sg + 1] - cu[sg]));
        double m = -INFINITY;
        for (int64_t j = cu[sg]; j < cu[sg + 1]; j++) {
          double d = 0;
          for (int i = 0; i < hd; i++) d += (double)row(q, t, NH, h, hd)[i] * row(k, j, NH, h, hd)[i];
          p[(size_t)(j - cu[sg])] = d * scale;
          m = std::max(m, d * scale);
        }
        double z = 0;
        for (auto& x : p) z += (x = std::exp(x - m));
        for (int i = 0; i < hd; i++) {
          double acc = 0;
          for (int64_t j = cu[sg]; j < cu[sg + 1]; j++) acc += p[(size_t)(j - cu[sg])] / z * row(v, j, NH, h, hd)[i];
          row(out, t, NH, h, hd)[i] = (float)acc;
        }
      }
}

void attention_segments(ThreadPool& pool, float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* cu, int n_seg, int NH, int hd) {
  const int64_t N = cu[n_seg];
  pool.parallel_for(N * NH, [&](int, int64_t a, int64_t e) {
    std::vector<float> scores(kTile);
    int sg = 0;
    for (int64_t th = a; th < e; th++) {
      const int64_t t = th / NH;
      const int h = (int)(th % NH);
      while (t >= cu[sg + 1]) sg++;  // rows are visited in order: the segment only moves forward
      float l;
      attend_range(row(out, t, NH, h, hd), &l, row(q, t, NH, h, hd), k, v, cu[sg], cu[sg + 1], NH, h, hd, scores.data());
      if (lse) lse[th] = l;
    }
  }, 0, grain_for(N / std::max(1, n_seg) * hd * 2));
}

void attention_segments_backward_ref(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v, const int32_t* cu, int n_seg, int NH, int hd) {
  const double scale = 1.0 / std::sqrt((double)hd);
  for (int sg = 0; sg < n_seg; sg++) {
    const int64_t j0 = cu[sg], n = cu[sg + 1] - cu[sg];
    std::vector<double> P((size_t)(n * n)), dP((size_t)(n * n));
    for (int h = 0; h < NH; h++) {
      for (int64_t t = 0; t < n; t++) {
        double m = -INFINITY;
        for (int64_t j = 0; j < n; j++) {
          double d = 0;
          for (int i = 0; i < hd; i++) d += (double)row(q, j0 + t, NH, h, hd)[i] * row(k, j0 + j, NH, h, hd)[i];
          P[(size_t)(t * n + j)] = d * scale;
          m = std::max(m, d * scale);
        }
        double z = 0;
        for (int64_t j = 0; j < n; j++) z += (P[(size_t)(t * n + j)] = std::exp(P[(size_t)(t * n + j)] - m));
        double rowsum = 0;
        for (int64_t j = 0; j < n; j++) {
          P[(size_t)(t * n + j)] /= z;
          double d = 0;
          for (int i = 0; i < hd; i++) d += (double)row(dout, j0 + t, NH, h, hd)[i] * row(v, j0 + j, NH, h, hd)[i];
          dP[(size_t)(t * n + j)] = d;
          rowsum += d * P[(size_t)(t * n + j)];
        }
        for (int64_t j = 0; j < n; j++) {
          const double p = P[(size_t)(t * n + j)];
          const double ds = p * (dP[(size_t)(t * n + j)] - rowsum) * scale;
          for (int i = 0; i < hd; i++) {
            row(dq, j0 + t, NH, h, hd)[i] += (float)(ds * row(k, j0 + j, NH, h, hd)[i]);
            row(dk, j0 + j, NH, h, hd)[i] += (float)(ds * row(q, j0 + t, NH, h, hd)[i]);
            row(dv, j0 + j, NH, h, hd)[i] += (float)(p * row(dout, j0 + t, NH, h, hd)[i]);
          }
        }
      }
    }
  }
}

namespace {

// Gradients for one (segment, head) pair of the non-causal segment attention.
// p (j1 - j0): scratch for one query row's probabilities.
__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void segment_backward_pair(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, int64_t j0, int64_t j1, int NH, int h, int hd, float* p) {
  const float scale = 1.0f / std::sqrt((float)hd);
  for (int64_t t = j0; t < j1; t++) {
    const float* qt = row(q, t, NH, h, hd);
    const float* dot_ = row(dout, t, NH, h, hd);
    float* dqt = row(dq, t, NH, h, hd);
    const float L = lse[t * NH + h];
    const float D = dot_inline(dot_, row(out, t, NH, h, hd), hd);  // sum_j p_j (dout . v_j)
    const int64_t n = j1 - j0;
    for (int64_t j = 0; j < n; j++) p[j] = dot_inline(qt, row(k, j0 + j, NH, h, hd), hd) * scale - L;
    for (int64_t j = 0; j < n; j++) p[j] = exp_inline(p[j]);  // vectorized
    for (int64_t j = j0; j < j1; j++) {
      const float* kj = row(k, j, NH, h, hd);
      const float pj = p[j - j0];
      const float ds = pj * (dot_inline(dot_, row(v, j, NH, h, hd), hd) - D) * scale;
      axpy_inline(dqt, kj, ds, hd);
      axpy_inline(row(dk, j, NH, h, hd), qt, ds, hd);
      axpy_inline(row(dv, j, NH, h, hd), dot_, pj, hd);
    }
  }
}

}  // namespace

void attention_segments_backward(ThreadPool& pool, float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const int32_t* cu, int n_seg, int NH, int hd) {
  // a (segment, head) pair owns its rows of dq, dk and dv for that head: no races
  pool.parallel_for((int64_t)n_seg * NH, [&](int, int64_t a, int64_t e) {
    std::vector<float> p;
    for (int64_t sh = a; sh < e; sh++) {
      const int sg = (int)(sh / NH), h = (int)(sh % NH);
      p.resize((size_t)(cu[sg + 1] - cu[sg]));
      segment_backward_pair(dq, dk, dv, dout, out, lse, q, k, v, cu[sg], cu[sg + 1], NH, h, hd, p.data());
    }
  }, 0, grain_for(((int64_t)cu[n_seg] / std::max(1, n_seg)) * ((int64_t)cu[n_seg] / std::max(1, n_seg)) * hd * 6));
}

void attention_backward(ThreadPool& pool, float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const AttnShape& s) {
  // a (sequence, kv head) group owns its dk/dv rows and its query heads' dq rows: no races
  pool.parallel_for((int64_t)s.B * s.KV, [&](int, int64_t a, int64_t e) {
    std::vector<float> p((size_t)s.T);
    for (int64_t g = a; g < e; g++) backward_group(dq, dk, dv, dout, out, lse, q, k, v, s, (int)(g / s.KV), (int)(g % s.KV), p.data());
  }, 0, grain_for((int64_t)(s.NH / s.KV) * s.T * s.T * s.hd * 3));
}

}  // namespace vlatext
