#include "speculative.h"

#include <chrono>

namespace vlatext {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); }

bool cancelled(const int32_t* flag) { return flag && __atomic_load_n(flag, __ATOMIC_RELAXED) != 0; }

}  // namespace

Status generate_speculative(Decoder& model, const std::vector<int32_t>& prompt, TokenAutomaton& automaton, const SpecOptions& opt, GenResult* out, SpecStats* stats, std::string* error,
                            const std::function<void(int32_t)>& on_token) {
  const auto t_start = std::chrono::steady_clock::now();
  const GenOptions& go = opt.gen;
  *out = GenResult{};
  *stats = SpecStats{};
  if (prompt.empty()) {
    *error = "the prompt is empty";
    return Status::InvalidArgument;
  }
  if (opt.max_draft < 0) {
    *error = "max_draft must be >= 0";
    return Status::InvalidArgument;
  }
  const int C = model.config().C;
  const int S = model.config().rope_sections.empty() ? 1 : (int)model.config().rope_sections.size();
  if (!go.prompt.positions.empty() && go.prompt.positions.size() != (size_t)S * prompt.size()) {
    *error = "positions hold " + std::to_string(go.prompt.positions.size()) + " values, expected sections * prompt length = " + std::to_string((size_t)S * prompt.size());
    return Status::InvalidArgument;
  }
  if (go.prompt.inject.size() != go.prompt.inject_rows.size() * (size_t)C) {
    *error = "inject holds " + std::to_string(go.prompt.inject.size()) + " values for " + std::to_string(go.prompt.inject_rows.size()) + " rows";
    return Status::InvalidArgument;
  }
  // The grammar state before each draft token: the draft is aligned with the output by the
  // structure of the text (integers done, digits of the current one, separator), not by token
  // index, so a number written with fewer or more digits than in the draft does not shift the rest.
  std::vector<GState> before;
  {
    GState ds = automaton.start();
    for (int32_t d : opt.draft) {
      before.push_back(ds);
      if (d == automaton.eos() || !automaton.advance(&ds, d)) break;
    }
  }
  auto align = [&](const GState& s, size_t* at) {
    for (size_t i = 0; i < before.size(); i++)
      if (before[i].num == s.num && before[i].digits == s.digits && before[i].sep == s.sep) return *at = i, true;
    return false;
  };
  KvCache cache;
  Status st = model.init_cache(&cache, (int)prompt.size() + go.max_tokens + opt.max_draft + 2, error);
  if (st != Status::Ok) return st;
  std::vector<int32_t> pending = prompt;
  GState state = automaton.start();
  bool done = false;
  // appends one chosen token (eos ends the sequence)
  auto emit = [&](int32_t tok) {
    if (tok == automaton.eos()) {
      out->finished = true;
      done = true;
      return;
    }
    automaton.advance(&state, tok);
    out->tokens.push_back(tok);
    pending.push_back(tok);
    if (on_token) on_token(tok);
    if ((int)out->tokens.size() >= go.max_tokens) done = true;
  };
  // the greedy choice among the allowed tokens from one hidden state
  auto choose = [&](const float* h, const std::vector<int32_t>& allowed) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<float> scores(allowed.size());
    if (go.sparse_max > 0 && (int)allowed.size() <= go.sparse_max) {
      model.head_logits(h, allowed.data(), (int)allowed.size(), scores.data());
    } else {
      std::vector<float> logits((size_t)model.config().V);
      model.head_logits(h, nullptr, 0, logits.data());
      for (size_t a = 0; a < allowed.size(); a++) scores[a] = logits[(size_t)allowed[a]];
    }
    size_t pick = 0;
    for (size_t i = 1; i < scores.size(); i++)
      if (scores[i] > scores[pick]) pick = i;
    out->head_ms += ms_since(t0);
    out->sampled++;
    return allowed[pick];
  };
  while (!done) {
    if (cancelled(go.cancel)) {
      out->cancelled = true;
      break;
    }
    // jump-forward
    auto t0 = std::chrono::steady_clock::now();
    while (!done) {
      const std::vector<int32_t>& allowed = automaton.allowed(state);
      if (allowed.empty()) {
        *error = "the grammar allows no token here (the vocabulary cannot spell the action format)";
        return Status::InvalidArgument;
      }
      if (!(go.jump_forward && allowed.size() == 1)) break;
      out->forced++;
      emit(allowed[0]);
    }
    out->mask_ms += ms_since(t0);
    if (done) break;
    // the draft: the previous chunk's tokens from this position on, while the grammar allows them
    // (none with the prompt, whose explicit positions and injected rows the draft cannot extend)
    const bool first = cache.length == 0;
    std::vector<int32_t> draft;
    size_t at = 0;
    if (!first && align(state, &at)) {
      GState ds = state;
      while ((int)draft.size() < opt.max_draft && at + draft.size() < opt.draft.size() && (int)(out->tokens.size() + draft.size()) < go.max_tokens) {
        const int32_t d = opt.draft[at + draft.size()];
        if (d == automaton.eos() || !automaton.advance(&ds, d)) break;
        draft.push_back(d);
      }
    }
    const int k = (int)draft.size();
    std::vector<int32_t> tokens = pending;
    tokens.insert(tokens.end(), draft.begin(), draft.end());
    const SeqInput in{&cache, tokens.data(), (int)tokens.size(), first && !go.prompt.positions.empty() ? go.prompt.positions.data() : nullptr, first ? (int)go.prompt.inject_rows.size() : 0,
                      first ? go.prompt.inject_rows.data() : nullptr, first ? go.prompt.inject.data() : nullptr, k + 1,
                      first && !go.prompt.inject_rows.empty() ? (int)(go.prompt.deepstack.size() / (go.prompt.inject_rows.size() * (size_t)C)) : 0,
                      first && !go.prompt.deepstack.empty() ? go.prompt.deepstack.data() : nullptr};
    std::vector<float> hidden((size_t)(k + 1) * C);
    t0 = std::chrono::steady_clock::now();
    st = model.infer_hidden_batch(&in, 1, hidden.data(), error);
    if (st != Status::Ok) return st;
    out->model_ms += ms_since(t0);
    out->model_calls++;
    pending.clear();
    // verify: row j predicts the token after draft[0..j)
    int accepted = 0;
    for (int j = 0; j <= k && !done; j++) {
      const int32_t pick = choose(hidden.data() + (size_t)j * C, automaton.allowed(state));
      if (j < k && pick == draft[(size_t)j]) {
        accepted++;
        emit(pick);
        pending.clear();  // an accepted draft token is already in the cache
        continue;
      }
      emit(pick);  // the correction, or the free token after a fully accepted draft
      break;
    }
    stats->drafted += k;
    stats->accepted += accepted;
    // drop the rejected draft rows from the cache (default positions continue from the last kept row)
    const int rejected = k - accepted;
    cache.length -= rejected;
    cache.next_pos -= rejected;
  }
  out->total_ms = ms_since(t_start);
  return Status::Ok;
}

}  // namespace vlatext
