// Attention on the GPU, FlashAttention-style: one warp per query row walks its keys with an
// online softmax (running max and sum, the output rescaled as the max grows), so no score
// matrix is ever stored; the backward recomputes each probability from the saved
// log-sum-exp (FlashAttention-2): one kernel for dq (a warp per query row), one for dk and dv
// (a warp per key row, over the query heads of its group), so nothing is written by two
// warps and no atomics are needed. Lanes hold the head's elements lane, lane + 32, ...
// (J = ceil(hd / 32) each, hd <= 256); a dot product is one warp reduction.
// References: native/kernels/attention.cpp (causal GQA, cached decode, segments).
// Gradients ACCUMULATE (+=) into dq, dk, dv.
#include <cmath>

#include "../kernels/attention.h"
#include "common.cuh"
#include "kernels.h"

namespace vlatext {
namespace cuk {

namespace {

constexpr int kWarps = 4;  // query (or key) rows per block

enum Mode { kCausal = 0, kCached = 1, kSegments = 2 };

// Where the rows of one call live and which keys each query sees.
struct Geo {
  int mode;
  int rows;   // query rows per sequence: T (causal), n (cached), N (segments)
  int NH, KV, hd;
  int start;  // cached: absolute position of query row 0
  int T;      // causal: tokens per sequence
  const int32_t* cu;   // segments: (n_seg + 1)
  const int32_t* seg;  // segments: (N) segment of each row
};

// Keys [lo, hi) that query row r of its sequence attends to.
__device__ __forceinline__ void key_range(const Geo& g, int r, int* lo, int* hi) {
  if (g.mode == kCausal) *lo = 0, *hi = r + 1;
  else if (g.mode == kCached) *lo = 0, *hi = g.start + r + 1;
  else {
    const int s = g.seg[r];
    *lo = g.cu[s], *hi = g.cu[s + 1];
  }
}

// Element offsets of row r of sequence b: queries/outputs (NH heads) and keys/values (KV heads).
__device__ __forceinline__ int64_t q_off(const Geo& g, int b, int r, int h) { return (((int64_t)b * g.rows + r) * g.NH + h) * g.hd; }
__device__ __forceinline__ int64_t kv_off(const Geo& g, int b, int j, int kh) {
  const int64_t seq_len = g.mode == kCausal ? g.T : 0;  // cached and segments: one sequence
  return (((int64_t)b * seq_len + j) * g.KV + kh) * g.hd;
}
// lse layout: (B, NH, T) for causal, (N, NH) for segments.
__device__ __forceinline__ int64_t lse_off(const Geo& g, int b, int r, int h) { return g.mode == kCausal ? ((int64_t)b * g.NH + h) * g.T + r : (int64_t)r * g.NH + h; }

template <int J>
__device__ __forceinline__ void load_row(float (&x)[J], const float* p, int hd, int lane) {
#pragma unroll
  for (int j = 0; j < J; j++) x[j] = lane + 32 * j < hd ? p[lane + 32 * j] : 0.0f;
}
template <int J>
__device__ __forceinline__ float dot_row(const float (&x)[J], const float* p, int hd, int lane) {
  float s = 0;
#pragma unroll
  for (int j = 0; j < J; j++)
    if (lane + 32 * j < hd) s += x[j] * p[lane + 32 * j];
  return warp_sum(s);
}

template <int J>
__global__ void k_attn_fwd(float* out, float* lse, const float* q, const float* k, const float* v, Geo g, float scale) {
  const int lane = threadIdx.x % 32, r = blockIdx.x * kWarps + threadIdx.x / 32, h = blockIdx.y, b = blockIdx.z;
  if (r >= g.rows) return;
  const int kh = h / (g.NH / g.KV);
  float qr[J], acc[J];
  load_row(qr, q + q_off(g, b, r, h), g.hd, lane);
#pragma unroll
  for (int j = 0; j < J; j++) acc[j] = 0;
  int lo, hi;
  key_range(g, r, &lo, &hi);
  float m = -INFINITY, l = 0;
  for (int key = lo; key < hi; key++) {
    const float s = dot_row(qr, k + kv_off(g, b, key, kh), g.hd, lane) * scale;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new), p = expf(s - m_new);
    l = l * corr + p;
    const float* vr = v + kv_off(g, b, key, kh);
#pragma unroll
    for (int j = 0; j < J; j++) acc[j] = acc[j] * corr + (lane + 32 * j < g.hd ? p * vr[lane + 32 * j] : 0.0f);
    m = m_new;
  }
  const float inv = l > 0 ? 1.0f / l : 0.0f;
  float* o = out + q_off(g, b, r, h);
#pragma unroll
  for (int j = 0; j < J; j++)
    if (lane + 32 * j < g.hd) o[lane + 32 * j] = acc[j] * inv;
  if (lse && lane == 0) lse[lse_off(g, b, r, h)] = l > 0 ? m + logf(l) : -INFINITY;
}

// Cached decoding has few query rows (one per new token), so one warp per row would walk
// hundreds of keys alone, each step waiting on memory: the keys are split instead
// (flash-decoding). Block z takes keys [z * split, (z + 1) * split) of every row and writes its
// partial state, unnormalized acc (hd), running max and sum, to part (splits, rows, NH, hd + 2);
// k_attn_combine merges the splits.
template <int J>
__global__ void k_attn_fwd_split(float* part, const float* q, const float* k, const float* v, Geo g, float scale, int split) {
  const int lane = threadIdx.x % 32, r = blockIdx.x * kWarps + threadIdx.x / 32, h = blockIdx.y, z = blockIdx.z;
  if (r >= g.rows) return;
  const int kh = h / (g.NH / g.KV);
  float qr[J], acc[J];
  load_row(qr, q + q_off(g, 0, r, h), g.hd, lane);
#pragma unroll
  for (int j = 0; j < J; j++) acc[j] = 0;
  int lo, hi;
  key_range(g, r, &lo, &hi);
  lo = max(lo, z * split), hi = min(hi, (z + 1) * split);
  float m = -INFINITY, l = 0;
  for (int key = lo; key < hi; key++) {
    const float s = dot_row(qr, k + kv_off(g, 0, key, kh), g.hd, lane) * scale;
    const float m_new = fmaxf(m, s);
    const float corr = expf(m - m_new), p = expf(s - m_new);
    l = l * corr + p;
    const float* vr = v + kv_off(g, 0, key, kh);
#pragma unroll
    for (int j = 0; j < J; j++) acc[j] = acc[j] * corr + (lane + 32 * j < g.hd ? p * vr[lane + 32 * j] : 0.0f);
    m = m_new;
  }
  float* o = part + (((int64_t)z * g.rows + r) * g.NH + h) * (g.hd + 2);
#pragma unroll
  for (int j = 0; j < J; j++)
    if (lane + 32 * j < g.hd) o[lane + 32 * j] = acc[j];
  if (lane == 0) o[g.hd] = m, o[g.hd + 1] = l;
}

// out (rows, NH, hd) = the splits' states merged: sum_z e^(m_z - M) acc_z / sum_z e^(m_z - M) l_z.
__global__ void k_attn_combine(float* out, const float* part, Geo g, int splits) {
  const int lane = threadIdx.x % 32, r = blockIdx.x * kWarps + threadIdx.x / 32, h = blockIdx.y;
  if (r >= g.rows) return;
  const int64_t stride = (int64_t)g.rows * g.NH * (g.hd + 2);
  const float* p0 = part + ((int64_t)r * g.NH + h) * (g.hd + 2);
  float M = -INFINITY;
  for (int z = 0; z < splits; z++) M = fmaxf(M, p0[z * stride + g.hd]);
  float L = 0;
  for (int z = 0; z < splits; z++) {
    const float mz = p0[z * stride + g.hd];
    if (mz > -INFINITY) L += expf(mz - M) * p0[z * stride + g.hd + 1];
  }
  const float inv = L > 0 ? 1.0f / L : 0.0f;
  float* o = out + q_off(g, 0, r, h);
  for (int d = lane; d < g.hd; d += 32) {
    float a = 0;
    for (int z = 0; z < splits; z++) {
      const float mz = p0[z * stride + g.hd];
      if (mz > -INFINITY) a += expf(mz - M) * p0[z * stride + d];
    }
    o[d] = a * inv;
  }
}

// D (rows of the lse layout) = dot(dout, out) per query row and head.
__global__ void k_attn_rowdot(float* D, const float* dout, const float* out, Geo g) {
  const int lane = threadIdx.x % 32, r = blockIdx.x * kWarps + threadIdx.x / 32, h = blockIdx.y, b = blockIdx.z;
  if (r >= g.rows) return;
  const int64_t o = q_off(g, b, r, h);
  float s = 0;
  for (int d = lane; d < g.hd; d += 32) s += dout[o + d] * out[o + d];
  s = warp_sum(s);
  if (lane == 0) D[lse_off(g, b, r, h)] = s;
}

// dq_r += scale * sum_key p (dout_r . v_key - D_r) k_key
template <int J>
__global__ void k_attn_dq(float* dq, const float* dout, const float* lse, const float* D, const float* q, const float* k, const float* v, Geo g, float scale) {
  const int lane = threadIdx.x % 32, r = blockIdx.x * kWarps + threadIdx.x / 32, h = blockIdx.y, b = blockIdx.z;
  if (r >= g.rows) return;
  const int kh = h / (g.NH / g.KV);
  float qr[J], dor[J], acc[J];
  load_row(qr, q + q_off(g, b, r, h), g.hd, lane);
  load_row(dor, dout + q_off(g, b, r, h), g.hd, lane);
#pragma unroll
  for (int j = 0; j < J; j++) acc[j] = 0;
  const float L = lse[lse_off(g, b, r, h)], Dr = D[lse_off(g, b, r, h)];
  int lo, hi;
  key_range(g, r, &lo, &hi);
  for (int key = lo; key < hi; key++) {
    const float* kr = k + kv_off(g, b, key, kh);
    const float p = expf(dot_row(qr, kr, g.hd, lane) * scale - L);
    const float ds = p * (dot_row(dor, v + kv_off(g, b, key, kh), g.hd, lane) - Dr);
#pragma unroll
    for (int j = 0; j < J; j++)
      if (lane + 32 * j < g.hd) acc[j] += ds * kr[lane + 32 * j];
  }
  float* o = dq + q_off(g, b, r, h);
#pragma unroll
  for (int j = 0; j < J; j++)
    if (lane + 32 * j < g.hd) o[lane + 32 * j] += acc[j] * scale;
}

// For key row `key` of kv head kh: dv += sum p dout_r, dk += scale * sum p (dout_r . v - D_r) q_r
// over every query row r that sees it, in every query head of the group.
template <int J>
__global__ void k_attn_dkdv(float* dk, float* dv, const float* dout, const float* lse, const float* D, const float* q, const float* k, const float* v, Geo g, float scale) {
  const int lane = threadIdx.x % 32, key = blockIdx.x * kWarps + threadIdx.x / 32, kh = blockIdx.y, b = blockIdx.z;
  if (key >= g.rows) return;
  const int group = g.NH / g.KV;
  float kr[J], vr[J], dka[J], dva[J];
  load_row(kr, k + kv_off(g, b, key, kh), g.hd, lane);
  load_row(vr, v + kv_off(g, b, key, kh), g.hd, lane);
#pragma unroll
  for (int j = 0; j < J; j++) dka[j] = dva[j] = 0;
  int lo, hi;  // the query rows that see this key
  if (g.mode == kCausal) lo = key, hi = g.rows;
  else {
    const int s = g.seg[key];
    lo = g.cu[s], hi = g.cu[s + 1];
  }
  for (int h = kh * group; h < (kh + 1) * group; h++) {
    for (int r = lo; r < hi; r++) {
      const float* qr = q + q_off(g, b, r, h);
      const float* dr = dout + q_off(g, b, r, h);
      const float p = expf(dot_row(kr, qr, g.hd, lane) * scale - lse[lse_off(g, b, r, h)]);
      const float ds = p * (dot_row(vr, dr, g.hd, lane) - D[lse_off(g, b, r, h)]);
#pragma unroll
      for (int j = 0; j < J; j++)
        if (lane + 32 * j < g.hd) {
          dva[j] += p * dr[lane + 32 * j];
          dka[j] += ds * qr[lane + 32 * j];
        }
    }
  }
  const int64_t o = kv_off(g, b, key, kh);
#pragma unroll
  for (int j = 0; j < J; j++)
    if (lane + 32 * j < g.hd) {
      if (dk) dk[o + lane + 32 * j] += dka[j] * scale;
      if (dv) dv[o + lane + 32 * j] += dva[j];
    }
}

#define VLATEXT_DISPATCH_J(hd, call) \
  do {                               \
    if ((hd) <= 32) call(1);         \
    else if ((hd) <= 64) call(2);    \
    else if ((hd) <= 128) call(4);   \
    else call(8);                    \
  } while (0)

void forward(cudaStream_t s, float* out, float* lse, const float* q, const float* k, const float* v, const Geo& g, int B) {
  if (g.rows <= 0 || B <= 0) return;
  const dim3 grid((unsigned)((g.rows + kWarps - 1) / kWarps), (unsigned)g.NH, (unsigned)B);
  const float scale = 1.0f / sqrtf((float)g.hd);
#define LAUNCH(J) k_attn_fwd<J><<<grid, 32 * kWarps, 0, s>>>(out, lse, q, k, v, g, scale)
  VLATEXT_DISPATCH_J(g.hd, LAUNCH);
#undef LAUNCH
}

void backward(cudaStream_t s, float* dq, float* dk, float* dv, float* D, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const Geo& g, int B) {
  if (g.rows <= 0 || B <= 0) return;
  const dim3 grid_q((unsigned)((g.rows + kWarps - 1) / kWarps), (unsigned)g.NH, (unsigned)B);
  const dim3 grid_k((unsigned)((g.rows + kWarps - 1) / kWarps), (unsigned)g.KV, (unsigned)B);
  const float scale = 1.0f / sqrtf((float)g.hd);
  k_attn_rowdot<<<grid_q, 32 * kWarps, 0, s>>>(D, dout, out, g);
#define LAUNCH_DQ(J) k_attn_dq<J><<<grid_q, 32 * kWarps, 0, s>>>(dq, dout, lse, D, q, k, v, g, scale)
#define LAUNCH_DKV(J) k_attn_dkdv<J><<<grid_k, 32 * kWarps, 0, s>>>(dk, dv, dout, lse, D, q, k, v, g, scale)
  if (dq) VLATEXT_DISPATCH_J(g.hd, LAUNCH_DQ);
  if (dk || dv) VLATEXT_DISPATCH_J(g.hd, LAUNCH_DKV);
#undef LAUNCH_DQ
#undef LAUNCH_DKV
}

}  // namespace

void attention_forward(cudaStream_t s, float* out, float* lse, const float* q, const float* k, const float* v, const AttnShape& a) {
  const Geo g{kCausal, a.T, a.NH, a.KV, a.hd, 0, a.T, nullptr, nullptr};
  forward(s, out, lse, q, k, v, g, a.B);
}
void attention_backward(cudaStream_t s, float* dq, float* dk, float* dv, float* D, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const AttnShape& a) {
  const Geo g{kCausal, a.T, a.NH, a.KV, a.hd, 0, a.T, nullptr, nullptr};
  backward(s, dq, dk, dv, D, dout, out, lse, q, k, v, g, a.B);
}
void attention_forward_cached(cudaStream_t s, float* out, float* part, const float* q, const float* k, const float* v, int start, int n, int NH, int KV, int hd) {
  const Geo g{kCached, n, NH, KV, hd, start, 0, nullptr, nullptr};
  const CachedSplit cs = cached_split(start, n);
  if (cs.splits <= 1 || !part) return forward(s, out, nullptr, q, k, v, g, 1);
  const dim3 grid((unsigned)((n + kWarps - 1) / kWarps), (unsigned)NH, (unsigned)cs.splits);
  const float scale = 1.0f / sqrtf((float)hd);
#define LAUNCH(J) k_attn_fwd_split<J><<<grid, 32 * kWarps, 0, s>>>(part, q, k, v, g, scale, cs.split)
  VLATEXT_DISPATCH_J(hd, LAUNCH);
#undef LAUNCH
  k_attn_combine<<<dim3(grid.x, grid.y), 32 * kWarps, 0, s>>>(out, part, g, cs.splits);
}
void attention_segments(cudaStream_t s, float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* cu, const int32_t* seg, int N, int NH, int hd) {
  const Geo g{kSegments, N, NH, NH, hd, 0, 0, cu, seg};
  forward(s, out, lse, q, k, v, g, 1);
}
void attention_segments_backward(cudaStream_t s, float* dq, float* dk, float* dv, float* D, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const int32_t* cu,
                                 const int32_t* seg, int N, int NH, int hd) {
  const Geo g{kSegments, N, NH, NH, hd, 0, 0, cu, seg};
  backward(s, dq, dk, dv, D, dout, out, lse, q, k, v, g, 1);
}

}  // namespace cuk
}  // namespace vlatext
