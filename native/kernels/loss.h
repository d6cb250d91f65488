// Fused softmax cross-entropy over the vocabulary, with ignored positions.
//   logits (N, V)   targets (N), a target < 0 (HF's -100) is ignored
// forward:  returns the SUM of -log softmax(logits[n])[targets[n]] over kept rows and
//           writes the count of kept rows; lse (N) is saved for the backward.
// backward: dlogits (N, V) = (softmax - onehot) * dloss for kept rows, 0 for ignored rows.
//           Written (=), not accumulated: logits are not parameters. dloss is usually
//           1 / (kept rows in the batch) for a mean loss.
#pragma once

#include <cstdint>

#include "../core/threadpool.h"

namespace vlatext {

double cross_entropy_forward_ref(float* lse, int64_t* kept, const float* logits, const int32_t* targets, int64_t N, int V);
void cross_entropy_backward_ref(float* dlogits, const float* logits, const float* lse, const int32_t* targets, float dloss, int64_t N, int V);

double cross_entropy_forward(ThreadPool& pool, float* lse, int64_t* kept, const float* logits, const int32_t* targets, int64_t N, int V);
void cross_entropy_backward(ThreadPool& pool, float* dlogits, const float* logits, const float* lse, const int32_t* targets, float dloss, int64_t N, int V);

}  // namespace vlatext
