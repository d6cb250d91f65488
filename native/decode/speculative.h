// Greedy constrained generation with a draft: a robot's consecutive action chunks overlap, so
// the previous chunk's tokens are a good guess for the next chunk's. Each model call runs the
// pending tokens plus the draft's next k tokens (those the grammar allows from the current
// state; the draft is aligned with the output by the grammar's structure: integers done, digits
// of the current one, so a number with another digit count does not shift the rest) in one pass and takes the hidden states of
// the last k + 1 rows: draft tokens are accepted while they equal the greedy choice at their
// row, the first mismatch is replaced by the greedy choice, and when all k match the row after
// them gives one more token for free. Rejected rows are dropped from the KV cache. The output is
// greedy decoding's (up to floating-point ties: a k-row pass sums products in another order than
// a one-row pass); the number of model calls falls with every accepted draft token.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "generate.h"

namespace vlatext {

struct SpecOptions {
  GenOptions gen;              // temperature is ignored (greedy); jump_forward, sparse_max, max_tokens, prompt, cancel as in GenOptions
  // the previous chunk's tokens (empty: plain greedy decoding); a caller that knows the chunks
  // advance by one timestep can shift it by one timestep first
  std::vector<int32_t> draft;
  int max_draft = 16;          // draft tokens verified per model call at most
};

struct SpecStats {
  int drafted = 0;   // draft tokens verified
  int accepted = 0;  // of which the model agreed with
};

// on_token (optional) gets each token as soon as it is final (accepted, corrected or forced).
Status generate_speculative(Decoder& model, const std::vector<int32_t>& prompt, TokenAutomaton& automaton, const SpecOptions& opt, GenResult* out, SpecStats* stats, std::string* error,
                            const std::function<void(int32_t)>& on_token = nullptr);

}  // namespace vlatext
