#include "generate.h"

#include <chrono>
#include <cmath>
#include <random>

namespace vlatext {

namespace {
double ms_since(std::chrono::steady_clock::time_point t0) { return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(); }
}  // namespace

Status generate_constrained(Decoder& model, const std::vector<int32_t>& prompt, TokenAutomaton& automaton, const GenOptions& opt, GenResult* out, std::string* error,
                            const std::function<void(int32_t)>& on_token) {
  const auto t_start = std::chrono::steady_clock::now();
  *out = GenResult{};
  if (prompt.empty()) {
    *error = "the prompt is empty";
    return Status::InvalidArgument;
  }
  const int C = model.config().C, V = model.config().V;
  KvCache cache;
  model.init_cache(&cache, (int)prompt.size() + opt.max_tokens + 1);
  std::mt19937_64 rng(opt.seed);
  std::vector<float> hidden((size_t)C), logits((size_t)V);
  std::vector<int32_t> pending = prompt;  // emitted but not yet fed to the model
  GState state = automaton.start();
  while ((int)out->tokens.size() < opt.max_tokens) {
    auto t0 = std::chrono::steady_clock::now();
    const std::vector<int32_t>& allowed = automaton.allowed(state);
    out->mask_ms += ms_since(t0);
    if (allowed.empty()) {
      *error = "the grammar allows no token here (the vocabulary cannot spell the action format)";
      return Status::InvalidArgument;
    }
    int32_t next;
    if (opt.jump_forward && allowed.size() == 1) {
      next = allowed[0];
      out->forced++;
    } else {
      t0 = std::chrono::steady_clock::now();
      const Status st = model.infer_hidden(&cache, pending.data(), (int)pending.size(), nullptr, 0, nullptr, nullptr, hidden.data(), error);
      if (st != Status::Ok) return st;
      out->model_calls++;
      pending.clear();
      out->model_ms += ms_since(t0);
      t0 = std::chrono::steady_clock::now();
      std::vector<float> scores(allowed.size());
      if (opt.sparse_max > 0 && (int)allowed.size() <= opt.sparse_max) {
        model.head_logits(hidden.data(), allowed.data(), (int)allowed.size(), scores.data());
      } else {
        model.head_logits(hidden.data(), nullptr, 0, logits.data());
        for (size_t i = 0; i < allowed.size(); i++) scores[i] = logits[(size_t)allowed[i]];
      }
      out->head_ms += ms_since(t0);
      size_t pick = 0;
      if (opt.temperature <= 0) {
        for (size_t i = 1; i < scores.size(); i++)
          if (scores[i] > scores[pick]) pick = i;
      } else {
        float m = scores[0];
        for (float v : scores) m = std::max(m, v);
        double z = 0;
        for (float& v : scores) z += (v = std::exp((v - m) / opt.temperature));
        double u = std::uniform_real_distribution<double>(0.0, z)(rng);
        pick = scores.size() - 1;
        for (size_t i = 0; i < scores.size(); i++)
          if ((u -= scores[i]) <= 0) {
            pick = i;
            break;
          }
      }
      next = allowed[pick];
      out->sampled++;
    }
    if (next == automaton.eos()) {
      out->finished = true;
      break;
    }
    automaton.advance(&state, next);
    out->tokens.push_back(next);
    if (on_token) on_token(next);
    pending.push_back(next);
  }
  out->total_ms = ms_since(t_start);
  return Status::Ok;
}

}  // namespace vlatext
