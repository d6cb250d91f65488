// Block reduction with warp shuffles: each thread accumulates a grid-strided
// slice in double, warps reduce with __shfl_down_sync, one partial per block
// is written, and the (few) block partials are summed on the host in order.
// Reference: reduce_sum_ref in native/kernels/reduce.cpp.
#include <cuda_runtime.h>

#include <vector>

#include "reduce_cuda.h"

namespace vlatext {

namespace {

constexpr int kThreads = 256;

__global__ void reduce_sum_kernel(double* block_sums, const float* x, int64_t n) {
  __shared__ double warp_sums[kThreads / 32];
  double s = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    s += static_cast<double>(x[i]);
  }
  for (int offset = 16; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < kThreads / 32 ? warp_sums[lane] : 0.0;
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset);
    if (lane == 0) block_sums[blockIdx.x] = s;
  }
}

}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  return n;
}

Status cuda_reduce_sum(const float* host_x, int64_t n, double* out) {
  if (n < 0 || (n > 0 && host_x == nullptr) || out == nullptr) return Status::InvalidArgument;
  if (cuda_device_count() == 0) return Status::NoDevice;
  *out = 0.0;
  if (n == 0) return Status::Ok;
  const int blocks = static_cast<int>(n / kThreads + 1 < 1024 ? n / kThreads + 1 : 1024);
  float* d_x = nullptr;
  double* d_sums = nullptr;
  Status st = Status::Ok;
  if (cudaMalloc(&d_x, static_cast<size_t>(n) * sizeof(float)) != cudaSuccess ||
      cudaMalloc(&d_sums, static_cast<size_t>(blocks) * sizeof(double)) != cudaSuccess) {
    st = Status::OutOfMemory;
  } else if (cudaMemcpy(d_x, host_x, static_cast<size_t>(n) * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess) {
    st = Status::DeviceError;
  } else {
    reduce_sum_kernel<<<blocks, kThreads>>>(d_sums, d_x, n);
    std::vector<double> sums(static_cast<size_t>(blocks));
    if (cudaGetLastError() != cudaSuccess ||
        cudaMemcpy(sums.data(), d_sums, sums.size() * sizeof(double), cudaMemcpyDeviceToHost) != cudaSuccess) {
      st = Status::DeviceError;
    } else {
      double s = 0.0;
      for (double v : sums) s += v;
      *out = s;
    }
  }
  cudaFree(d_x);
  cudaFree(d_sums);
  return st;
}

}  // namespace vlatext
