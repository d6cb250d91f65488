#include "attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "matmul.h"
#include "vec.h"

// The f32x16 values below never cross a call (every helper is inlined into a cloned kernel),
// so GCC's note that their by-value ABI differs between ISAs does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace vlatext {

namespace {

constexpr int kTile = 32;  // keys per tile in the online softmax (two 16-lane values)

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

// ---- causal attention for training: rows in blocks, keys transposed ----
//
// The keys (and, for the backward, the values) of one (sequence, kv head) are transposed into
// hd rows of ld floats (ld: T rounded up to whole tiles, zero-padded), so the dot products of a
// query with a tile of 32 keys are vector operations across keys, with no horizontal sum per
// key, and kRows query rows advance together, so their softmax sums and output rows are
// independent chains instead of one long one. attend_range above, one row at a time, serves the
// cached decode and the vision tower's segments. The results match the double-precision
// references to rounding (native/tests/test_kernels.cpp), not the row-at-a-time bits: the sums
// run in another order. Every output element is written by one task in a fixed order, so the
// result does not depend on the thread count.

constexpr int kRows = 4;  // query rows processed together

// xt[i * ld + j] = row j of head h of x (rows base .. base+n-1), zero for j in [n, ld).
void transpose_head(float* xt, int64_t ld, const float* x, int64_t base, int64_t n, int heads, int h, int hd) {
  for (int i = 0; i < hd; i++) {
    float* dst = xt + i * ld;
    for (int64_t j = 0; j < n; j++) dst[j] = x[((base + j) * heads + h) * hd + i];
    for (int64_t j = n; j < ld; j++) dst[j] = 0.0f;
  }
}

// s[j] = sum_i a[i] * kt[i * ld + j] for the kTile (32) keys whose transposed columns start
// at kt: two 16-lane values per key tile, four partial sums each (i mod 4), added pairwise.
template <int HD>
inline __attribute__((always_inline)) void dots_tile(float* __restrict s, const float* __restrict a, const float* __restrict kt, int64_t ld, int hd_rt) {
  const int hd = HD > 0 ? HD : hd_rt;
  f32x16 acc[4][2] = {};
  for (int i = 0; i < hd; i++) {
    const float* kr = kt + (int64_t)i * ld;
    acc[i & 3][0] += load16(kr) * a[i];
    acc[i & 3][1] += load16(kr + 16) * a[i];
  }
  for (int u = 0; u < 2; u++) store16(s + 16 * u, (acc[0][u] + acc[1][u]) + (acc[2][u] + acc[3][u]));
}

// Largest lane and sum of the lanes of the 32 floats at x.
inline float max32(const float* x) {
  const f32x16 a = load16(x), b = load16(x + 16);
  const f32x16 m = a > b ? a : b;
  float r = m[0];
  for (int u = 1; u < 16; u++) r = std::max(r, m[u]);
  return r;
}
inline float sum32(const float* x) {
  const f32x16 a = load16(x) + load16(x + 16);
  float r = 0.0f;
  for (int u = 0; u < 16; u++) r += a[u];
  return r;
}

// Rows t0 .. t0+nr-1 (nr <= kRows) of head h of sequence b; row t sees keys 0 .. t. kt: that
// sequence's keys of kv head kvh, transposed (hd x ld). Online softmax tile by tile; keys a
// row does not see get probability 0, so every row walks the same tiles. With a head size
// that is a multiple of 16, the output rows stay in registers. Scratch: sc (kRows x kTile),
// o (kRows x hd).
template <int HD>
inline __attribute__((always_inline)) void attend_rows_t(float* out, float* lse, const float* q, const float* kt, int64_t ld, const float* v, int b, int t0, int nr, const AttnShape& s, int h, int kvh, float* __restrict sc, float* __restrict o) {
  constexpr bool kVec = HD > 0 && HD % 16 == 0;
  constexpr int kV = kVec ? HD / 16 : 1;  // 16-lane values per output row
  const int hd = HD > 0 ? HD : s.hd;
  const float scale = 1.0f / std::sqrt((float)hd);
  const int64_t base = (int64_t)b * s.T;
  float m[kRows], l[kRows];
  f32x16 ov[kRows][kV];
  for (int r = 0; r < nr; r++) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
    if constexpr (kVec)
      for (int u = 0; u < kV; u++) ov[r][u] = f32x16{};
    else
      for (int i = 0; i < hd; i++) o[r * hd + i] = 0.0f;
  }
  const int last = t0 + nr - 1;
  for (int s0 = 0; s0 <= last; s0 += kTile) {
    const int n = std::min(kTile, last + 1 - s0);  // keys of this tile the last row sees
    for (int r = 0; r < nr; r++) {
      float* sr = sc + r * kTile;
      const int nv = std::min(kTile, t0 + r + 1 - s0);  // <= 0: the tile is past this row's last key
      if (nv <= 0) {
        for (int j = 0; j < kTile; j++) sr[j] = 0.0f;
        continue;
      }
      dots_tile<HD>(sr, row(q, base + t0 + r, s.NH, h, hd), kt + s0, ld, hd);
      for (int j = 0; j < kTile; j++) sr[j] = j < nv ? sr[j] * scale : -INFINITY;
      const float m_new = std::max(m[r], max32(sr));
      const float correction = std::exp(m[r] - m_new);  // exp(-inf) = 0 on the first tile
      for (int j = 0; j < kTile; j++) sr[j] = exp_inline(sr[j] - m_new);  // 0 for keys the row does not see
      l[r] = l[r] * correction + sum32(sr);
      if constexpr (kVec)
        for (int u = 0; u < kV; u++) ov[r][u] *= correction;
      else
        for (int i = 0; i < hd; i++) o[r * hd + i] *= correction;
      m[r] = m_new;
    }
    for (int j = 0; j < n; j++) {
      const float* vj = row(v, base + s0 + j, s.KV, kvh, hd);
      if constexpr (kVec) {
        f32x16 vv[kV];
        for (int u = 0; u < kV; u++) vv[u] = load16(vj + 16 * u);
        for (int r = 0; r < nr; r++) {
          const float pj = sc[r * kTile + j];
          for (int u = 0; u < kV; u++) ov[r][u] += vv[u] * pj;
        }
      } else {
        for (int r = 0; r < nr; r++) axpy_inline(o + r * hd, vj, sc[r * kTile + j], hd);
      }
    }
  }
  for (int r = 0; r < nr; r++) {
    float* orow = row(out, base + t0 + r, s.NH, h, hd);
    if constexpr (kVec)
      for (int u = 0; u < kV; u++) store16(orow + 16 * u, ov[r][u] / l[r]);
    else
      for (int i = 0; i < hd; i++) orow[i] = o[r * hd + i] / l[r];
    lse[((int64_t)b * s.NH + h) * s.T + t0 + r] = m[r] + std::log(l[r]);
  }
}

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void attend_rows(float* out, float* lse, const float* q, const float* kt, int64_t ld, const float* v, int b, int t0, int nr, const AttnShape& s, int h, int kvh, float* sc, float* o) {
  switch (s.hd) {
    case 16: return attend_rows_t<16>(out, lse, q, kt, ld, v, b, t0, nr, s, h, kvh, sc, o);
    case 64: return attend_rows_t<64>(out, lse, q, kt, ld, v, b, t0, nr, s, h, kvh, sc, o);
    case 128: return attend_rows_t<128>(out, lse, q, kt, ld, v, b, t0, nr, s, h, kvh, sc, o);
    default: return attend_rows_t<0>(out, lse, q, kt, ld, v, b, t0, nr, s, h, kvh, sc, o);
  }
}

// Gradients of rows t0 .. t0+nr-1 of query head h (kv head kvh) of sequence b. kt, vt: that
// sequence's keys and values, transposed (hd x ld); dkt, dvt: its dk and dv, transposed, that
// this adds to (the caller transposes them back). Scratch: p, ds (kRows x kTile each), dqa
// (kRows x hd). Vectorized across keys: dk, dv (as dkt, dvt) and the probabilities; across
// the head: dq. Each element's sums run in a fixed order (heads, then rows, then keys).
template <int HD>
inline __attribute__((always_inline)) void backward_rows_t(float* dq, float* __restrict dkt, float* __restrict dvt, const float* dout, const float* out, const float* lse, const float* q, const float* kt, const float* vt, int64_t ld, const float* k, int t0, int nr, const AttnShape& s, int b, int h, int kvh, float* __restrict p, float* __restrict ds, float* __restrict dqa) {
  const int hd = HD > 0 ? HD : s.hd;
  const float scale = 1.0f / std::sqrt((float)hd);
  const int64_t base = (int64_t)b * s.T;
  float L[kRows], D[kRows];
  const float* qr[kRows];
  const float* gr[kRows];
  for (int r = 0; r < nr; r++) {
    const int64_t t = base + t0 + r;
    qr[r] = row(q, t, s.NH, h, hd);
    gr[r] = row(dout, t, s.NH, h, hd);
    L[r] = lse[((int64_t)b * s.NH + h) * s.T + t0 + r];
    D[r] = dot_inline(gr[r], row(out, t, s.NH, h, hd), hd);  // sum_i dout_i out_i = sum_s p_s (dout . v_s)
    for (int i = 0; i < hd; i++) dqa[r * hd + i] = 0.0f;
  }
  const int last = t0 + nr - 1;
  for (int s0 = 0; s0 <= last; s0 += kTile) {
    int nv[kRows];
    for (int r = 0; r < nr; r++) {
      nv[r] = std::max(0, std::min(kTile, t0 + r + 1 - s0));  // keys of this tile row t0+r sees
      float* pr = p + r * kTile;
      float* dr = ds + r * kTile;
      dots_tile<HD>(pr, qr[r], kt + s0, ld, hd);
      dots_tile<HD>(dr, gr[r], vt + s0, ld, hd);
      const float Lr = L[r], Dr = D[r];
      const int nvr = nv[r];
      for (int j = 0; j < kTile; j++) {
        const float e = exp_inline(pr[j] * scale - Lr);  // computed for every lane, kept for keys the row sees
        const float pj = j < nvr ? e : 0.0f;
        pr[j] = pj;
        dr[j] = pj * (dr[j] - Dr) * scale;
      }
    }
    // dk^T and dv^T rows of this tile: two 16-lane values each, kept in registers over the rows
    static_assert(kTile == 32, "the tile is two f32x16");
    f32x16 pv[kRows][2], dsv[kRows][2];  // this tile's probabilities and dS, per row
    for (int r = 0; r < nr; r++)
      for (int u = 0; u < 2; u++) pv[r][u] = load16(p + r * kTile + 16 * u), dsv[r][u] = load16(ds + r * kTile + 16 * u);
    for (int i = 0; i < hd; i++) {
      float* dkr = dkt + (int64_t)i * ld + s0;
      float* dvr = dvt + (int64_t)i * ld + s0;
      f32x16 k0 = load16(dkr), k1 = load16(dkr + 16), v0 = load16(dvr), v1 = load16(dvr + 16);
      for (int r = 0; r < nr; r++) {
        const float qi = qr[r][i], gi = gr[r][i];
        k0 += dsv[r][0] * qi;
        k1 += dsv[r][1] * qi;
        v0 += pv[r][0] * gi;
        v1 += pv[r][1] * gi;
      }
      store16(dkr, k0), store16(dkr + 16, k1), store16(dvr, v0), store16(dvr + 16, v1);
    }
    for (int r = 0; r < nr; r++)
      for (int j = 0; j < nv[r]; j++) axpy_inline(dqa + r * hd, row(k, base + s0 + j, s.KV, kvh, hd), ds[r * kTile + j], hd);
  }
  for (int r = 0; r < nr; r++) {
    float* dqt = row(dq, base + t0 + r, s.NH, h, hd);
    for (int i = 0; i < hd; i++) dqt[i] += dqa[r * hd + i];
  }
}

__attribute__((target_clones("avx512f", "arch=x86-64-v3", "default"))) void backward_rows(float* dq, float* dkt, float* dvt, const float* dout, const float* out, const float* lse, const float* q, const float* kt, const float* vt, int64_t ld, const float* k, int t0, int nr, const AttnShape& s, int b, int h, int kvh, float* p, float* ds, float* dqa) {
  switch (s.hd) {
    case 16: return backward_rows_t<16>(dq, dkt, dvt, dout, out, lse, q, kt, vt, ld, k, t0, nr, s, b, h, kvh, p, ds, dqa);
    case 64: return backward_rows_t<64>(dq, dkt, dvt, dout, out, lse, q, kt, vt, ld, k, t0, nr, s, b, h, kvh, p, ds, dqa);
    case 128: return backward_rows_t<128>(dq, dkt, dvt, dout, out, lse, q, kt, vt, ld, k, t0, nr, s, b, h, kvh, p, ds, dqa);
    default: return backward_rows_t<0>(dq, dkt, dvt, dout, out, lse, q, kt, vt, ld, k, t0, nr, s, b, h, kvh, p, ds, dqa);
  }
}

inline int64_t padded_keys(int T) { return ((int64_t)T + kTile - 1) / kTile * kTile; }

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
  // independent (b, h) pairs; each transposes its sequence's keys once and walks its rows in blocks
  const int group = s.NH / s.KV;
  const int64_t ld = padded_keys(s.T);
  pool.parallel_for((int64_t)s.B * s.NH, [&](int, int64_t a, int64_t e) {
    std::vector<float> kt((size_t)(s.hd * ld)), sc((size_t)kRows * kTile), o((size_t)kRows * s.hd);
    for (int64_t bh = a; bh < e; bh++) {
      const int b = (int)(bh / s.NH), h = (int)(bh % s.NH);
      const int64_t base = (int64_t)b * s.T;
      transpose_head(kt.data(), ld, k, base, s.T, s.KV, h / group, s.hd);
      for (int t0 = 0; t0 < s.T; t0 += kRows)
        attend_rows(out, lse, q, kt.data(), ld, v, b, t0, std::min(kRows, s.T - t0), s, h, h / group, sc.data(), o.data());
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
  const int group = s.NH / s.KV;
  const int64_t ld = padded_keys(s.T);
  pool.parallel_for((int64_t)s.B * s.KV, [&](int, int64_t a, int64_t e) {
    const size_t n = (size_t)(s.hd * ld);
    std::vector<float> kt(n), vt(n), dkt(n), dvt(n), p((size_t)kRows * kTile), ds((size_t)kRows * kTile), dqa((size_t)kRows * s.hd);
    for (int64_t g = a; g < e; g++) {
      const int b = (int)(g / s.KV), kvh = (int)(g % s.KV);
      const int64_t base = (int64_t)b * s.T;
      transpose_head(kt.data(), ld, k, base, s.T, s.KV, kvh, s.hd);
      transpose_head(vt.data(), ld, v, base, s.T, s.KV, kvh, s.hd);
      transpose_head(dkt.data(), ld, dk, base, s.T, s.KV, kvh, s.hd);
      transpose_head(dvt.data(), ld, dv, base, s.T, s.KV, kvh, s.hd);
      for (int h = kvh * group; h < (kvh + 1) * group; h++)
        for (int t0 = 0; t0 < s.T; t0 += kRows)
          backward_rows(dq, dkt.data(), dvt.data(), dout, out, lse, q, kt.data(), vt.data(), ld, k, t0, std::min(kRows, s.T - t0), s, b, h, kvh, p.data(), ds.data(), dqa.data());
      for (int64_t j = 0; j < s.T; j++)
        for (int i = 0; i < s.hd; i++) {
          row(dk, base + j, s.KV, kvh, s.hd)[i] = dkt[(size_t)(i * ld + j)];
          row(dv, base + j, s.KV, kvh, s.hd)[i] = dvt[(size_t)(i * ld + j)];
        }
    }
  }, 0, grain_for((int64_t)group * s.T * s.T * s.hd * 3));
}

}  // namespace vlatext
