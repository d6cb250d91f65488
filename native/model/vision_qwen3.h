// Qwen3-VL's vision tower (transformers' Qwen3VLVisionModel): patch embedding (the 3D
// convolution with bias, as a matmul), learned absolute position embeddings bilinearly
// resampled (align_corners) from their side x side table to each image's grid, 2D rotary
// embeddings (as Qwen2.5-VL's), pre-LayerNorm blocks with full attention per image frame
// (fused qkv with bias) and a gelu_tanh MLP, the 2x2 patch merger (LayerNorm, Linear, GELU,
// Linear), and DeepStack: after each block the config names, a merger of its own (LayerNorm
// after the 2x2 shuffle) whose output the language model adds to its early layers.
//
// Shapes: N patches (all images, the processor's merge-group order), P = 3*T*p*p, C hidden,
// F MLP width, NH heads (hd = C/NH), U = N / merge^2 output rows, Cout the language model's
// width, K DeepStack mergers. Output: (1 + K) blocks of (U, Cout): the merger's, then each
// DeepStack merger's. Parameters carry HF names without "model." ("visual.blocks.0.attn.qkv.weight").
// Inference only: set_trainable(true) is refused (fine-tuning keeps the tower frozen).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "../core/status.h"
#include "param_store.h"
#include "vision_encoder.h"

namespace vlatext {

struct Qwen3VisionConfig {
  int depth = 0, C = 0, F = 0, NH = 0, Cout = 0;
  int patch = 16, merge = 2, temporal = 2, npos = 0;
  std::vector<int> deepstack;  // block indexes whose output feeds a DeepStack merger, in order
  float theta = 10000.0f;
  DType dtype = DType::F32;
};

class Qwen3VisionEncoder final : public VisionEncoder {
 public:
  static Status create(const Qwen3VisionConfig& cfg, const BackendOptions& backend, std::unique_ptr<Qwen3VisionEncoder>* out, std::string* error);
  const char* family() const override { return "qwen3_vl"; }
  ParamStore& params() override { return *store_; }
  Backend& backend() override { return *be_; }
  Status set_trainable(bool on, std::string* error) override;
  int64_t patch_values() const override { return 3LL * cfg_.temporal * cfg_.patch * cfg_.patch; }
  int64_t out_rows(int64_t N) const override { return N / (cfg_.merge * cfg_.merge); }
  int out_width() const override { return cfg_.Cout; }
  int out_blocks() const override { return 1 + (int)cfg_.deepstack.size(); }
  Status encode(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, bool train, std::string* error) override;
  Status encode_backward(const float* dout, std::string* error) override;
  int64_t backward_values() const override { return 0; }
  void release_activations() override {}

 private:
  Qwen3VisionEncoder(const Qwen3VisionConfig& cfg, std::unique_ptr<Backend> be) : cfg_(cfg), be_(std::move(be)) {}
  int p(const std::string& name) const { return store_->index_of(name); }
  ConstTensorRef W(const std::string& name) const { return store_->ref(p(name)); }
  const float* f32(const std::string& name) const { return store_->f32(p(name)); }
  Qwen3VisionConfig cfg_;
  std::unique_ptr<Backend> be_;
  std::unique_ptr<ParamStore> store_;
};

}  // namespace vlatext
