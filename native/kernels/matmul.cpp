#include "matmul.h"

#include <algorithm>
#include <vector>

#include "reduce.h"  // cpu_has_avx2
#include "vec.h"

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
__attribute__((target_clones("avx2,fma", "default"))) float dot(const float* __restrict a, const float* __restrict b, int n) { return dot_inline(a, b, n); }

__attribute__((target_clones("avx2,fma", "default"))) void axpy(float* __restrict y, const float* __restrict x, float alpha, int n) { axpy_inline(y, x, alpha, n); }

namespace {

// One product for all three passes: out (M, Nc) (+)= A (M, K) . B (K, Nc), where A and B
// are read through strides, so no operand is ever transposed in memory:
//   A(i, k) = A[i * sai + k * sak]     B(k, j) = B[k * sbk + j * sbj]
// A 4 x 16 register tile (8 AVX2 accumulators) walks K over a column panel of B (kNR
// columns, K rows ldb apart), broadcasting one A value per row: no horizontal sums, so
// short reductions (C = 64) cost no more per FLOP than long ones. B is read in place when
// its rows are short, contiguous and whole panels (the backward passes of a small model),
// else packed once per call into contiguous K x kNR panels (the forward pass reads W^T).
constexpr int kMR = 4, kNR = 16;
// Cache blocks: kNB columns and kKC of the reduction (a kKC x kNB block of B, 256 KB, stays in
// L2 while a thread's rows sweep it; one kKC x kNR panel, 16 KB, stays in L1 for a tile).
constexpr int kNB = 256, kKC = 256;
// Longest row (floats) of a B that is read in place rather than packed.
constexpr int64_t kInPlaceRow = 256;
// From this row length on the forward uses matmul_dots: its horizontal sums are amortized and
// it packs nothing (bench_kernels, C = 384 and 1024).
constexpr int kLongC = 256;

// Bp[(jb * K + k) * kNR + jj] = B(k, jb * kNR + jj), 0 past Nc.
std::vector<float> pack_b(ThreadPool& pool, const float* B, int64_t sbk, int64_t sbj, int64_t K, int64_t Nc) {
  const int64_t panels = (Nc + kNR - 1) / kNR;
  std::vector<float> Bp((size_t)(panels * K * kNR), 0.0f);
  pool.parallel_for(panels, [&](int, int64_t p0, int64_t p1) {
    for (int64_t jb = p0; jb < p1; jb++) {
      const int64_t cols = std::min<int64_t>(kNR, Nc - jb * kNR);
      float* dst = Bp.data() + jb * K * kNR;
      // column by column: with sbk == 1 (B = W^T) each column is a contiguous row of W
      for (int64_t jj = 0; jj < cols; jj++) {
        const float* src = B + (jb * kNR + jj) * sbj;
        for (int64_t k = 0; k < K; k++) dst[k * kNR + jj] = src[k * sbk];
      }
    }
  }, 0, grain_for(K * kNR));
  return Bp;
}

// c (kMR, kNR) = sum_k a[i][k * sak] * Bp[k * ldb + j]   (portable: the compiler vectorizes the j loop)
void tile_portable(float* c, const float* const* a, int64_t sak, const float* Bp, int64_t ldb, int64_t K) {
  float acc[kMR][kNR] = {};
  for (int64_t k = 0; k < K; k++)
    for (int i = 0; i < kMR; i++) {
      const float x = a[i][k * sak];
      for (int j = 0; j < kNR; j++) acc[i][j] += x * Bp[k * ldb + j];
    }
  for (int i = 0; i < kMR; i++)
    for (int j = 0; j < kNR; j++) c[i * kNR + j] = acc[i][j];
}

#ifdef VLATEXT_X86
// The same tile with AVX2+FMA: 8 accumulators, 2 B vectors and 1 broadcast A value in registers.
__attribute__((target("avx2,fma"))) void tile_avx2(float* c, const float* const* a, int64_t sak, const float* Bp, int64_t ldb, int64_t K) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
  for (int64_t k = 0; k < K; k++) {
    const __m256 b0 = _mm256_loadu_ps(Bp + k * ldb), b1 = _mm256_loadu_ps(Bp + k * ldb + 8);
    __m256 x = _mm256_broadcast_ss(a0 + k * sak);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a1 + k * sak);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a2 + k * sak);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a3 + k * sak);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
  }
  _mm256_storeu_ps(c + 0 * kNR, c00);
  _mm256_storeu_ps(c + 0 * kNR + 8, c01);
  _mm256_storeu_ps(c + 1 * kNR, c10);
  _mm256_storeu_ps(c + 1 * kNR + 8, c11);
  _mm256_storeu_ps(c + 2 * kNR, c20);
  _mm256_storeu_ps(c + 2 * kNR + 8, c21);
  _mm256_storeu_ps(c + 3 * kNR, c30);
  _mm256_storeu_ps(c + 3 * kNR + 8, c31);
}
#endif

constexpr int kTileRows = 4, kTileCols = 3;

// A 4-row x 3-column tile of dot products (portable): out[n0+i, o0+j] += inp[n0+i,:] . weight[o0+j,:]
void dots_tile_portable(float* out, const float* inp, const float* weight, int C, int OC, int64_t n0, int o0) {
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
__attribute__((target("avx2,fma"))) void dots_tile_avx2(float* out, const float* inp, const float* weight, int C, int OC, int64_t n0, int o0) {
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

// The forward for long rows (C >= kLongC): out (N, OC) = bias + inp . W^T as dot products of
// contiguous rows, nothing packed. Blocks of 4 rows in parallel, 4x3 register tiles inside a
// block (each weight vector reused by 4 rows, each input vector by 3 columns), plain dot
// products on the ragged edges. At short rows the tiles' horizontal sums dominate.
void matmul_dots(ThreadPool& pool, float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC) {
#ifdef VLATEXT_X86
  auto tile = cpu_has_avx2() ? dots_tile_avx2 : dots_tile_portable;
#else
  auto tile = dots_tile_portable;
#endif
  const int64_t blocks = (N + kTileRows - 1) / kTileRows;
  pool.parallel_for(blocks, [&](int, int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t n0 = b * kTileRows;
      const int64_t rows = std::min<int64_t>(kTileRows, N - n0);
      for (int64_t i = 0; i < rows; i++)
        for (int o = 0; o < OC; o++) out[(n0 + i) * OC + o] = bias ? bias[o] : 0.0f;
      int o = 0;
      if (rows == kTileRows)
        for (; o + kTileCols <= OC; o += kTileCols) tile(out, inp, weight, C, OC, n0, o);
      for (int64_t i = 0; i < rows; i++)
        for (int oo = o; oo < OC; oo++) out[(n0 + i) * OC + oo] += dot(inp + (n0 + i) * C, weight + (int64_t)oo * C, C);
    }
  }, 0, grain_for((int64_t)kTileRows * C * OC));
}

// out(i, j) += sum_k A(i, k) B(k, j) for i < M, j < Nc, where out(i, j) = out[i * soi + j * soj].
// In parallel over blocks of kMR rows; each thread sweeps its rows over one kNB-column
// block of panels at a time (those panels stay in cache).
void gemm_acc(ThreadPool& pool, float* out, int64_t soi, int64_t soj, const float* A, int64_t sai, int64_t sak, const float* B, int64_t sbk, int64_t sbj, int64_t M, int64_t K, int64_t Nc) {
  if (M <= 0 || Nc <= 0 || K <= 0) return;
#ifdef VLATEXT_X86
  auto tile = cpu_has_avx2() ? tile_avx2 : tile_portable;
#else
  auto tile = tile_portable;
#endif
  // in place only for short rows: a tile walks B down its rows, and with rows kilobytes apart
  // every k would land on a new page
  const bool in_place = sbj == 1 && Nc % kNR == 0 && sbk <= kInPlaceRow;
  const std::vector<float> Bp = in_place ? std::vector<float>() : pack_b(pool, B, sbk, sbj, K, Nc);
  const int64_t ldb = in_place ? sbk : kNR;
  auto panel = [&](int64_t jb) { return in_place ? B + jb * kNR : Bp.data() + jb * K * kNR; };
  const int64_t row_blocks = (M + kMR - 1) / kMR;
  pool.parallel_for(row_blocks, [&](int, int64_t r0, int64_t r1) {
    float c[kMR * kNR];
    // cache blocks: kNB columns x kKC of the reduction, swept by all of this thread's rows
    for (int64_t j0 = 0; j0 < Nc; j0 += kNB)
      for (int64_t k0 = 0; k0 < K; k0 += kKC) {
        const int64_t kc = std::min<int64_t>(kKC, K - k0);
        for (int64_t rb = r0; rb < r1; rb++) {
          const int64_t i0 = rb * kMR;
          const int rows = (int)std::min<int64_t>(kMR, M - i0);
          // a short last block repeats its first row (computed, not stored)
          const float* a[kMR];
          for (int i = 0; i < kMR; i++) a[i] = A + (i0 + (i < rows ? i : 0)) * sai + k0 * sak;
          for (int64_t jb = j0 / kNR; jb * kNR < std::min(Nc, j0 + kNB); jb++) {
            tile(c, a, sak, panel(jb) + k0 * ldb, ldb, kc);
            const int cols = (int)std::min<int64_t>(kNR, Nc - jb * kNR);
            for (int i = 0; i < rows; i++)
              for (int j = 0; j < cols; j++) out[(i0 + i) * soi + (jb * kNR + j) * soj] += c[i * kNR + j];
          }
        }
      }
  }, 0, grain_for(kMR * K * Nc));
}

}  // namespace

// out (N, OC) = bias + inp (N, C) . W^T. Long rows: dot products (matmul_dots). Short rows:
// gemm_acc, which packs one operand (the other is read in place), in whichever orientation
// packs less:
//   out      = inp . W^T     A = inp (rows contiguous), B(c, o) = W[o * C + c] packed: C x OC
//   out^T    = W . inp^T     A = W, B(c, n) = inp[n * C + c] packed: C x N (few rows: an image's patches)
void matmul_forward(ThreadPool& pool, float* out, const float* inp, const float* weight, const float* bias, int64_t N, int C, int OC) {
  if (C >= kLongC) return matmul_dots(pool, out, inp, weight, bias, N, C, OC);
  pool.parallel_for(N, [&](int, int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; n++)
      for (int o = 0; o < OC; o++) out[n * OC + o] = bias ? bias[o] : 0.0f;
  }, 0, grain_for(OC));
  if (N >= OC) gemm_acc(pool, out, OC, 1, inp, C, 1, weight, 1, C, N, C, OC);
  else gemm_acc(pool, out, 1, OC, weight, C, 1, inp, 1, C, OC, C, N);
}

//   dinp (N, C)     += dout (N, OC) . W (OC, C)          A = dout, B = W
//   dweight (OC, C) += dout^T (OC, N) . inp (N, C)       A = dout^T (copied), B = inp
void matmul_backward(ThreadPool& pool, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, int64_t N, int C, int OC) {
  if (dinp) gemm_acc(pool, dinp, C, 1, dout, OC, 1, weight, C, 1, N, OC, C);
  if (dweight) {
    // A = dout^T, copied so that its rows (the reduction over N) are contiguous: read in place
    // with stride OC, every k of a large layer would touch a new page
    std::vector<float> dT((size_t)(N * OC));
    pool.parallel_for(OC, [&](int, int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++)
        for (int64_t n = 0; n < N; n++) dT[(size_t)(o * N + n)] = dout[n * OC + o];
    }, 0, grain_for(N));
    gemm_acc(pool, dweight, C, 1, dT.data(), N, 1, inp, C, 1, OC, N, C);
  }
  if (dbias)
    pool.parallel_for(OC, [&](int, int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; o++) {
        float s = 0;
        for (int64_t n = 0; n < N; n++) s += dout[n * OC + o];
        dbias[o] += s;
      }
    }, 0, grain_for(N));
}

// Weights in either storage type. For now a bf16 weight is widened to f32 and multiplied
// by the f32 kernels above (exact widening, f32 products): the reference behaviour of the
// Portable/Avx2/Avx512 levels.
namespace {
std::vector<float> widen(ThreadPool& pool, const uint16_t* w, int64_t n) {
  std::vector<float> out((size_t)n);
  pool.parallel_for(n, [&](int, int64_t a, int64_t b) {
    for (int64_t i = a; i < b; i++) out[(size_t)i] = bf16_to_f32(w[i]);
  }, 0, grain_for(1));
  return out;
}
}  // namespace

void matmul_forward(ThreadPool& pool, Isa isa, float* out, const float* inp, ConstTensorRef weight, const float* bias, int64_t N, int C, int OC) {
  (void)isa;
  if (weight.dtype == DType::F32) return matmul_forward(pool, out, inp, weight.f32(), bias, N, C, OC);
  const std::vector<float> w = widen(pool, weight.bf16(), (int64_t)OC * C);
  matmul_forward(pool, out, inp, w.data(), bias, N, C, OC);
}

void matmul_backward(ThreadPool& pool, Isa isa, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, ConstTensorRef weight, int64_t N, int C, int OC) {
  (void)isa;
  if (weight.dtype == DType::F32) return matmul_backward(pool, dinp, dweight, dbias, dout, inp, weight.f32(), N, C, OC);
  const std::vector<float> w = widen(pool, weight.bf16(), (int64_t)OC * C);
  matmul_backward(pool, dinp, nullptr, dbias, dout, inp, w.data(), N, C, OC);  // a bf16 weight is frozen
}

float dot_bf16(const float* a, const uint16_t* b, int n) {
  float s = 0;
  for (int i = 0; i < n; i++) s += a[i] * bf16_to_f32(b[i]);
  return s;
}

}  // namespace vlatext
