// The action grammar compiled into a token automaton over a model's real vocabulary.
//
// The character grammar: exactly `count` (= H*D) integers in 0..B, separated by
// `separator` within a timestep and `timestep_separator` between timesteps (every
// `dims` numbers), each optionally zero-padded to `width` digits, then end-of-sequence.
// A grammar state is (num, digits, value, sep) exactly as in src/actions/grammar.ts.
//
// The automaton knows every vocabulary token whose decoded text uses only grammar
// characters (the caller passes their ids and texts); a token is allowed in a state
// when its whole text keeps the text inside the grammar; end-of-sequence is allowed
// once the text may end. Allowed sets are computed on first use and memoized per state.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace vlatext {

struct GrammarSpec {
  int count = 56, dims = 7, bins = 1000, width = 0;  // width 0: plain integers, no leading zeros
  std::string separator = " ", timestep_separator = " ";
};

struct GState {
  int num = 0, digits = 0, value = 0, sep = -1;
};

class TokenAutomaton {
 public:
  TokenAutomaton(const GrammarSpec& spec, std::vector<int32_t> token_ids, std::vector<std::string> token_texts, int32_t eos_id);

  GState start() const { return GState{}; }
  bool accepting(const GState& s) const;
  // Advance by one character / a whole string; false when it leaves the grammar.
  bool step(GState* s, char ch) const;
  bool advance_text(GState* s, const std::string& text) const;
  // Advance by a token id (eos only when accepting); false when not allowed.
  bool advance(GState* s, int32_t token) const;
  // Token ids allowed next (eos included when the text may end). Memoized.
  const std::vector<int32_t>& allowed(const GState& s);
  int32_t eos() const { return eos_; }
  size_t memo_size() const { return memo_.size(); }

 private:
  const std::string& separator_after(int i) const { return (i + 1) % spec_.dims == 0 ? spec_.timestep_separator : spec_.separator; }
  bool number_complete(const GState& s) const;
  uint64_t key(const GState& s) const;

  GrammarSpec spec_;
  std::vector<int32_t> ids_;
  std::vector<std::string> texts_;
  std::unordered_map<int32_t, size_t> index_of_;
  int32_t eos_;
  std::unordered_map<uint64_t, std::vector<int32_t>> memo_;
};

}  // namespace vlatext
