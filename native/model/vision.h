// Qwen2.5-VL's vision tower: patch embedding (the 3D convolution as a matmul), 2D rotary
// embeddings, RMSNorm blocks with window attention (full attention in the layers the
// config names), SwiGLU MLP with biases, and the 2x2 patch merger (RMSNorm, Linear, GELU,
// Linear) into the language model's width. Forward for inference, or forward saving
// VisionActs and a backward that ACCUMULATES (+=) parameter gradients until zero_grad(),
// with its own AdamW state (the tower is trained together with the language model).
//
// Shapes: N patches (all images), P = 3*T*p*p pixel values per patch, C hidden, F MLP
// width, NH heads (hd = C/NH), Cout the language model's width. Parameters carry HF
// names ("visual.blocks.0.attn.qkv.weight", ...) in one allocation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/status.h"
#include "../core/threadpool.h"
#include "../kernels/adamw.h"
#include "decoder.h"  // TensorInfo

namespace vlatext {

struct VisionConfig {
  int depth = 0, C = 0, F = 0, NH = 0, Cout = 0;
  int patch = 14, merge = 2, temporal = 2, window = 112;
  std::vector<int> fullatt;  // block indexes with full (per-image) attention
  float eps = 1e-6f, theta = 10000.0f;
};

// What a training forward saves for the backward (one call's worth). Per-block tensors
// are stacked over the depth: x (depth + 1, N, C) holds every block's input and the
// final stream; the others (depth, N, ...) as named. Rows are in window order.
struct VisionActs {
  int64_t N = 0;
  std::vector<int32_t> grids, widx, cu_win, cu_full, pos;  // pos (2, N) in window order
  std::vector<float> pixels;                                // (N, P) processor order
  std::vector<float> x, ln1, rstd1, q, k, v, att, lse, xmid, ln2, rstd2, g, u, h;
  std::vector<float> lnq, rstdq, pre, hid;  // merger: ln_q (N, C), rstd (N), mlp.0 out before/after GELU (U, M)
};

class VisionTower {
 public:
  static Status create(const VisionConfig& cfg, int threads, std::unique_ptr<VisionTower>* out, std::string* error);
  const VisionConfig& config() const { return cfg_; }
  const std::vector<TensorInfo>& params() const { return params_; }
  const TensorInfo* find_param(const std::string& name) const;
  float* param_data() { return mem_.data(); }
  int64_t num_params() const { return (int64_t)mem_.size(); }

  // pixels (N, P) in the processor's order; grids (n_img, 3) = (t, h, w) patches;
  // out (N / merge^2, Cout), image by image in the processor's (merge-group) order.
  // acts: nullptr for inference, else filled for backward().
  Status forward(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, std::string* error, VisionActs* acts = nullptr);
  // dout (N / merge^2, Cout) in the output's order; gradients ACCUMULATE into param_grad().
  Status backward(const float* dout, const VisionActs& acts, std::string* error);

  float* param_grad() { return grad_.data(); }
  void zero_grad();
  // Sum of squared gradients (for one global clipping norm with the language model).
  double grad_sq_norm() const;
  // AdamW on every parameter with clipping to max_norm over sqrt(own + extra_sq); zeroes the
  // gradients; returns the global norm.
  double optimizer_step(const AdamWConfig& opt, float max_norm, double extra_sq);
  int optimizer_step_count() const { return t_; }
  const std::vector<float>& optimizer_m() const { return m_; }
  const std::vector<float>& optimizer_v() const { return v_; }
  Status set_optimizer_state(int step, std::vector<float> m, std::vector<float> v, std::string* error);

 private:
  VisionTower(const VisionConfig& cfg, std::unique_ptr<ThreadPool> pool) : cfg_(cfg), pool_(std::move(pool)) {}
  float* p(const std::string& name);
  bool uses_full_attention(int block) const;
  VisionConfig cfg_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<TensorInfo> params_;
  std::vector<float> mem_, grad_, m_, v_;  // parameters, gradients, AdamW moments (all num_params())
  int t_ = 0;
};

// Qwen2.5-VL's window order: merged units regrouped window by window (window_index) and
// the cumulative patch counts of the windows (cu_window_seqlens, empty windows dropped).
void vision_window_index(const int32_t* grids, int n_img, int merge, int window_units, std::vector<int32_t>* window_index, std::vector<int32_t>* cu_window_seqlens);

}  // namespace vlatext
