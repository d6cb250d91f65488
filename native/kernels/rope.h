// Rotary position embedding with Hugging Face's half rotation: within each head of
// size hd, element i pairs with i + hd/2 (i < hd/2) and rotates by angle
//   pos * theta^(-2i/hd).
// Multi-section RoPE (Qwen2.5-VL's M-RoPE): frequency indices are split into
// sections (e.g. {16, 24, 24} for hd = 128: temporal, height, width); section s uses
// position row s. Standard RoPE is one section of hd/2 with one position row.
//   x         (N, H, hd)   rotated in place (N tokens, H heads)
//   positions (S, N)       one row of positions per section
//   sections  (S)          sum = hd / 2
// The backward rotates the gradient by the opposite angle, in place.
#pragma once

#include <cstdint>

#include "../core/threadpool.h"

namespace vlatext {

struct RopeSpec {
  int head_dim;
  float theta;
  int n_sections;       // S
  const int* sections;  // (S)
  // false (text, M-RoPE): frequency i is theta^(-2i/hd) over all sections.
  // true (Qwen2.5-VL's vision tower, sections {hd/4, hd/4} for rows h, w): frequencies
  // restart in each section, j-th of a section of size n being theta^(-j/n).
  bool restart_per_section = false;
};

void rope_forward_ref(float* x, const int32_t* positions, const RopeSpec& spec, int64_t N, int H);
void rope_backward_ref(float* dx, const int32_t* positions, const RopeSpec& spec, int64_t N, int H);

void rope_forward(ThreadPool& pool, float* x, const int32_t* positions, const RopeSpec& spec, int64_t N, int H);
void rope_backward(ThreadPool& pool, float* dx, const int32_t* positions, const RopeSpec& spec, int64_t N, int H);

}  // namespace vlatext
