#include "rope.h"

#include <cmath>
#include <vector>

namespace vlatext {

namespace {

// sign = +1 forward, -1 backward (rotation by -angle = transpose)
void rope_token(float* x, const int32_t* positions, const RopeSpec& spec, int64_t N, int64_t n, int H, float sign) {
  const int hd = spec.head_dim, half = hd / 2;
  int section = 0, section_start = 0, section_end = spec.sections[0];
  for (int i = 0; i < half; i++) {
    while (i >= section_end && section + 1 < spec.n_sections) {
      section_start = section_end;
      section_end += spec.sections[++section];
    }
    const double pos = positions[(int64_t)section * N + n];
    const double exponent = spec.restart_per_section ? -(double)(i - section_start) / spec.sections[section] : -2.0 * i / hd;
    const double angle = pos * std::pow((double)spec.theta, exponent);
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
  for (int64_t n = 0; n < N; n++) rope_token(x, positions, spec, N, n, H, 1.0f);
}
void rope_backward_ref(float* dx, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) {
  for (int64_t n = 0; n < N; n++) rope_token(dx, positions, spec, N, n, H, -1.0f);
}
void rope_forward(ThreadPool& pool, float* x, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) {
  pool.parallel_for(N, [&](int, int64_t a, int64_t b) {
    for (int64_t n = a; n < b; n++) rope_token(x, positions, spec, N, n, H, 1.0f);
  }, 0, grain_for((int64_t)H * spec.head_dim * 4));
}
void rope_backward(ThreadPool& pool, float* dx, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) {
  pool.parallel_for(N, [&](int, int64_t a, int64_t b) {
    for (int64_t n = a; n < b; n++) rope_token(dx, positions, spec, N, n, H, -1.0f);
  }, 0, grain_for((int64_t)H * spec.head_dim * 4));
}

}  // namespace vlatext
