#include "matmul.h"

#include <algorithm>

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

// A 4-row x 4-column tile of dot products: each weight row is read once per 4 input rows.
__attribute__((target_clones("avx2,fma", "default"))) void tile4x4(float* out, const float* inp, const float* weight, int C, int OC, int64_t n0, int o0) {
  float acc[4][4][8] = {};
  const float* a[4] = {inp + (n0 + 0) * C, inp + (n0 + 1) * C, inp + (n0 + 2) * C, inp + (n0 + 3) * C};
  const float* w[4] = {weight + (int64_t)(o0 + 0) * C, weight + (int64_t)(o0 + 1) * C, weight + (int64_t)(o0 + 2) * C, weight + (int64_t)(o0 + 3) * C};
  int c = 0;
  for (; c + 8 <= C; c += 8)
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++)
        for (int k = 0; k < 8; k++) acc[i][j][k] += a[i][c + k] * w[j][c + k];
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 4; j++) {
      float s = 0;
      for (int k = 0; k < 8; k++) s += acc[i][j][k];
      for (int cc = c; cc < C; cc++) s += a[i][cc] * w[j][cc];
      out[(n0 + i) * OC + o0 + j] += s;
    }
  }
}

}  // namespace

void matmul_forward(ThreadPool& pool, float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC) {
  // parallel over blocks of 4 rows; within a block, 4x4 tiles then the ragged edges
  const int64_t blocks = (N + 3) / 4;
  pool.parallel_for(blocks, [&](int, int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t n0 = b * 4;
      const int64_t rows = std::min<int64_t>(4, N - n0);
      for (int64_t i = 0; i < rows; i++)
        for (int o = 0; o < OC; o++) out[(n0 + i) * OC + o] = bias ? bias[o] : 0.0f;
      int o = 0;
      if (rows == 4)
        for (; o + 4 <= OC; o += 4) tile4x4(out, inp, weight, C, OC, n0, o);
      for (int64_t i = 0; i < rows; i++)
        for (int oo = o; oo < OC; oo++) out[(n0 + i) * OC + oo] += dot(inp + (n0 + i) * C, weight + (int64_t)oo * C, C);
    }
  });
}

void matmul_backward(ThreadPool& pool, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int C, int OC) {
  if (dinp) {
    // rows of dinp are independent: dinp[n,:] += sum_o dout[n,o] * weight[o,:]
    pool.parallel_for(N, [&](int, int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; n++)
        for (int o = 0; o < OC; o++) {
          const float d = dout[n * OC + o];
          if (d != 0.0f) axpy(dinp + n * C, weight + (int64_t)o * C, d, C);
        }
    });
  }
  if (dweight || dbias) {
    // rows of dweight are independent: dweight[o,:] += sum_n dout[n,o] * inp[n,:]
    pool.parallel_for(OC, [&](int, int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++) {
        float db = 0;
        for (int64_t n = 0; n < N; n++) {
          const float d = dout[n * OC + o];
          db += d;
          if (dweight && d != 0.0f) axpy(dweight + o * C, inp + n * C, d, C);
        }
        if (dbias) dbias[o] += db;
      }
    });
  }
}

}  // namespace vlatext
