#include "matmul.h"

#include <algorithm>
#include <vector>

#include "reduce.h"  // cpu_has_avx2

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define VLATEXT_X86 1
#endif

namespace vlatext {

void matmul_forward_ref(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC) {
  for (int64_t n = 0; n < N; n++) {
    for (int o = 0; o < OC; o++) {
      float s = bias ? bias[o] : 0.0f;
      for (int c = 0; c < C; c++) s += inp[n * C + c] * weight[(int64_t)o * C + c];
      out[n * OC + o] = s;
    }
  }
}

void matmul_backward_ref(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int C, int OC) {
  for (int64_t n = 0; n < N; n++) {
    for (int o = 0; o < OC; o++) {
      const float d = dout[n * OC + o];
      if (dbias) dbias[o] += d;
      for (int c = 0; c < C; c++) {
        if (dinp) dinp[n * C + c] += d * weight[(int64_t)o * C + c];
        if (dweight) dweight[(int64_t)o * C + c] += d * inp[n * C + c];
      }
    }
  }
}

// target_clones compiles an AVX2+FMA and a baseline copy; the loader picks one per CPU.
__attribute__((target_clones("avx2,fma", "default"))) float dot(const float* __restrict a, const float* __restrict b, int n) {
  // 8 independent accumulators let the compiler keep several vector FMAs in flight
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

__attribute__((target_clones("avx2,fma", "default"))) void axpy(float* __restrict y, const float* __restrict x, float alpha, int n) {
  for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

namespace {

constexpr int kTileRows = 4, kTileCols = 3;

// A 4-row x 3-column tile of dot products (portable): out[n0+i, o0+j] += inp[n0+i,:] . weight[o0+j,:]
void tile_portable(float* out, const float* inp, const float* weight, int C, int OC, int64_t n0, int o0) {
  for (int i = 0; i < kTileRows; i++)
    for (int j = 0; j < kTileCols; j++) out[(n0 + i) * OC + o0 + j] += dot(inp + (n0 + i) * C, weight + (int64_t)(o0 + j) * C, C);
}

#ifdef VLATEXT_X86
__attribute__((target("avx2,fma"))) inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The same tile with AVX2+FMA: 12 accumulators, 4 input rows and one weight row in
// registers (16 ymm), each weight vector reused by 4 rows, each input vector by 3 columns.
__attribute__((target("avx2,fma"))) void tile_avx2(float* out, const float* inp, const float* weight, int C, int OC, int64_t n0, int o0) {
  __m256 acc[kTileRows][kTileCols];
  for (int i = 0; i < kTileRows; i++)
    for (int j = 0; j < kTileCols; j++) acc[i][j] = _mm256_setzero_ps();
  const float* a0 = inp + (n0 + 0) * C;
  const float* a1 = inp + (n0 + 1) * C;
  const float* a2 = inp + (n0 + 2) * C;
  const float* a3 = inp + (n0 + 3) * C;
  const float* w[kTileCols] = {weight + (int64_t)(o0 + 0) * C, weight + (int64_t)(o0 + 1) * C, weight + (int64_t)(o0 + 2) * C};
  int c = 0;
  for (; c + 8 <= C; c += 8) {
    const __m256 x0 = _mm256_loadu_ps(a0 + c), x1 = _mm256_loadu_ps(a1 + c), x2 = _mm256_loadu_ps(a2 + c), x3 = _mm256_loadu_ps(a3 + c);
    for (int j = 0; j < kTileCols; j++) {
      const __m256 wv = _mm256_loadu_ps(w[j] + c);
      acc[0][j] = _mm256_fmadd_ps(x0, wv, acc[0][j]);
      acc[1][j] = _mm256_fmadd_ps(x1, wv, acc[1][j]);
      acc[2][j] = _mm256_fmadd_ps(x2, wv, acc[2][j]);
      acc[3][j] = _mm256_fmadd_ps(x3, wv, acc[3][j]);
    }
  }
  const float* a[kTileRows] = {a0, a1, a2, a3};
  for (int i = 0; i < kTileRows; i++)
    for (int j = 0; j < kTileCols; j++) {
      float s = hsum(acc[i][j]);
      for (int cc = c; cc < C; cc++) s += a[i][cc] * w[j][cc];  // tail: the last C % 8 channels
      out[(n0 + i) * OC + o0 + j] += s;
    }
}
#endif

}  // namespace

namespace {

// out (N, OC) (+)= inp (N, C) . weight (OC, C)^T [+ bias]: blocks of 4 rows in parallel,
// 4x3 register tiles inside a block, plain dot products on the ragged edges.
void matmul_tiled(ThreadPool& pool, float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC, bool accumulate) {
#ifdef VLATEXT_X86
  auto tile = cpu_has_avx2() ? tile_avx2 : tile_portable;
#else
  auto tile = tile_portable;
#endif
  const int64_t blocks = (N + kTileRows - 1) / kTileRows;
  pool.parallel_for(blocks, [&](int, int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t n0 = b * kTileRows;
      const int64_t rows = std::min<int64_t>(kTileRows, N - n0);
      if (!accumulate)
        for (int64_t i = 0; i < rows; i++)
          for (int o = 0; o < OC; o++) out[(n0 + i) * OC + o] = bias ? bias[o] : 0.0f;
      int o = 0;
      if (rows == kTileRows)
        for (; o + kTileCols <= OC; o += kTileCols) tile(out, inp, weight, C, OC, n0, o);
      for (int64_t i = 0; i < rows; i++)
        for (int oo = o; oo < OC; oo++) out[(n0 + i) * OC + oo] += dot(inp + (n0 + i) * C, weight + (int64_t)oo * C, C);
    }
  });
}

// dst (cols, rows) = src (rows, cols)^T, in parallel over source columns.
std::vector<float> transpose(ThreadPool& pool, const float* src, int64_t rows, int64_t cols) {
  std::vector<float> dst((size_t)(rows * cols));
  pool.parallel_for(cols, [&](int, int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++)
      for (int64_t r = 0; r < rows; r++) dst[(size_t)(c * rows + r)] = src[r * cols + c];
  });
  return dst;
}

}  // namespace

void matmul_forward(ThreadPool& pool, float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC) {
  matmul_tiled(pool, out, inp, weight, bias, N, C, OC, false);
}

// Both gradients are the forward's tiled product on transposed copies (the reduction
// dimension must be contiguous in both operands):
//   dinp (N, C)     += dout (N, OC)   . (weight^T) (C, OC)^T
//   dweight (OC, C) += (dout^T) (OC, N) . (inp^T) (C, N)^T
void matmul_backward(ThreadPool& pool, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int C, int OC) {
  if (dinp) {
    const std::vector<float> wT = transpose(pool, weight, OC, C);
    matmul_tiled(pool, dinp, dout, wT.data(), nullptr, N, OC, C, true);
  }
  if (dweight || dbias) {
    const std::vector<float> dT = transpose(pool, dout, N, OC);
    if (dweight) {
      const std::vector<float> inT = transpose(pool, inp, N, C);
      matmul_tiled(pool, dweight, dT.data(), inT.data(), nullptr, OC, (int)N, C, true);
    }
    if (dbias)
      pool.parallel_for(OC, [&](int, int64_t o0, int64_t o1) {
        for (int64_t o = o0; o < o1; o++) {
          float s = 0;
          for (int64_t n = 0; n < N; n++) s += dT[(size_t)(o * N + n)];
          dbias[o] += s;
        }
      });
  }
}

}  // namespace vlatext
