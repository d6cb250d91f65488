#include "automaton.h"

namespace vlatext {

TokenAutomaton::TokenAutomaton(const GrammarSpec& spec, std::vector<int32_t> token_ids, std::vector<std::string> token_texts, int32_t eos_id)
    : spec_(spec), ids_(std::move(token_ids)), texts_(std::move(token_texts)), eos_(eos_id) {
  for (size_t i = 0; i < ids_.size(); i++) index_of_[ids_[i]] = i;
}

bool TokenAutomaton::number_complete(const GState& s) const {
  if (s.sep >= 0) return false;
  return spec_.width > 0 ? s.digits == spec_.width : s.digits >= 1;
}

bool TokenAutomaton::accepting(const GState& s) const { return s.num == spec_.count - 1 && number_complete(s); }

bool TokenAutomaton::step(GState* s, char ch) const {
  if (s->sep >= 0) {
    const std::string& t = separator_after(s->num - 1);
    if (ch != t[(size_t)s->sep]) return false;
    if (++s->sep == (int)t.size()) *s = GState{s->num, 0, 0, -1};
    return true;
  }
  if (ch >= '0' && ch <= '9') {
    const int d = ch - '0';
    const int64_t value = (int64_t)s->value * 10 + d;
    if (spec_.width > 0) {
      if (s->digits >= spec_.width) return false;
      int64_t smallest = value;  // the smallest completion of this prefix must be <= B
      for (int r = s->digits + 1; r < spec_.width; r++) smallest *= 10;
      if (smallest > spec_.bins) return false;
    } else {
      if (s->digits >= 1 && s->value == 0) return false;  // no leading zeros
      if (value > spec_.bins) return false;
    }
    s->digits++;
    s->value = (int)value;
    return true;
  }
  if (!number_complete(*s) || s->num >= spec_.count - 1) return false;
  const std::string& t = separator_after(s->num);
  if (ch != t[0]) return false;
  *s = t.size() == 1 ? GState{s->num + 1, 0, 0, -1} : GState{s->num + 1, 0, 0, 1};
  return true;
}

bool TokenAutomaton::advance_text(GState* s, const std::string& text) const {
  GState cur = *s;
  for (char ch : text)
    if (!step(&cur, ch)) return false;
  *s = cur;
  return true;
}

bool TokenAutomaton::advance(GState* s, int32_t token) const {
  if (token == eos_) return accepting(*s);
  auto it = index_of_.find(token);
  if (it == index_of_.end()) return false;
  return advance_text(s, texts_[it->second]);
}

uint64_t TokenAutomaton::key(const GState& s) const {
  return (((uint64_t)s.num * 16 + (uint64_t)(s.sep + 1)) * 16 + (uint64_t)s.digits) * 2000003ull + (uint64_t)s.value;
}

const std::vector<int32_t>& TokenAutomaton::allowed(const GState& s) {
  const uint64_t k = key(s);
  auto it = memo_.find(k);
  if (it != memo_.end()) return it->second;
  std::vector<int32_t> out;
  for (size_t i = 0; i < ids_.size(); i++) {
    GState t = s;
    if (advance_text(&t, texts_[i])) out.push_back(ids_[i]);
  }
  if (accepting(s)) out.push_back(eos_);
  return memo_.emplace(k, std::move(out)).first->second;
}

}  // namespace vlatext
