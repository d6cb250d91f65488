// Internal to the GEMM core (gemm.cpp and one file per instruction-set family): the
// micro-kernel table the driver walks, and the packed layouts the kernels read.
//
// Packed B panel of nr columns, kc_pad deep (the driver packs a kc x nc block as nc / nr panels):
//   f32 kernels:    Bp[k * nr + j]                        f32, B widened when stored as bf16
//   bf16 kernels:   Bp[(k / 2 * nr + j) * 2 + k % 2]      bf16 k-pairs (AMX calls it VNNI), kc_pad even
//                   (AMX: kc_pad a multiple of 32; one tile row = one k-pair of 16 columns)
// Columns past the panel's width and k past kc are zeros.
// A block of m rows (an mc x kc block of A), prepared by prep_a into one of:
//   f32 kernels:    A in place when it is f32 with rows contiguous in k (ars = its row stride,
//                   aks = 1), else packed panels Ap[k * mr + i] (ars = 1, aks = mr)
//   avx512bf16:     bf16 rows Ab[i * lda + k] (pairs are dwords: ars = lda / 2, aks = 1)
//   amx:            per 32 rows and 32 k, a 32 x 32 bf16 block (one 16-row AMX tile per 16 rows)
// A micro-kernel reads A(i, k) (f32) or the pair A(i, 2kp..2kp+1) (bf16, as one dword) at
//   a[i * ars + k * aks]   (units: floats or dwords), rows past mv repeating row 0.
#pragma once

#include <cstdint>

#include "../core/dtype.h"

namespace vlatext {
namespace gemm_detail {

// A prepared block of A: tile t (rows t * mr ..) starts at base + t * tile_stride units.
// Units are 4 bytes everywhere: floats for the f32 kernels, dwords (bf16 pairs) for the others.
struct AView {
  const void* base;
  int64_t ars, aks, tile_stride;
};

// Packs one B panel: S(j, k) = src[j * sj + k * sk] in f32 or bf16, w <= nr valid columns, kc valid k.
using PackBFn = void (*)(void* dst, const void* src, DType dt, int64_t sj, int64_t sk, int64_t w, int64_t kc, int64_t kc_pad);
// Prepares m rows of A, A(i, k) = src[i * sam + k * sak], into buf (or in place).
using PrepAFn = AView (*)(void* buf, const void* src, DType dt, int64_t sam, int64_t sak, int64_t m, int64_t kc, int64_t kc_pad);
// C (mr, nr) (+)= A tile . B panel over kc_pad: C[i * ldc + j]; add: +=, else =.
using MicroFn = void (*)(int64_t kc_pad, const void* a, int64_t ars, int64_t aks, int mv, const void* bp, float* C, int64_t ldc, bool add);

struct Kernel {
  const char* name;
  int mr, nr;      // register tile of C
  int kgran;       // kc_pad is a multiple of this (1 f32, 2 bf16 pairs, 32 AMX)
  int kc, mc, nc;  // cache blocks: kc of the reduction, mc rows of A, nc columns of B
  int elem;        // bytes per packed element (4 or 2)
  bool bf16;       // multiplies bf16-rounded operands
  PackBFn pack_b;
  PrepAFn prep_a;
  int64_t (*a_buf_elems)(int64_t mc_pad, int64_t kc_pad);  // scratch prep_a needs, in elements
  MicroFn micro;
  void (*thread_begin)();  // per thread around its block (AMX: tile config / release); may be null
  void (*thread_end)();
};

const Kernel& kernel_portable();
#if defined(__x86_64__) || defined(_M_X64)
const Kernel& kernel_avx2();
const Kernel& kernel_avx512();
const Kernel& kernel_avx512bf16();
const Kernel& kernel_amx();
#endif

// GEMV columns [j0, j1): C (M, N) (+)= A (M, K) . B, B(k, j) = B[j * sbn + k] (a weight's rows),
// A rows contiguous (A[i * lda + k]), M <= kGemvRows. f32 FMA, bf16 widened exactly. scratch:
// gemv_scratch_floats(M, K) floats, 64-byte aligned, for this call alone.
using GemvFn = void (*)(float* C, int64_t ldc, const float* A, int64_t lda, ConstTensorRef B, int64_t sbn, int64_t M, int64_t K, int64_t j0, int64_t j1, bool accumulate, float* scratch);
inline int64_t gemv_scratch_floats(int64_t M, int64_t K) { return M * ((K + 31) / 32 * 32); }
void gemv_portable(float* C, int64_t ldc, const float* A, int64_t lda, ConstTensorRef B, int64_t sbn, int64_t M, int64_t K, int64_t j0, int64_t j1, bool accumulate, float* scratch);
#if defined(__x86_64__) || defined(_M_X64)
void gemv_avx2(float* C, int64_t ldc, const float* A, int64_t lda, ConstTensorRef B, int64_t sbn, int64_t M, int64_t K, int64_t j0, int64_t j1, bool accumulate, float* scratch);
void gemv_avx512(float* C, int64_t ldc, const float* A, int64_t lda, ConstTensorRef B, int64_t sbn, int64_t M, int64_t K, int64_t j0, int64_t j1, bool accumulate, float* scratch);
#endif

// Generic packers, one copy per translation unit (static): each ISA file compiles them for
// its own target and uses them for the orientations it has no faster loop for.
template <int NR>
static inline void pack_b_f32_generic(float* dst, const void* src, DType dt, int64_t sj, int64_t sk, int64_t w, int64_t kc, int64_t kc_pad) {
  const float* sf = static_cast<const float*>(src);
  const uint16_t* sh = static_cast<const uint16_t*>(src);
  for (int64_t k = 0; k < kc_pad; k++)
    for (int64_t j = 0; j < NR; j++) {
      const int64_t at = j * sj + k * sk;
      dst[k * NR + j] = (j < w && k < kc) ? (dt == DType::F32 ? sf[at] : bf16_to_f32(sh[at])) : 0.0f;
    }
}

// bf16 k-pairs: dst[(k / 2 * W + j) * 2 + k % 2], f32 values rounded (RNE).
template <int W>
static inline void pack_pairs_generic(uint16_t* dst, const void* src, DType dt, int64_t sj, int64_t sk, int64_t w, int64_t kc, int64_t kc_pad) {
  const float* sf = static_cast<const float*>(src);
  const uint16_t* sh = static_cast<const uint16_t*>(src);
  for (int64_t k = 0; k < kc_pad; k++)
    for (int64_t j = 0; j < W; j++) {
      const int64_t at = j * sj + k * sk;
      dst[(k / 2 * W + j) * 2 + k % 2] = (j < w && k < kc) ? (dt == DType::F32 ? f32_to_bf16(sf[at]) : sh[at]) : (uint16_t)0;
    }
}

// f32 panels of A: dst[k * MR + i] (i past m and k past kc zero), widened from bf16.
template <int MR>
static inline void pack_a_f32_generic(float* dst, const void* src, DType dt, int64_t sam, int64_t sak, int64_t m, int64_t kc, int64_t kc_pad) {
  for (int64_t t = 0; t * MR < m; t++) {
    const int64_t rows = m - t * MR < MR ? m - t * MR : MR;
    float* d = dst + t * MR * kc_pad;
    const int64_t base = t * MR * sam;
    if (dt == DType::F32) {
      const float* s = static_cast<const float*>(src) + base;
      for (int64_t k = 0; k < kc; k++)
        for (int64_t i = 0; i < MR; i++) d[k * MR + i] = i < rows ? s[i * sam + k * sak] : 0.0f;
    } else {
      const uint16_t* s = static_cast<const uint16_t*>(src) + base;
      for (int64_t k = 0; k < kc; k++)
        for (int64_t i = 0; i < MR; i++) d[k * MR + i] = i < rows ? bf16_to_f32(s[i * sam + k * sak]) : 0.0f;
    }
    for (int64_t k = kc; k < kc_pad; k++)
      for (int64_t i = 0; i < MR; i++) d[k * MR + i] = 0.0f;
  }
}

// f32 kernels' prep_a: in place when possible, else panels.
template <int MR>
static inline AView prep_a_f32_generic(void* buf, const void* src, DType dt, int64_t sam, int64_t sak, int64_t m, int64_t kc, int64_t kc_pad) {
  if (dt == DType::F32 && sak == 1) return AView{src, sam, 1, MR * sam};
  pack_a_f32_generic<MR>(static_cast<float*>(buf), src, dt, sam, sak, m, kc, kc_pad);
  return AView{buf, 1, MR, MR * kc_pad};
}

// bf16 rows of A: dst[i * lda + k] (lda >= kc_pad, even), rows m .. m_pad and k past kc zero.
static inline void pack_a_bf16_rows_generic(uint16_t* dst, int64_t lda, const void* src, DType dt, int64_t sam, int64_t sak, int64_t m, int64_t m_pad, int64_t kc, int64_t kc_pad) {
  for (int64_t i = 0; i < m_pad; i++)
    for (int64_t k = 0; k < kc_pad; k++) {
      const int64_t at = i * sam + k * sak;
      dst[i * lda + k] = (i < m && k < kc) ? (dt == DType::F32 ? f32_to_bf16(static_cast<const float*>(src)[at]) : static_cast<const uint16_t*>(src)[at]) : (uint16_t)0;
    }
}

}  // namespace gemm_detail
}  // namespace vlatext
