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
// Inference, or a training forward that keeps its activations (SiglipActs) for a backward
// that ACCUMULATES (+=) parameter gradients until zero_grad() (vision.train).
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

struct SiglipConfig {
  int depth = 0, C = 0, F = 0, NH = 0, Cout = 0;
  int patch = 16, image = 512, scale = 2;
  float eps = 1e-6f;
  DType dtype = DType::F32;  // storage of the weight matrices (norms, biases, position table f32)
};

// What a training forward saves (one call's worth): x (depth + 1, N, C) every block's input and
// the final stream, the per-block tensors (depth, N, ...), the final LayerNorm and the shuffle.
// Inference uses the same buffers with one block's worth (depth 1, x in place).
struct SiglipActs {
  explicit SiglipActs(Backend* be)
      : px(be), x(be), ln1(be), mean1(be), rstd1(be), q(be), k(be), v(be), att(be), lse(be), xmid(be), ln2(be), mean2(be), rstd2(be), g(be), h(be), lnf(be), meanf(be), rstdf(be), shuffled(be), order(be) {}
  int64_t N = 0;
  int n_img = 0;
  std::vector<int32_t> cu;  // host: tile boundaries
  Buf<float> px, x, ln1, mean1, rstd1, q, k, v, att, lse, xmid, ln2, mean2, rstd2, g, h, lnf, meanf, rstdf, shuffled;
  Buf<int32_t> order;  // (N) the pixel shuffle's gather
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
  int64_t backward_values() const override { return last_ ? out_rows(last_->N) * cfg_.Cout : 0; }
  void release_activations() override { last_.reset(); }

 private:
  SiglipEncoder(const SiglipConfig& cfg, std::unique_ptr<Backend> be) : cfg_(cfg), be_(std::move(be)) {}
  int p(const std::string& name) const { return store_->index_of(name); }
  ConstTensorRef W(const std::string& name) const { return store_->ref(p(name)); }
  const float* f32(const std::string& name) const { return store_->f32(p(name)); }
  SiglipConfig cfg_;
  std::unique_ptr<Backend> be_;
  std::unique_ptr<ParamStore> store_;
  std::unique_ptr<SiglipActs> last_;  // the last training encode's activations
};

}  // namespace vlatext
