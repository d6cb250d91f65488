// Constrained generation: one sequence, KV cache, grammar-restricted sampling.
//   jump_forward: when the automaton allows exactly one token, append it without
//                 running the model for that step (it is fed with the next model call).
//   sparse_max:   when at most this many tokens are allowed, compute the LM head only
//                 for those rows (0 = always the full head, then mask).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../core/status.h"
#include "../model/decoder.h"
#include "automaton.h"

namespace vlatext {

// Prompt-only inputs of a multimodal prompt: 3D positions and injected (image) embeddings.
struct PromptInputs {
  std::vector<int32_t> positions;    // (S, n_prompt), empty: default positions
  std::vector<int32_t> inject_rows;  // (M) rows of the prompt
  std::vector<float> inject;         // (M, C)
  std::vector<float> deepstack;      // (K, M, C) DeepStack features (Qwen3-VL), empty: none
};

struct GenOptions {
  float temperature = 0.0f;  // <= 0: greedy
  uint64_t seed = 0;
  bool jump_forward = true;
  int sparse_max = 64;
  int max_tokens = 512;
  PromptInputs prompt;
  // Optional cancellation flag owned by the caller (e.g. an Int32Array on a SharedArrayBuffer
  // that the caller keeps alive for the call): polled with a relaxed atomic load before every
  // step of this sequence; non-zero stops the sequence (its result says cancelled) while the
  // other sequences of the batch go on.
  const int32_t* cancel = nullptr;
};

struct GenResult {
  std::vector<int32_t> tokens;  // generated, without the end token
  bool finished = false;        // ended with end-of-sequence
  bool cancelled = false;       // stopped by its cancel flag (tokens: what was generated until then)
  int model_calls = 0;          // forward passes, prompt included
  int forced = 0;               // tokens appended by jump-forward
  int sampled = 0;
  double mask_ms = 0, model_ms = 0, head_ms = 0, total_ms = 0;
};

// on_token (optional) is called with each token as soon as it is chosen (sampled or forced).
Status generate_constrained(Decoder& model, const std::vector<int32_t>& prompt, TokenAutomaton& automaton, const GenOptions& opt, GenResult* out, std::string* error,
                            const std::function<void(int32_t)>& on_token = nullptr);

// Several sequences decoded together: every step, the sequences that need the model
// share one batched forward pass (Decoder::infer_hidden_batch); forced tokens are taken
// per sequence without the model. results[i] is filled for prompts[i]. on_token gets
// (sequence index, token). A sequence whose cancel flag is set stops at its next step.
Status generate_constrained_batch(Decoder& model, const std::vector<std::vector<int32_t>>& prompts, TokenAutomaton& automaton, const std::vector<GenOptions>& opts, std::vector<GenResult>* results,
                                  std::string* error, const std::function<void(int, int32_t)>& on_token = nullptr);

}  // namespace vlatext
