// Qwen2.5-VL's vision tower, forward only (frozen): patch embedding (the 3D convolution
// as a matmul), 2D rotary embeddings, RMSNorm blocks with window attention (full
// attention in the layers the config names), SwiGLU MLP with biases, and the 2x2 patch
// merger (RMSNorm, Linear, GELU, Linear) into the language model's width.
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
#include "decoder.h"  // TensorInfo

namespace vlatext {

struct VisionConfig {
  int depth = 0, C = 0, F = 0, NH = 0, Cout = 0;
  int patch = 14, merge = 2, temporal = 2, window = 112;
  std::vector<int> fullatt;  // block indexes with full (per-image) attention
  float eps = 1e-6f, theta = 10000.0f;
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
  Status forward(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, std::string* error);

 private:
  VisionTower(const VisionConfig& cfg, std::unique_ptr<ThreadPool> pool) : cfg_(cfg), pool_(std::move(pool)) {}
  float* p(const std::string& name);
  VisionConfig cfg_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<TensorInfo> params_;
  std::vector<float> mem_;
};

// Qwen2.5-VL's window order: merged units regrouped window by window (window_index) and
// the cumulative patch counts of the windows (cu_window_seqlens, empty windows dropped).
void vision_window_index(const int32_t* grids, int n_img, int merge, int window_units, std::vector<int32_t>* window_index, std::vector<int32_t>* cu_window_seqlens);

}  // namespace vlatext
