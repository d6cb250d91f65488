// A vision encoder of any family, as the N-API layer and the model loaders see it: pixels
// of N patches in, (rows, Cout) features for the language model out. Families: Qwen2.5-VL's
// tower (vision.h), SigLIP with SmolVLM2's pixel-shuffle connector (vision_siglip.h),
// Qwen3-VL's tower with its DeepStack features (vision_qwen3.h). Each
// holds its parameters in a ParamStore on its own Backend; a training forward keeps its
// activations inside the encoder for the next backward (one call's worth).
#pragma once

#include <cstdint>
#include <string>

#include "../core/backend.h"
#include "../core/status.h"
#include "param_store.h"

namespace vlatext {

class VisionEncoder {
 public:
  virtual ~VisionEncoder() = default;
  // e.g. "qwen2_5_vl", "siglip"
  virtual const char* family() const = 0;
  virtual ParamStore& params() = 0;
  virtual Backend& backend() = 0;
  // Trains (or freezes) the encoder: gradients are kept only while it is trained.
  virtual Status set_trainable(bool on, std::string* error) = 0;
  // Pixel values per patch (P); output rows for N patches; output width (the language model's).
  virtual int64_t patch_values() const = 0;
  virtual int64_t out_rows(int64_t N) const = 0;
  virtual int out_width() const = 0;
  // Blocks of (out_rows, out_width) an encode writes: 1, or 1 + K with Qwen3-VL's DeepStack features.
  virtual int out_blocks() const { return 1; }
  // pixels (N, P) and out (out_blocks(), out_rows(N), out_width()) host memory; grids (n_img, 3) = (t, h, w)
  // patches per image. train: keep the activations for encode_backward().
  virtual Status encode(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, bool train, std::string* error) = 0;
  // dout (out_rows(N), out_width()) of the last training encode; gradients ACCUMULATE into params().
  virtual Status encode_backward(const float* dout, std::string* error) = 0;
  // Values encode_backward() expects (out_rows * out_width of the last training encode), 0 when none is kept.
  virtual int64_t backward_values() const = 0;
  // Drops the kept activations.
  virtual void release_activations() = 0;
};

}  // namespace vlatext
