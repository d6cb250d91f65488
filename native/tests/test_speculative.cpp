// Speculative constrained decoding (native/decode/speculative.h) against plain greedy decoding
// (generate_constrained) on a tiny random model with a digits-and-space vocabulary: whatever the
// draft (the true continuation, another prompt's chunk, digits changed, numbers lengthened, junk,
// none), the output must be plain greedy decoding's, token for token, and a good draft must save
// model calls. Prints PASS/FAIL lines (test/decode/speculative.test.ts); exits 1 on any FAIL.
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../decode/speculative.h"

using namespace vlatext;

namespace {

int failures = 0;

void report(bool ok, const std::string& name, const std::string& detail) {
  std::printf("%s %s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  if (!ok) failures++;
}

std::string show(const std::vector<int32_t>& t) {
  std::string s;
  for (int32_t x : t) s += x == 10 ? " " : std::to_string(x);
  return s;
}

}  // namespace

int main() {
  DecoderConfig c;
  c.arch = Arch::Qwen2;
  c.V = 40, c.C = 32, c.L = 2, c.NH = 4, c.KV = 2, c.hd = 8, c.F = 64;
  std::unique_ptr<Decoder> m;
  std::string err;
  if (Decoder::create(c, BackendOptions{}, &m, &err) != Status::Ok) return report(false, "create", err), 1;
  std::mt19937 rng(3);
  ParamStore& st = m->params();
  for (size_t i = 0; i < st.tensors().size(); i++) {
    const ParamTensor& t = st.tensors()[i];
    const bool norm = t.name.find("norm") != std::string::npos;
    std::normal_distribution<float> d(norm ? 1.0f : 0.0f, norm ? 0.1f : 0.3f);
    std::vector<float> v((size_t)t.size);
    for (auto& x : v) x = d(rng);
    st.set((int)i, v.data());
  }
  // tokens 0..9 are the digits, 10 a space, 11 the end; 14 integers in 0..255
  std::vector<int32_t> ids;
  std::vector<std::string> texts;
  for (int d = 0; d < 10; d++) ids.push_back(d), texts.push_back(std::string(1, (char)('0' + d)));
  ids.push_back(10), texts.push_back(" ");
  GrammarSpec gs;
  gs.count = 14, gs.dims = 7, gs.bins = 255;
  auto plain = [&](const std::vector<int32_t>& prompt, bool jump, GenResult* r) {
    TokenAutomaton a(gs, ids, texts, 11);
    GenOptions go;
    go.jump_forward = jump;
    return generate_constrained(*m, prompt, a, go, r, &err) == Status::Ok;
  };
  auto spec = [&](const std::vector<int32_t>& prompt, const std::vector<int32_t>& draft, int max_draft, bool jump, GenResult* r, SpecStats* s) {
    TokenAutomaton a(gs, ids, texts, 11);
    SpecOptions so;
    so.gen.jump_forward = jump;
    so.draft = draft;
    so.max_draft = max_draft;
    return generate_speculative(*m, prompt, a, so, r, s, &err) == Status::Ok;
  };
  std::vector<std::vector<int32_t>> prompts = {{12, 30, 7, 21, 5}, {12, 30, 7, 21, 6}, {33, 2, 19}, {1}};
  for (size_t p = 0; p < prompts.size(); p++) {
    for (bool jump : {true, false}) {
      GenResult want, other;
      if (!plain(prompts[p], jump, &want) || !plain(prompts[(p + 1) % prompts.size()], jump, &other)) return report(false, "plain", err), 1;
      // drafts: the true continuation, another prompt's chunk, digits changed, a number lengthened, junk, none
      std::vector<int32_t> changed = want.tokens, longer = want.tokens, junk(40, 39);
      for (size_t i = 0; i < changed.size(); i += 5)
        if (changed[i] < 10) changed[i] = (changed[i] + 3) % 10;
      // a one-digit number made two-digit (still in range): the rest of the draft shifts by a token
      for (size_t i = 0; i + 1 < longer.size(); i++)
        if (longer[i] < 10 && longer[i + 1] == 10 && (i == 0 || longer[i - 1] == 10)) {
          longer.insert(longer.begin() + (long)i, 1);
          break;
        }
      const std::vector<std::pair<std::string, std::vector<int32_t>>> drafts = {{"exact", want.tokens}, {"other prompt's chunk", other.tokens}, {"digits changed", changed},
                                                                                 {"a number lengthened", longer}, {"junk", junk}, {"none", {}}};
      for (const auto& [name, draft] : drafts) {
        for (int max_draft : {4, 16}) {
          GenResult got;
          SpecStats s;
          if (!spec(prompts[p], draft, max_draft, jump, &got, &s)) return report(false, "speculative", err), 1;
          const std::string label = "speculative = greedy: prompt " + std::to_string(p) + (jump ? " jump" : " plain") + ", draft " + name + ", max_draft " + std::to_string(max_draft);
          report(got.tokens == want.tokens && got.finished == want.finished, label,
                 "calls " + std::to_string(got.model_calls) + " vs " + std::to_string(want.model_calls) + ", accepted " + std::to_string(s.accepted) + "/" + std::to_string(s.drafted) +
                     (got.tokens == want.tokens ? "" : " got '" + show(got.tokens) + "' want '" + show(want.tokens) + "'"));
          if (name == "exact")
            report(s.accepted == s.drafted && got.model_calls * 2 <= want.model_calls, "an exact draft is all accepted and at least halves the model calls (" + label + ")",
                   std::to_string(got.model_calls) + " vs " + std::to_string(want.model_calls) + " calls");
          if (name == "none" || name == "junk") report(s.drafted == 0 && got.model_calls == want.model_calls, "no usable draft: plain decoding's calls (" + label + ")", std::to_string(got.model_calls));
        }
      }
    }
  }
  // bad input
  {
    TokenAutomaton a(gs, ids, texts, 11);
    SpecOptions so;
    GenResult r;
    SpecStats s;
    report(generate_speculative(*m, {}, a, so, &r, &s, &err) == Status::InvalidArgument && err.find("empty") != std::string::npos, "an empty prompt is refused", err);
    so.max_draft = -1;
    report(generate_speculative(*m, {1}, a, so, &r, &s, &err) == Status::InvalidArgument && err.find("max_draft") != std::string::npos, "a negative max_draft is refused", err);
  }
  std::printf("%d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
