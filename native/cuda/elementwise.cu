// Per-element and per-row CUDA kernels: conversions, axpy-like updates, SwiGLU, GELU,
// embeddings, row gathers, RMSNorm, bias, RoPE. References: native/kernels/elementwise.cpp,
// norm.cpp, rope.cpp (the same arithmetic; sums over a row in double, as there).
// Gradients ACCUMULATE (+=).
#include "common.cuh"
#include "kernels.h"

namespace vlatext {
namespace cuk {

namespace {

__global__ void k_to_bf16(uint16_t* dst, const float* src, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) dst[i] = f32_to_bf16_bits(src[i]);
}
__global__ void k_to_f32(float* dst, const uint16_t* src, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) dst[i] = bf16_bits_to_f32(src[i]);
}
__global__ void k_axpy(float* y, const float* x, float a, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) y[i] += a * x[i];
}
__global__ void k_add(float* out, const float* a, const float* b, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}
__global__ void k_scale(float* out, const float* x, float a, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) out[i] = a * x[i];
}
__global__ void k_mul(float* x, const float* y, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) x[i] *= y[i];
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__global__ void k_swiglu_fwd(float* out, const float* g, const float* u, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) out[i] = g[i] * sigmoid(g[i]) * u[i];
}
// d/dg [g s(g)] = s (1 + g (1 - s))
__global__ void k_swiglu_bwd(float* dg, float* du, const float* dout, const float* g, const float* u, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) {
    const float s = sigmoid(g[i]);
    if (dg) dg[i] += dout[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    if (du) du[i] += dout[i] * g[i] * s;
  }
}
__global__ void k_gelu_fwd(float* out, const float* x, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}
__global__ void k_gelu_bwd(float* dx, const float* dout, const float* x, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) {
    const float cdf = 0.5f * (1.0f + erff(x[i] * 0.70710678118654752f));
    dx[i] += dout[i] * (cdf + x[i] * 0.39894228040143268f * expf(-0.5f * x[i] * x[i]));
  }
}

template <typename W>
__device__ __forceinline__ float widen(W w);
template <>
__device__ __forceinline__ float widen<float>(float w) { return w; }
template <>
__device__ __forceinline__ float widen<uint16_t>(uint16_t w) { return bf16_bits_to_f32(w); }

template <typename W>
__global__ void k_embed_fwd(float* out, const int32_t* tokens, const W* table, int64_t N, int C) {
  VLATEXT_GRID_STRIDE(i, N * C) {
    const int64_t n = i / C, c = i % C;
    out[i] = widen(table[(int64_t)tokens[n] * C + c]);
  }
}
__global__ void k_embed_bwd(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int C) {
  VLATEXT_GRID_STRIDE(i, N * C) {
    const int64_t n = i / C, c = i % C;
    atomicAdd(dtable + (int64_t)tokens[n] * C + c, dout[i]);
  }
}
__global__ void k_scatter(float* dst, const int32_t* rows, const float* src, int64_t n, int C) {
  VLATEXT_GRID_STRIDE(i, n * C) dst[(int64_t)rows[i / C] * C + i % C] = src[i];
}
__global__ void k_gather(float* dst, const float* src, const int32_t* rows, int64_t n, int C) {
  VLATEXT_GRID_STRIDE(i, n * C) dst[i] = src[(int64_t)rows[i / C] * C + i % C];
}

// One block per row.
__global__ void k_rmsnorm_fwd(float* out, float* rstd, const float* inp, const float* w, int C, float eps) {
  const int64_t row = blockIdx.x;
  const float* x = inp + row * C;
  double ss = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) ss += (double)x[c] * x[c];
  ss = block_sum(ss);
  const float r = 1.0f / sqrtf((float)(ss / C) + eps);
  if (threadIdx.x == 0 && rstd) rstd[row] = r;
  for (int c = threadIdx.x; c < C; c += blockDim.x) out[row * C + c] = x[c] * r * w[c];
}
// dx_c += r w_c g_c - r^3 x_c / C * sum_j w_j g_j x_j
__global__ void k_rmsnorm_bwd_dinp(float* dinp, const float* dout, const float* inp, const float* w, const float* rstd, int C) {
  const int64_t row = blockIdx.x;
  const float *x = inp + row * C, *g = dout + row * C;
  double dot = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) dot += (double)w[c] * g[c] * x[c];
  dot = block_sum(dot);
  const float r = rstd[row];
  const float k = (float)(dot / C) * r * r * r;
  for (int c = threadIdx.x; c < C; c += blockDim.x) dinp[row * C + c] += r * w[c] * g[c] - k * x[c];
}

// LayerNorm (SigLIP's): one block per row, the statistics in double as in layernorm.cpp.
__global__ void k_layernorm_fwd(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int C, float eps) {
  const int64_t row = blockIdx.x;
  const float* x = inp + row * C;
  double s = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) s += x[c];
  const double m = block_sum(s) / C;
  double v = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) v += (x[c] - m) * (x[c] - m);
  v = block_sum(v);
  const float mf = (float)m, r = (float)(1.0 / sqrt(v / C + (double)eps));
  if (threadIdx.x == 0) mean[row] = mf, rstd[row] = r;
  for (int c = threadIdx.x; c < C; c += blockDim.x) out[row * C + c] = (x[c] - mf) * r * w[c] + (b ? b[c] : 0.0f);
}
// dL/dx_c += r (g_c w_c - mean(g w) - xhat_c mean(g w xhat))
__global__ void k_layernorm_bwd_dinp(float* dinp, const float* dout, const float* inp, const float* w, const float* mean, const float* rstd, int C) {
  const int64_t row = blockIdx.x;
  const float *x = inp + row * C, *g = dout + row * C;
  const float mu = mean[row], r = rstd[row];
  double sg = 0, sgx = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const double gw = (double)g[c] * w[c];
    sg += gw;
    sgx += gw * (((double)x[c] - mu) * r);
  }
  sg = block_sum(sg);
  sgx = block_sum(sgx);
  const float mg = (float)(sg / C), mgx = (float)(sgx / C);
  for (int c = threadIdx.x; c < C; c += blockDim.x) dinp[row * C + c] += r * (g[c] * w[c] - mg - (x[c] - mu) * r * mgx);
}

constexpr int kColRows = 64;  // rows summed per thread before one atomic add

// dw_c += sum_n g[n,c] (x[n,c] - mean[n]) rstd[n], db_c += sum_n g[n,c]
__global__ void k_layernorm_colsum(float* dw, float* db, const float* g, const float* x, const float* mean, const float* rstd, int64_t N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int64_t n0 = (int64_t)blockIdx.y * kColRows, n1 = min(N, n0 + kColRows);
  float sw = 0, sb = 0;
  for (int64_t n = n0; n < n1; n++) {
    sw += g[n * C + c] * (x[n * C + c] - mean[n]) * rstd[n];
    sb += g[n * C + c];
  }
  if (dw) atomicAdd(dw + c, sw);
  if (db) atomicAdd(db + c, sb);
}

// GELU, tanh form (torch's approximate="tanh")
__device__ __forceinline__ float gelu_tanh_t(float x) { return tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)); }
__global__ void k_gelu_tanh_fwd(float* out, const float* x, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) out[i] = 0.5f * x[i] * (1.0f + gelu_tanh_t(x[i]));
}
__global__ void k_gelu_tanh_bwd(float* dx, const float* dout, const float* x, int64_t n) {
  VLATEXT_GRID_STRIDE(i, n) {
    const float v = x[i], t = gelu_tanh_t(v);
    dx[i] += dout[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * v * v));
  }
}

// dw_c += sum_n g[n,c] x[n,c] r[n]  (x, r nullptr: a plain column sum of g)
__global__ void k_colsum(float* dw, const float* g, const float* x, const float* rstd, int64_t N, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int64_t n0 = (int64_t)blockIdx.y * kColRows, n1 = min(N, n0 + kColRows);
  float s = 0;
  for (int64_t n = n0; n < n1; n++) s += x ? g[n * C + c] * x[n * C + c] * rstd[n] : g[n * C + c];
  atomicAdd(dw + c, s);
}
__global__ void k_add_bias(float* out, const float* bias, int64_t N, int C) {
  VLATEXT_GRID_STRIDE(i, N * C) out[i] += bias[i % C];
}

// One thread per (token, frequency index): the angle in double as in rope.cpp, then every head.
__global__ void k_rope(float* x, const int32_t* positions, Rope spec, int64_t N, int H, float sign) {
  const int hd = spec.head_dim, half = hd / 2;
  VLATEXT_GRID_STRIDE(idx, N * half) {
    const int64_t n = idx / half;
    const int i = (int)(idx % half);
    int section = 0, start = 0, end = spec.sections[0];
    while (i >= end && section + 1 < spec.n_sections) {
      start = end;
      end += spec.sections[++section];
    }
    const double pos = positions[(int64_t)section * N + n];
    const double exponent = spec.restart_per_section ? -(double)(i - start) / spec.sections[section] : -2.0 * i / hd;
    const double angle = pos * pow((double)spec.theta, exponent);
    const float c = (float)cos(angle), s = sign * (float)sin(angle);
    for (int h = 0; h < H; h++) {
      float* v = x + (n * H + h) * hd;
      const float a = v[i], b = v[i + half];
      v[i] = a * c - b * s;
      v[i + half] = b * c + a * s;
    }
  }
}

}  // namespace

void convert_to_bf16(cudaStream_t s, uint16_t* dst, const float* src, int64_t n) { k_to_bf16<<<grid_for(n), kThreads, 0, s>>>(dst, src, n); }
void convert_to_f32(cudaStream_t s, float* dst, const uint16_t* src, int64_t n) { k_to_f32<<<grid_for(n), kThreads, 0, s>>>(dst, src, n); }
void axpy(cudaStream_t s, float* y, const float* x, float a, int64_t n) { k_axpy<<<grid_for(n), kThreads, 0, s>>>(y, x, a, n); }
void add(cudaStream_t s, float* out, const float* a, const float* b, int64_t n) { k_add<<<grid_for(n), kThreads, 0, s>>>(out, a, b, n); }
void scale(cudaStream_t s, float* out, const float* x, float a, int64_t n) { k_scale<<<grid_for(n), kThreads, 0, s>>>(out, x, a, n); }
void mul_inplace(cudaStream_t s, float* x, const float* y, int64_t n) { k_mul<<<grid_for(n), kThreads, 0, s>>>(x, y, n); }
void swiglu_forward(cudaStream_t s, float* out, const float* g, const float* u, int64_t n) { k_swiglu_fwd<<<grid_for(n), kThreads, 0, s>>>(out, g, u, n); }
void swiglu_backward(cudaStream_t s, float* dg, float* du, const float* dout, const float* g, const float* u, int64_t n) { k_swiglu_bwd<<<grid_for(n), kThreads, 0, s>>>(dg, du, dout, g, u, n); }
void gelu_forward(cudaStream_t s, float* out, const float* x, int64_t n) { k_gelu_fwd<<<grid_for(n), kThreads, 0, s>>>(out, x, n); }
void gelu_backward(cudaStream_t s, float* dx, const float* dout, const float* x, int64_t n) { k_gelu_bwd<<<grid_for(n), kThreads, 0, s>>>(dx, dout, x, n); }

void embedding_forward(cudaStream_t s, float* out, const int32_t* tokens, ConstTensorRef table, int64_t N, int C) {
  if (table.dtype == DType::BF16) k_embed_fwd<<<grid_for(N * C), kThreads, 0, s>>>(out, tokens, table.bf16(), N, C);
  else k_embed_fwd<<<grid_for(N * C), kThreads, 0, s>>>(out, tokens, table.f32(), N, C);
}
void embedding_backward(cudaStream_t s, float* dtable, const float* dout, const int32_t* tokens, int64_t N, int C) { k_embed_bwd<<<grid_for(N * C), kThreads, 0, s>>>(dtable, dout, tokens, N, C); }
void scatter_rows(cudaStream_t s, float* dst, const int32_t* rows, const float* src, int64_t n, int C) { k_scatter<<<grid_for(n * C), kThreads, 0, s>>>(dst, rows, src, n, C); }
void gather_rows(cudaStream_t s, float* dst, const float* src, const int32_t* rows, int64_t n, int C) { k_gather<<<grid_for(n * C), kThreads, 0, s>>>(dst, src, rows, n, C); }

void rmsnorm_forward(cudaStream_t s, float* out, float* rstd, const float* inp, const float* w, int64_t N, int C, float eps) {
  if (N > 0) k_rmsnorm_fwd<<<(unsigned)N, kThreads, 0, s>>>(out, rstd, inp, w, C, eps);
}
void rmsnorm_backward(cudaStream_t s, float* dinp, float* dweight, const float* dout, const float* inp, const float* w, const float* rstd, int64_t N, int C) {
  if (N <= 0) return;
  if (dinp) k_rmsnorm_bwd_dinp<<<(unsigned)N, kThreads, 0, s>>>(dinp, dout, inp, w, rstd, C);
  if (dweight) k_colsum<<<dim3((unsigned)((C + kThreads - 1) / kThreads), (unsigned)((N + kColRows - 1) / kColRows)), kThreads, 0, s>>>(dweight, dout, inp, rstd, N, C);
}
void layernorm_forward(cudaStream_t s, float* out, float* mean, float* rstd, const float* inp, const float* w, const float* b, int64_t N, int C, float eps) {
  if (N > 0) k_layernorm_fwd<<<(unsigned)N, kThreads, 0, s>>>(out, mean, rstd, inp, w, b, C, eps);
}
void layernorm_backward(cudaStream_t s, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* w, const float* mean, const float* rstd, int64_t N, int C) {
  if (N <= 0) return;
  if (dinp) k_layernorm_bwd_dinp<<<(unsigned)N, kThreads, 0, s>>>(dinp, dout, inp, w, mean, rstd, C);
  if (dweight || dbias)
    k_layernorm_colsum<<<dim3((unsigned)((C + kThreads - 1) / kThreads), (unsigned)((N + kColRows - 1) / kColRows)), kThreads, 0, s>>>(dweight, dbias, dout, inp, mean, rstd, N, C);
}
void gelu_tanh_forward(cudaStream_t s, float* out, const float* x, int64_t n) { k_gelu_tanh_fwd<<<grid_for(n), kThreads, 0, s>>>(out, x, n); }
void gelu_tanh_backward(cudaStream_t s, float* dx, const float* dout, const float* x, int64_t n) { k_gelu_tanh_bwd<<<grid_for(n), kThreads, 0, s>>>(dx, dout, x, n); }
void col_sum(cudaStream_t s, float* dst, const float* x, int64_t N, int C) {
  if (N > 0) k_colsum<<<dim3((unsigned)((C + kThreads - 1) / kThreads), (unsigned)((N + kColRows - 1) / kColRows)), kThreads, 0, s>>>(dst, x, nullptr, nullptr, N, C);
}
void add_bias(cudaStream_t s, float* out, const float* bias, int64_t N, int C) { k_add_bias<<<grid_for(N * C), kThreads, 0, s>>>(out, bias, N, C); }

void rope(cudaStream_t s, float* x, const int32_t* positions, const Rope& spec, int64_t N, int H, float sign) {
  if (N > 0) k_rope<<<grid_for(N * (spec.head_dim / 2)), kThreads, 0, s>>>(x, positions, spec, N, H, sign);
}

}  // namespace cuk
}  // namespace vlatext
