#include "generate.h"

#include <chrono>
#include <cmath>
#include <random>

namespace vlatext {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); }

// The caller's cancel flag, read with a relaxed atomic load (another thread sets it).
bool cancel_requested(const int32_t* flag) {
  if (!flag) return false;
#if defined(__GNUC__) || defined(__clang__)
  return __atomic_load_n(flag, __ATOMIC_RELAXED) != 0;
#else
  return *static_cast<const volatile int32_t*>(flag) != 0;
#endif
}
}  // namespace

// One sequence is a batch of one.
Status generate_constrained(Decoder& model, const std::vector<int32_t>& prompt, TokenAutomaton& automaton, const GenOptions& opt, GenResult* out, std::string* error,
                            const std::function<void(int32_t)>& on_token) {
  std::vector<GenResult> results;
  std::function<void(int, int32_t)> cb;
  if (on_token) cb = [&on_token](int, int32_t t) { on_token(t); };
  const Status st = generate_constrained_batch(model, {prompt}, automaton, {opt}, &results, error, cb);
  if (st == Status::Ok) *out = std::move(results[0]);
  return st;
}

namespace {

// Pick among allowed tokens from their scores: greedy, or softmax sampling at temperature.
size_t pick_token(std::vector<float>& scores, float temperature, std::mt19937_64& rng) {
  size_t pick = 0;
  if (temperature <= 0) {
    for (size_t i = 1; i < scores.size(); i++)
      if (scores[i] > scores[pick]) pick = i;
    return pick;
  }
  float m = scores[0];
  for (float v : scores) m = std::max(m, v);
  double z = 0;
  for (float& v : scores) z += (v = std::exp((v - m) / temperature));
  double u = std::uniform_real_distribution<double>(0.0, z)(rng);
  for (size_t i = 0; i < scores.size(); i++)
    if ((u -= scores[i]) <= 0) return i;
  return scores.size() - 1;
}

}  // namespace

Status generate_constrained_batch(Decoder& model, const std::vector<std::vector<int32_t>>& prompts, TokenAutomaton& automaton, const std::vector<GenOptions>& opts, std::vector<GenResult>* results,
                                  std::string* error, const std::function<void(int, int32_t)>& on_token) {
  const auto t_start = std::chrono::steady_clock::now();
  const int B = (int)prompts.size();
  if (opts.size() != prompts.size()) {
    *error = "one option set per prompt is needed";
    return Status::InvalidArgument;
  }
  const int C = model.config().C, V = model.config().V;
  struct Seq {
    KvCache cache;
    std::vector<int32_t> pending;
    GState state;
    std::mt19937_64 rng;
    bool done = false;
  };
  std::vector<Seq> seqs((size_t)B);
  results->assign((size_t)B, GenResult{});
  const int S = model.config().rope_sections.empty() ? 1 : (int)model.config().rope_sections.size();
  for (int i = 0; i < B; i++) {
    if (prompts[(size_t)i].empty()) {
      *error = "prompt " + std::to_string(i) + " is empty";
      return Status::InvalidArgument;
    }
    const PromptInputs& pi = opts[(size_t)i].prompt;
    if (!pi.positions.empty() && pi.positions.size() != (size_t)S * prompts[(size_t)i].size()) {
      *error = "prompt " + std::to_string(i) + ": positions hold " + std::to_string(pi.positions.size()) + " values, expected sections * prompt length = " + std::to_string((size_t)S * prompts[(size_t)i].size());
      return Status::InvalidArgument;
    }
    if (pi.inject.size() != pi.inject_rows.size() * (size_t)C) {
      *error = "prompt " + std::to_string(i) + ": inject holds " + std::to_string(pi.inject.size()) + " values for " + std::to_string(pi.inject_rows.size()) + " rows";
      return Status::InvalidArgument;
    }
    const Status cs = model.init_cache(&seqs[(size_t)i].cache, (int)prompts[(size_t)i].size() + opts[(size_t)i].max_tokens + 1, error);
    if (cs != Status::Ok) return cs;
    seqs[(size_t)i].pending = prompts[(size_t)i];
    seqs[(size_t)i].state = automaton.start();
    seqs[(size_t)i].rng.seed(opts[(size_t)i].seed);
  }
  std::vector<float> logits((size_t)V);
  auto emit = [&](int i, int32_t tok) {
    Seq& q = seqs[(size_t)i];
    GenResult& r = (*results)[(size_t)i];
    if (tok == automaton.eos()) {
      r.finished = true;
      q.done = true;
      return;
    }
    automaton.advance(&q.state, tok);
    r.tokens.push_back(tok);
    q.pending.push_back(tok);
    if (on_token) on_token(i, tok);
    if ((int)r.tokens.size() >= opts[(size_t)i].max_tokens) q.done = true;
  };
  for (;;) {
    // jump-forward: take forced tokens without the model until each sequence needs it
    std::vector<int> need;
    for (int i = 0; i < B; i++) {
      Seq& q = seqs[(size_t)i];
      if (!q.done && cancel_requested(opts[(size_t)i].cancel)) {
        q.done = true;
        (*results)[(size_t)i].cancelled = true;
        q.cache = KvCache{};  // its memory goes now, not at the end of the batch
      }
      while (!q.done) {
        auto t0 = std::chrono::steady_clock::now();
        const std::vector<int32_t>& allowed = automaton.allowed(q.state);
        (*results)[(size_t)i].mask_ms += ms_since(t0);
        if (allowed.empty()) {
          *error = "the grammar allows no token here (the vocabulary cannot spell the action format)";
          return Status::InvalidArgument;
        }
        if (!(opts[(size_t)i].jump_forward && allowed.size() == 1)) {
          need.push_back(i);
          break;
        }
        (*results)[(size_t)i].forced++;
        emit(i, allowed[0]);
      }
    }
    if (need.empty()) break;
    // one forward pass for every sequence that needs the model
    std::vector<SeqInput> inputs;
    for (int i : need) {
      Seq& q = seqs[(size_t)i];
      const PromptInputs& pi = opts[(size_t)i].prompt;
      const bool first = q.cache.length == 0;  // the prompt: its positions and injected embeddings
      const int M = first ? (int)pi.inject_rows.size() : 0;
      inputs.push_back(SeqInput{&q.cache, q.pending.data(), (int)q.pending.size(), first && !pi.positions.empty() ? pi.positions.data() : nullptr, M, first ? pi.inject_rows.data() : nullptr,
                                first ? pi.inject.data() : nullptr, 1, M > 0 ? (int)(pi.deepstack.size() / ((size_t)M * C)) : 0, M > 0 && !pi.deepstack.empty() ? pi.deepstack.data() : nullptr});
    }
    std::vector<float> hidden(need.size() * (size_t)C);
    auto t0 = std::chrono::steady_clock::now();
    const Status st = model.infer_hidden_batch(inputs.data(), (int)inputs.size(), hidden.data(), error);
    if (st != Status::Ok) return st;
    const double fwd = ms_since(t0);
    for (size_t j = 0; j < need.size(); j++) {
      const int i = need[j];
      Seq& q = seqs[(size_t)i];
      GenResult& r = (*results)[(size_t)i];
      q.pending.clear();
      r.model_calls++;
      r.model_ms += fwd;
      const std::vector<int32_t>& allowed = automaton.allowed(q.state);
      t0 = std::chrono::steady_clock::now();
      std::vector<float> scores(allowed.size());
      const float* h = hidden.data() + j * (size_t)C;
      if (opts[(size_t)i].sparse_max > 0 && (int)allowed.size() <= opts[(size_t)i].sparse_max) {
        model.head_logits(h, allowed.data(), (int)allowed.size(), scores.data());
      } else {
        model.head_logits(h, nullptr, 0, logits.data());
        for (size_t a = 0; a < allowed.size(); a++) scores[a] = logits[(size_t)allowed[a]];
      }
      r.head_ms += ms_since(t0);
      r.sampled++;
      emit(i, allowed[pick_token(scores, opts[(size_t)i].temperature, q.rng)]);
    }
  }
  const double total = ms_since(t_start);
  for (auto& r : *results) r.total_ms = total;
  return Status::Ok;
}

}  // namespace vlatext
