// The CUDA kernels behind the CUDA backend (native/cuda/cuda_backend.cu), as host launchers
// on a stream. Semantics, shapes and argument order are those of the CPU kernels named beside
// each (native/kernels/*.h); they are the references these are checked against
// (native/tests/test_cuda.cpp, on a GPU). Gradients ACCUMULATE (+=), nullptr skips one.
// Every pointer is device memory unless its name starts with host_.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../core/dtype.h"

namespace vlatext {

struct AttnShape;
struct AdamWConfig;

namespace cuk {

// ---- elementwise.cu (native/kernels/elementwise.h, norm.h, rope.h)
void convert_to_bf16(cudaStream_t s, uint16_t* dst, const float* src, int64_t n);
void convert_to_f32(cudaStream_t s, float* dst, const uint16_t* src, int64_t n);
void axpy(cudaStream_t s, float* y, const float* x, float alpha, int64_t n);
void add(cudaStream_t s, float* out, const float* a, const float* b, int64_t n);
void scale(cudaStream_t s, float* out, const float* x, float alpha, int64_t n);
void mul_inplace(cudaStream_t s, float* x, const float* y, int64_t n);
void swiglu_forward(cudaStream_t s, float* out, const float* gate, const float* up, int64_t n);
void swiglu_backward(cudaStream_t s, float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n);
void gelu_forward(cudaStream_t s, float* out, const float* x, int64_t n);
void gelu_backward(cudaStream_t s, float* dx, const float* dout, const float* x, int64_t n);
// out (N, C) = table[tokens[n]]; dtable (V, C) += (atomics: repeated tokens add up)
void embedding_forward(cudaStream_t s, float* out, const int32_t* tokens, ConstTensorRef table, int64_t N, int C);
void embedding_backward(cudaStream_t s, float* dtable, const float* dout, const int32_t* tokens, int64_t N, int C);
void scatter_rows(cudaStream_t s, float* dst, const int32_t* rows, const float* src, int64_t n, int C);
void gather_rows(cudaStream_t s, float* dst, const float* src, const int32_t* rows, int64_t n, int C);
void rmsnorm_forward(cudaStream_t s, float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps);
void rmsnorm_backward(cudaStream_t s, float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int64_t N, int C);
// dst (C) += sum over the N rows of x (N, C)  (a bias gradient)
void layernorm_forward(cudaStream_t s, float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t N, int C, float eps);
void layernorm_backward(cudaStream_t s, float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t N, int C);
void gelu_tanh_forward(cudaStream_t s, float* out, const float* x, int64_t n);
void gelu_tanh_backward(cudaStream_t s, float* dx, const float* dout, const float* x, int64_t n);
void col_sum(cudaStream_t s, float* dst, const float* x, int64_t N, int C);
// out (N, C) += bias (C) on every row
void add_bias(cudaStream_t s, float* out, const float* bias, int64_t N, int C);

// RoPE's spec by value (the host's sections array copied in).
struct Rope {
  int head_dim;
  float theta;
  int n_sections;
  int sections[8];
  bool restart_per_section;
};
// sign +1: forward; -1: backward (rotation by the opposite angle). x (N, H, hd), positions (S, N)
void rope(cudaStream_t s, float* x, const int32_t* positions, const Rope& spec, int64_t N, int H, float sign);

// ---- optim.cu (native/kernels/adamw.h)
void adamw(cudaStream_t s, float* params, float* m, float* v, const float* grads, int64_t n, const AdamWConfig& cfg, int t, float grad_scale);
// block_sums (blocks) = partial sums of x^2 in double; blocks from sq_norm_blocks(n)
int sq_norm_blocks(int64_t n);
void sq_norm_partial(cudaStream_t s, double* block_sums, const float* x, int64_t n);

// ---- attention.cu (native/kernels/attention.h): flash-style, scores never stored
void attention_forward(cudaStream_t s, float* out, float* lse, const float* q, const float* k, const float* v, const AttnShape& shape);
// scratch_d (B*T*NH): the rowwise dot(dout, out) of the backward
void attention_backward(cudaStream_t s, float* dq, float* dk, float* dv, float* scratch_d, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const AttnShape& shape);
// Decoding's few rows split the keys across blocks (flash-decoding): part, scratch of
// cached_split_floats(start, n, NH, hd) floats (nullptr: no split), holds the partial states.
void attention_forward_cached(cudaStream_t s, float* out, float* part, const float* q, const float* k, const float* v, int start, int n, int NH, int KV, int hd);
// Keys per split and splits for n new rows after `start` cached ones: no split (1) past
// kSplitMaxRows rows (they fill the GPU without), else runs of kSplitKeys keys, at most kMaxSplits.
constexpr int kSplitKeys = 16, kMaxSplits = 128, kSplitMaxRows = 16;
struct CachedSplit {
  int split, splits;
};
inline CachedSplit cached_split(int start, int n) {
  const int keys = start + n;
  if (n > kSplitMaxRows || keys <= kSplitKeys) return {keys, 1};
  int split = kSplitKeys;
  while ((keys + split - 1) / split > kMaxSplits) split *= 2;
  return {split, (keys + split - 1) / split};
}
inline int64_t cached_split_floats(int start, int n, int NH, int hd) {
  const CachedSplit cs = cached_split(start, n);
  return cs.splits <= 1 ? 0 : (int64_t)cs.splits * n * NH * (hd + 2);
}
// cu (n_seg + 1) and seg_of_row (N) on the device; lse (N, NH) or nullptr
void attention_segments(cudaStream_t s, float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* cu, const int32_t* seg_of_row, int N, int NH, int hd);
void attention_segments_backward(cudaStream_t s, float* dq, float* dk, float* dv, float* scratch_d, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v,
                                 const int32_t* cu, const int32_t* seg_of_row, int N, int NH, int hd);
// Largest head size the attention kernels take (lanes hold hd / 32 elements each).
constexpr int kMaxHeadDim = 256;

// ---- gemm.cu: our own products (the reference for cuBLASLt on the GPU, and the decode path)
// C[m, n] = alpha * sum_k A[m, k] B[k, n] + beta * C[m, n] (beta 0: C is not read), with
// C[m, n] at c + m * c_sm + n * c_sn, A[m, k] at a + m * a_sm + k * a_sk, B[k, n] at
// b + k * b_sk + n * b_sn: any transposition of any operand. A f32 or bf16 (a weight), B f32.
void gemm_builtin(cudaStream_t s, float* c, int64_t c_sm, int64_t c_sn, ConstTensorRef a, int64_t a_sm, int64_t a_sk, const float* b, int64_t b_sk, int64_t b_sn, int64_t M, int64_t N, int64_t K, float alpha, float beta);
// The decode path: out (Nrows, OC) (+)= inp (Nrows, C) . W^T for Nrows <= kGemvMaxRows, one
// warp per output feature reading W's row with 16-byte loads. accumulate: += instead of =.
constexpr int kGemvMaxRows = 8;
void gemv_rows(cudaStream_t s, float* out, const float* inp, ConstTensorRef w, int Nrows, int C, int OC, bool accumulate);
// out (n) = dot(inp (C), W[rows[i]]), rows on the device
void matmul_rows(cudaStream_t s, float* out, const float* inp, ConstTensorRef w, const int32_t* rows, int n, int C);

// ---- head.cu (native/kernels/head.h): the pieces of the chunked LM-head cross-entropy
// Over one chunk of vocabulary rows [v0, v0 + Vc) with its logits (K, Vc): the running
// (max, sum of exp) per row updated online; the target's logit picked when it falls in the chunk.
void head_chunk_stats(cudaStream_t s, float* run_max, float* run_sum, float* target_logit, const float* logits, const int32_t* targets, int64_t K, int Vc, int v0);
// lse (K) = max + log(sum) for kept rows (0 for ignored); loss_parts (K) = lse - target logit (0 ignored)
void head_finish(cudaStream_t s, float* lse, double* loss_parts, const float* run_max, const float* run_sum, const float* target_logit, const int32_t* targets, int64_t K);
// logits (K, Vc) := loss_scale * (softmax - onehot) of the chunk, from lse (0 on ignored rows)
void head_chunk_grad(cudaStream_t s, float* logits, const float* lse, const int32_t* targets, float loss_scale, int64_t K, int Vc, int v0);
// run_max (K) = -inf, run_sum (K) = 0, target_logit (K) = 0: the state before the first chunk
void head_init(cudaStream_t s, float* run_max, float* run_sum, float* target_logit, int64_t K);
// out[0] (device double) = sum of loss_parts (K) in order, out_kept[0] (device) = targets >= 0 (one block)
void head_total(cudaStream_t s, double* out_sum, long long* out_kept, const double* loss_parts, const int32_t* targets, int64_t K);

}  // namespace cuk
}  // namespace vlatext
