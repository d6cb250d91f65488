// SmolVLM2's vision side (transformers' SmolVLMVisionTransformer + SmolVLMConnector; the
// Idefics3 family): a SigLIP encoder — patch embedding (a p x p convolution with bias, as a
// matmul), learned absolute position embeddings, pre-LayerNorm blocks (LayerNorm with bias,
// full bidirectional attention per tile with biased q/k/v/out projections, MLP fc1 ->
// gelu_tanh -> fc2), a final LayerNorm — then the connector's pixel shuffle (each s x s
// block of patches becomes one row of s^2 * C values) and its bias-free projection into the
// language model's width.
//
// Shapes: N patches (all tiles), P = 3*p*p pixel values per patch (channel-major, as the
// convolution's weight), S = (image_size / p)^2 patches per tile, C hidden, F MLP width, NH
// heads (hd = C/NH), s the scale factor, Cout the language model's width. Every tile is a
// full image_size x image_size square (the processor resizes and splits to that), so the
// position ids are 0..S-1 (transformers' bucketized ids reduce to these when no patch is
// masked). Parameters carry HF names without the "model." prefix
// ("vision_model.encoder.layers.0.self_attn.q_proj.weight", ...) in one allocation.
//
// Inference only for now: set_trainable(true) is refused (the language model trains with
// this encoder frozen; its features are computed once per frame).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "../core/backend.h"
#include "../core/status.h"
#include "param_store.h"
#include "vision_encoder.h"

namespace vlatext {

struct SiglipConfig {
  int depth = 0, C = 0, F = 0, NH = 0, Cout = 0;
  int patch = 16, image = 512, scale = 2;
  float eps = 1e-6f;
  DType dtype = DType::F32;  // storage of the weight matrices (norms, biases, position table f32)
};

class SiglipEncoder final : public VisionEncoder {
 public:
  static Status create(const SiglipConfig& cfg, const BackendOptions& backend, std::unique_ptr<SiglipEncoder>* out, std::string* error);
  const SiglipConfig& config() const { return cfg_; }
  const char* family() const override { return "siglip"; }
  ParamStore& params() override { return *store_; }
  Backend& backend() override { return *be_; }
  Status set_trainable(bool on, std::string* error) override;
  int64_t patch_values() const override { return 3LL * cfg_.patch * cfg_.patch; }
  int64_t out_rows(int64_t N) const override { return N / (cfg_.scale * cfg_.scale); }
  int out_width() const override { return cfg_.Cout; }
  // grids: (1, image/patch, image/patch) per tile
  Status encode(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, bool train, std::string* error) override;
  Status encode_backward(const float* dout, std::string* error) override;
  int64_t backward_values() const override { return 0; }
  void release_activations() override {}

 private:
  SiglipEncoder(const SiglipConfig& cfg, std::unique_ptr<Backend> be) : cfg_(cfg), be_(std::move(be)) {}
  int p(const std::string& name) const { return store_->index_of(name); }
  ConstTensorRef W(const std::string& name) const { return store_->ref(p(name)); }
  const float* f32(const std::string& name) const { return store_->f32(p(name)); }
  SiglipConfig cfg_;
  std::unique_ptr<Backend> be_;
  std::unique_ptr<ParamStore> store_;
};

}  // namespace vlatext
