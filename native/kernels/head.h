// The language-model head with its softmax cross-entropy, chunked over the vocabulary so
// that a 152k-token head never holds (rows x vocab) logits.
//   hidden (K, C)   head (V, C), f32 or bf16   targets (K), a target < 0 is ignored
//   logits = hidden . head^T (K, V)
// head_forward:  returns sum over kept rows of lse_k - logits[k, t_k] (kept counted in *kept),
//                writes lse (K) (0 for ignored rows) for head_backward;
//   dhidden (K, C), optional: += loss_scale * d(loss)/d(hidden) = loss_scale * (softmax_k . head - head[t_k]),
//                in the same pass: the softmax-weighted sum of head rows is accumulated online
//                (running max and sum per row, rescaled when the max grows, as FlashAttention
//                accumulates P.V), so a frozen head costs one forward and one backward product;
//   logits (K, V), optional: every logit written out (then the vocabulary is one chunk).
// head_backward: dhead (V, C) += loss_scale * sum_k (softmax_k - onehot_k)^T hidden_k (an f32,
//                trained head), and dhidden as above when not nullptr; the softmax comes from the
//                forward's logits when given, else is recomputed chunk by chunk from lse.
// Gradients ACCUMULATE (+=). The references materialize the logits and sum in double.
#pragma once

#include <cstdint>

#include <vector>

#include "../core/cpu.h"
#include "../core/dtype.h"
#include "../core/threadpool.h"

namespace vlatext {

double head_forward_ref(int64_t* kept, float* lse, float* dhidden, const float* hidden, const int32_t* targets, ConstTensorRef head, float loss_scale, int64_t K, int C, int V);
void head_backward_ref(float* dhead, const float* hidden, const int32_t* targets, const float* lse, const float* head, float loss_scale, int64_t K, int C, int V);

// Vocabulary rows per chunk (the chunk's logits are K x kHeadChunk floats).
constexpr int kHeadChunk = 4096;

// The heads' working memory (a chunk's logits and weights, the fused dhidden accumulator),
// kept by a caller that runs the head every step so that it is allocated once; without one
// each call allocates its own.
struct HeadScratch {
  std::vector<float> buf, acc;
};

double head_forward(ThreadPool& pool, Isa isa, int64_t* kept, float* lse, float* dhidden, float* logits, const float* hidden, const int32_t* targets, ConstTensorRef head, float loss_scale, int64_t K, int C,
                    int V, int chunk = kHeadChunk, HeadScratch* scratch = nullptr);
void head_backward(ThreadPool& pool, Isa isa, float* dhead, float* dhidden, const float* hidden, const int32_t* targets, const float* lse, const float* logits, const float* head, float loss_scale, int64_t K,
                   int C, int V, int chunk = kHeadChunk, HeadScratch* scratch = nullptr);

}  // namespace vlatext
