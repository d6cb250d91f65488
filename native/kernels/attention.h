// Causal self-attention with grouped-query heads, computed tile by tile with an
// online softmax (the full T x T score matrix is never stored).
// Shapes: B sequences of T tokens, NH query heads, KV key/value heads (NH % KV == 0),
// hd head size; query head h reads kv head h / (NH / KV).
//   out (B*T, NH, hd)   q (B*T, NH, hd)   k, v (B*T, KV, hd)
//   lse (B, NH, T)      log-sum-exp of each query's scaled scores (saved for the backward)
// Scores are scaled by 1/sqrt(hd). Gradients ACCUMULATE (+=) into dq, dk, dv.
// The backward recomputes probabilities from lse (FlashAttention-2 style).
#pragma once

#include <cstdint>

#include "../core/threadpool.h"

namespace vlatext {

struct AttnShape {
  int B, T, NH, KV, hd;
};

void attention_forward_ref(float* out, float* lse, const float* q, const float* k, const float* v, const AttnShape& s);
void attention_backward_ref(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const AttnShape& s);

void attention_forward(ThreadPool& pool, float* out, float* lse, const float* q, const float* k, const float* v, const AttnShape& s);
void attention_backward(ThreadPool& pool, float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const AttnShape& s);

// Incremental (cached) attention for one sequence: n new query rows at absolute positions
// start .. start+n-1 attend to cached keys/values 0 .. start+i (causal).
//   out (n, NH, hd)   q (n, NH, hd)   k, v (start+n, KV, hd)
void attention_forward_cached(ThreadPool& pool, float* out, const float* q, const float* k, const float* v, int start, int n, int NH, int KV, int hd);

// Non-causal attention within segments (the vision tower's windows and images): rows
// [cu[s], cu[s+1]) attend to each other and to nothing else. No grouped heads here.
//   out, q, k, v (N, NH, hd)   cu_seqlens (n_seg + 1), cu[0] = 0, cu[n_seg] = N
//   lse (N, NH) or nullptr     log-sum-exp of each row's scaled scores (saved for the backward)
// The backward (gradients ACCUMULATE into dq, dk, dv) recomputes probabilities from lse;
// its reference materializes each segment's probability matrix in double.
void attention_segments_ref(float* out, const float* q, const float* k, const float* v, const int32_t* cu_seqlens, int n_seg, int NH, int hd);
void attention_segments(ThreadPool& pool, float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* cu_seqlens, int n_seg, int NH, int hd);
void attention_segments_backward_ref(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v, const int32_t* cu_seqlens, int n_seg, int NH, int hd);
void attention_segments_backward(ThreadPool& pool, float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const int32_t* cu_seqlens, int n_seg, int NH,
                                 int hd);

}  // namespace vlatext
