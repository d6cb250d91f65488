// Qwen2.5-VL's vision tower: patch embedding (the 3D convolution as a matmul), 2D rotary
// embeddings, RMSNorm blocks with window attention (full attention in the layers the
// config names), SwiGLU MLP with biases, and the 2x2 patch merger (RMSNorm, Linear, GELU,
// Linear) into the language model's width. Forward for inference, or forward saving
// VisionActs and a backward that ACCUMULATES (+=) parameter gradients until zero_grad().
// Its tensors live in a ParamStore (trained together with the language model's: one
// optimizer step over both stores); all device work goes through its Backend.
//
// Shapes: N patches (all images), P = 3*T*p*p pixel values per patch, C hidden, F MLP
// width, NH heads (hd = C/NH), Cout the language model's width. Parameters carry HF
// names ("visual.blocks.0.attn.qkv.weight", ...) in one allocation.
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

struct VisionConfig {
  int depth = 0, C = 0, F = 0, NH = 0, Cout = 0;
  int patch = 14, merge = 2, temporal = 2, window = 112;
  std::vector<int> fullatt;  // block indexes with full (per-image) attention
  float eps = 1e-6f, theta = 10000.0f;
  DType dtype = DType::F32;  // storage of the weight matrices (norms and biases are f32)
};

// What a training forward saves for the backward (one call's worth). Per-block tensors
// are stacked over the depth: x (depth + 1, N, C) holds every block's input and the
// final stream; the others (depth, N, ...) as named. Rows are in window order.
struct VisionActs {
  explicit VisionActs(Backend* be) : pixels(be), pos(be), x(be), ln1(be), rstd1(be), q(be), k(be), v(be), att(be), lse(be), xmid(be), ln2(be), rstd2(be), g(be), u(be), h(be), lnq(be), rstdq(be), pre(be), hid(be) {}
  int64_t N = 0;
  std::vector<int32_t> grids, widx, cu_win, cu_full;       // host
  Buf<float> pixels;                                        // (N, P) window order
  Buf<int32_t> pos;                                         // (2, N) window order
  Buf<float> x, ln1, rstd1, q, k, v, att, lse, xmid, ln2, rstd2, g, u, h;
  Buf<float> lnq, rstdq, pre, hid;  // merger: ln_q (N, C), rstd (N), mlp.0 out before/after GELU (U, M)
};

class VisionTower final : public VisionEncoder {
 public:
  static Status create(const VisionConfig& cfg, const BackendOptions& backend, std::unique_ptr<VisionTower>* out, std::string* error);
  const VisionConfig& config() const { return cfg_; }
  const char* family() const override { return "qwen2_5_vl"; }
  ParamStore& params() override { return *store_; }
  Backend& backend() override { return *be_; }
  // Trains (or freezes) the tower: gradients are kept only while it is trained.
  Status set_trainable(bool on, std::string* error) override { return store_->set_trainable(0, on, error); }
  int64_t patch_values() const override { return 3LL * cfg_.temporal * cfg_.patch * cfg_.patch; }
  int64_t out_rows(int64_t N) const override { return N / (cfg_.merge * cfg_.merge); }
  int out_width() const override { return cfg_.Cout; }
  Status encode(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, bool train, std::string* error) override;
  Status encode_backward(const float* dout, std::string* error) override;
  int64_t backward_values() const override { return last_ ? out_rows(last_->N) * cfg_.Cout : 0; }
  void release_activations() override { last_.reset(); }

  // pixels (N, P) host memory in the processor's order; grids (n_img, 3) = (t, h, w) patches;
  // out (N / merge^2, Cout), host memory, image by image in the processor's (merge-group) order.
  // acts: nullptr for inference, else filled for backward().
  Status forward(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, std::string* error, VisionActs* acts = nullptr);
  // dout (N / merge^2, Cout), host memory, in the output's order; gradients ACCUMULATE into params().
  Status backward(const float* dout, const VisionActs& acts, std::string* error);

 private:
  VisionTower(const VisionConfig& cfg, std::unique_ptr<Backend> be) : cfg_(cfg), be_(std::move(be)) {}
  int p(const std::string& name) const { return store_->index_of(name); }
  ConstTensorRef W(const std::string& name) const { return store_->ref(p(name)); }
  const float* f32(const std::string& name) const { return store_->f32(p(name)); }
  float* G(const std::string& name) { return store_->grad(p(name)); }
  bool uses_full_attention(int block) const;
  VisionConfig cfg_;
  std::unique_ptr<Backend> be_;
  std::unique_ptr<ParamStore> store_;
  std::unique_ptr<VisionActs> last_;  // the last training encode's activations (this backend's memory)
};

// Qwen2.5-VL's window order: merged units regrouped window by window (window_index) and
// the cumulative patch counts of the windows (cu_window_seqlens, empty windows dropped).
void vision_window_index(const int32_t* grids, int n_img, int merge, int window_units, std::vector<int32_t>* window_index, std::vector<int32_t>* cu_window_seqlens);

}  // namespace vlatext
