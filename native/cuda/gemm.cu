// Our own matrix products on the GPU (the large ones go through cuBLASLt, native/cuda/cublaslt.h):
//  - gemm_builtin: a plain shared-memory tiled GEMM over arbitrary strides, f32 accumulation;
//    the on-GPU reference cuBLASLt is checked against, and the fallback when told to use no cuBLASLt.
//  - gemv_rows: the decode path (a few rows against a large weight), bound by reading the weight
//    once: one warp per output feature streams the weight's row with 16-byte loads (8 bf16 or 4 f32
//    per lane per step) against every input row at once, then reduces across the warp.
// References: native/kernels/matmul.cpp (matmul_forward / matmul_backward), f32 accumulation.
#include "common.cuh"
#include "kernels.h"

namespace vlatext {
namespace cuk {

namespace {

constexpr int kTile = 64, kTileK = 16;

__device__ __forceinline__ float widen_w(float w) { return w; }
__device__ __forceinline__ float widen_w(uint16_t w) { return bf16_bits_to_f32(w); }

// 256 threads, each computing a 4 x 4 block of the 64 x 64 tile of C.
template <typename TA>
__global__ void __launch_bounds__(256) k_gemm(float* c, int64_t c_sm, int64_t c_sn, const TA* a, int64_t a_sm, int64_t a_sk, const float* b, int64_t b_sk, int64_t b_sn, int64_t M, int64_t N, int64_t K, float alpha, float beta) {
  __shared__ float As[kTileK][kTile + 1];  // [k][m]
  __shared__ float Bs[kTileK][kTile + 1];  // [k][n]
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = (int64_t)blockIdx.y * kTile, n0 = (int64_t)blockIdx.x * kTile;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kTileK) {
    for (int i = threadIdx.x; i < kTileK * kTile; i += blockDim.x) {
      const int kk = i / kTile, mm = i % kTile;
      const int64_t m = m0 + mm, k = k0 + kk, n = n0 + mm;
      As[kk][mm] = m < M && k < K ? widen_w(a[m * a_sm + k * a_sk]) : 0.0f;
      Bs[kk][mm] = n < N && k < K ? b[k * b_sk + n * b_sn] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; kk++) {
      float ar[4], br[4];
#pragma unroll
      for (int i = 0; i < 4; i++) ar[i] = As[kk][ty + 16 * i], br[i] = Bs[kk][tx + 16 * i];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] += ar[i] * br[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int64_t m = m0 + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int64_t n = n0 + tx + 16 * j;
      if (n >= N) continue;
      float* p = c + m * c_sm + n * c_sn;
      *p = alpha * acc[i][j] + (beta != 0.0f ? beta * *p : 0.0f);
    }
  }
}

// 8 weights at a time as one 16-byte load: bf16 (one uint4) or f32 (two float4).
__device__ __forceinline__ void load8(float (&w)[8], const uint16_t* p) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const uint32_t parts[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; i++) w[2 * i] = __uint_as_float(parts[i] << 16), w[2 * i + 1] = __uint_as_float(parts[i] & 0xffff0000u);
}
__device__ __forceinline__ void load8(float (&w)[8], const float* p) {
  const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
}

constexpr int kGemvWarps = 8;

// out (NR, OC) (+)= inp (NR, C) . W^T, or with rows: out (OC = n) = inp (1, C) . W[rows]^T.
// vec: C % 8 == 0 and W 16-byte aligned (checked by the launcher), else scalar loads.
template <int NR, typename TW>
__global__ void __launch_bounds__(32 * kGemvWarps) k_gemv(float* out, const float* __restrict__ inp, const TW* __restrict__ w, const int32_t* rows, int C, int OC, bool accumulate, bool vec) {
  const int lane = threadIdx.x % 32;
  const int o = blockIdx.x * kGemvWarps + threadIdx.x / 32;
  if (o >= OC) return;
  const TW* wr = w + (int64_t)(rows ? rows[o] : o) * C;
  float acc[NR] = {};
  if (vec) {
    for (int c = lane * 8; c < C; c += 32 * 8) {
      float wv[8];
      load8(wv, wr + c);
#pragma unroll
      for (int r = 0; r < NR; r++) {
        const float4 x0 = __ldg(reinterpret_cast<const float4*>(inp + (int64_t)r * C + c)), x1 = __ldg(reinterpret_cast<const float4*>(inp + (int64_t)r * C + c + 4));
        acc[r] += wv[0] * x0.x + wv[1] * x0.y + wv[2] * x0.z + wv[3] * x0.w + wv[4] * x1.x + wv[5] * x1.y + wv[6] * x1.z + wv[7] * x1.w;
      }
    }
  } else {
    for (int c = lane; c < C; c += 32) {
      const float wv = widen_w(wr[c]);
#pragma unroll
      for (int r = 0; r < NR; r++) acc[r] += wv * inp[(int64_t)r * C + c];
    }
  }
#pragma unroll
  for (int r = 0; r < NR; r++) {
    const float s = warp_sum(acc[r]);
    if (lane == 0) {
      float* p = out + (int64_t)r * OC + o;
      *p = accumulate ? *p + s : s;
    }
  }
}

template <typename TW>
void gemv_launch(cudaStream_t s, float* out, const float* inp, const TW* w, const int32_t* rows, int NR, int C, int OC, bool accumulate) {
  const bool vec = C % 8 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0 && reinterpret_cast<uintptr_t>(inp) % 16 == 0;
  const unsigned grid = (unsigned)((OC + kGemvWarps - 1) / kGemvWarps);
  switch (NR) {
#define CASE(R) \
  case R: k_gemv<R, TW><<<grid, 32 * kGemvWarps, 0, s>>>(out, inp, w, rows, C, OC, accumulate, vec); break;
    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6) CASE(7) CASE(8)
#undef CASE
    default: break;
  }
}

}  // namespace

void gemm_builtin(cudaStream_t s, float* c, int64_t c_sm, int64_t c_sn, ConstTensorRef a, int64_t a_sm, int64_t a_sk, const float* b, int64_t b_sk, int64_t b_sn, int64_t M, int64_t N, int64_t K, float alpha, float beta) {
  if (M <= 0 || N <= 0) return;
  const dim3 grid((unsigned)((N + kTile - 1) / kTile), (unsigned)((M + kTile - 1) / kTile));
  if (a.dtype == DType::BF16) k_gemm<<<grid, 256, 0, s>>>(c, c_sm, c_sn, a.bf16(), a_sm, a_sk, b, b_sk, b_sn, M, N, K, alpha, beta);
  else k_gemm<<<grid, 256, 0, s>>>(c, c_sm, c_sn, a.f32(), a_sm, a_sk, b, b_sk, b_sn, M, N, K, alpha, beta);
}

void gemv_rows(cudaStream_t s, float* out, const float* inp, ConstTensorRef w, int Nrows, int C, int OC, bool accumulate) {
  if (Nrows < 1 || Nrows > kGemvMaxRows || OC <= 0) return;
  if (w.dtype == DType::BF16) gemv_launch(s, out, inp, w.bf16(), nullptr, Nrows, C, OC, accumulate);
  else gemv_launch(s, out, inp, w.f32(), nullptr, Nrows, C, OC, accumulate);
}

void matmul_rows(cudaStream_t s, float* out, const float* inp, ConstTensorRef w, const int32_t* rows, int n, int C) {
  if (n <= 0) return;
  if (w.dtype == DType::BF16) gemv_launch(s, out, inp, w.bf16(), rows, 1, C, n, false);
  else gemv_launch(s, out, inp, w.f32(), rows, 1, C, n, false);
}

}  // namespace cuk
}  // namespace vlatext
