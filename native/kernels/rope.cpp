#include "rope.h"

#include <cmath>
#include <vector>

namespace vlatext {

namespace {

// The frequency of each rotated pair i < head_dim / 2 and the section whose positions it reads:
// they do not depend on the token, so they are computed once per call, not once per token.
struct RopeTable {
  std::vector<double> freq;
  std::vector<int> section;
};

RopeTable rope_table(const RopeSpec& spec) {
  const int hd = spec.head_dim, half = hd / 2;
  RopeTable t{std::vector<double>((size_t)half), std::vector<int>((size_t)half)};
  int section = 0, section_start = 0, section_end = spec.sections[0];
  for (int i = 0; i < half; i++) {
    while (i >= section_end && section + 1 < spec.n_sections) {
      section_start = section_end;
      section_end += spec.sections[++section];
    }
    const double exponent = spec.restart_per_section ? -(double)(i - section_start) / spec.sections[section] : -2.0 * i / hd;
    t.freq[(size_t)i] = std::pow((double)spec.theta, exponent);
    t.section[(size_t)i] = section;
  }
  return t;
}

// sign = +1 forward, -1 backward (rotation by -angle = transpose)
void rope_token(float* x, const int32_t* positions, const RopeSpec& spec, const RopeTable& table, int64_t N, int64_t n, int H, float sign) {
  const int hd = spec.head_dim, half = hd / 2;
  for (int i = 0; i < half; i++) {
    const double pos = positions[(int64_t)table.section[(size_t)i] * N + n];
    const double angle = pos * table.freq[(size_t)i];
    const float c = (float)std::cos(angle), s = sign * (float)std::sin(angle);
    for (int h = 0; h < H; h++) {
      float* v = x + (n * H + h) * hd;
      const float a = v[i], b = v[i + half];
      v[i] = a * c - b * s;
      v[i + half] = b * c + a * s;
    }
  }
}

}  // namespace

void rope_forward_ref(float* x, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) {
  const RopeTable t = rope_table(spec);
  for (int64_t n = 0; n < N; n++) rope_token(x, positions, spec, t, N, n, H, 1.0f);
}
void rope_backward_ref(float* dx, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) {
  const RopeTable t = rope_table(spec);
  for (int64_t n = 0; n < N; n++) rope_token(dx, positions, spec, t, N, n, H, -1.0f);
}
void rope_forward(ThreadPool& pool, float* x, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) {
  const RopeTable t = rope_table(spec);
  pool.parallel_for(N, [&](int, int64_t a, int64_t b) {
    for (int64_t n = a; n < b; n++) rope_token(x, positions, spec, t, N, n, H, 1.0f);
  }, 0, grain_for((int64_t)H * spec.head_dim * 4));
}
void rope_backward(ThreadPool& pool, float* dx, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) {
  const RopeTable t = rope_table(spec);
  pool.parallel_for(N, [&](int, int64_t a, int64_t b) {
    for (int64_t n = a; n < b; n++) rope_token(dx, positions, spec, t, N, n, H, -1.0f);
  }, 0, grain_for((int64_t)H * spec.head_dim * 4));
}

}  // namespace vlatext
