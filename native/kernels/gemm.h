// The GEMM core behind the linear layer (matmul.h): one product on strided views,
//   C (M, N) (+)= A (M, K) . B (K, N)
//   A(i, k) = A[i * sam + k * sak]      f32 (activations, or dout^T)
//   B(k, j) = B[k * sbk + j * sbn]      f32 or bf16 (a weight, its transpose, or activations)
//   C(i, j) = C[i * ldc + j]            f32, row-major
// so the three forms of a linear layer (out = inp . W^T, dinp = dout . W, dW = dout^T . inp)
// are strides, never transposed copies in the caller. accumulate: C += A . B, else C = A . B.
//
// BLIS-style: A and B are packed into cache-sized panels (B: a kc x nc block, A: an mc x kc
// block), and a register-blocked micro-kernel computes an mr x nr tile of C from one A panel
// (kc x mr) and one B panel (kc x nr). Work is split over threads as a grid of C blocks (the
// larger of M and N split first), each thread packing its own panels: no shared buffers, no
// barriers inside a call, and C blocks that start on whole tiles (no false sharing).
//
// Paths (chosen at run time from effective_isa(isa) and B's dtype), and their numerics:
//   portable    4 x 16 tile, plain C++                         f32 products, f32 accumulation
//   avx2        6 x 16 tile, AVX2 + FMA                        f32 FMA
//   avx512      6 x 64 tile, AVX-512F                          f32 FMA
//   avx512bf16  6 x 64 tile, vdpbf16ps (k in pairs)            bf16 x bf16 products, f32 sums
//   amx         32 x 32 tile (2 x 2 AMX tiles), tdpbf16ps      bf16 x bf16 products, f32 sums
//   gemv        M <= kGemvRows and B(k, j) contiguous in k (a weight's rows: decode):
//               the weight streamed once, bf16 widened in registers, f32 activations, f32 FMA
// f32 B runs the f32 paths at every level (avx512 at Avx512 and above). bf16 B runs
// avx512bf16 at Avx512Bf16, amx at Amx (avx512bf16 when M or N is below one AMX tile), and
// below that the f32 paths with B widened exactly while packing. On the bf16 paths every f32
// operand is rounded to bf16 (RNE, as f32_to_bf16) while packing. Those hardware instructions
// treat bf16 denormals (|x| < 1.2e-38) as zero.
#pragma once

#include <cstdint>

#include "../core/cpu.h"
#include "../core/dtype.h"
#include "../core/threadpool.h"

namespace vlatext {

// Up to this many rows of A (decoded tokens), a product whose B is a weight read along its
// rows runs as a GEMV: memory-bound, the weight streamed once with 64-byte loads.
constexpr int64_t kGemvRows = 8;

// C (M, N) (+)= A (M, K) . B (K, N) on the strided views above. M, N, K >= 0 (an empty
// reduction, K = 0, leaves C, or zeroes it when !accumulate).
void gemm(ThreadPool& pool, Isa isa, float* C, int64_t ldc, const float* A, int64_t sam, int64_t sak, ConstTensorRef B, int64_t sbk, int64_t sbn, int64_t M, int64_t N, int64_t K, bool accumulate);

// The scalar oracle: the same product with products and sums in double, rounded once to f32.
// round_a_bf16: A's values rounded to bf16 first (what the bf16 paths multiply).
void gemm_ref(float* C, int64_t ldc, const float* A, int64_t sam, int64_t sak, ConstTensorRef B, int64_t sbk, int64_t sbn, int64_t M, int64_t N, int64_t K, bool accumulate, bool round_a_bf16);

// The path gemm takes for these arguments ("portable", "avx2", "avx512", "avx512bf16", "amx",
// "gemv-portable", "gemv-avx2", "gemv-avx512"), for tests and benchmarks.
const char* gemm_path(Isa isa, DType b_dtype, int64_t M, int64_t N, int64_t K, int64_t sbk, int64_t sbn);
// True when that path multiplies bf16-rounded activations.
bool gemm_path_rounds_to_bf16(Isa isa, DType b_dtype, int64_t M, int64_t N, int64_t K, int64_t sbk, int64_t sbn);

}  // namespace vlatext
