// Every tensor of a model in one table: its Hugging Face name, shape, storage type and
// device memory, and, while it is trained, its gradient and AdamW moments. The decoder and
// the vision tower each keep one store; one optimizer step runs over all the stores of a
// policy with one global clipping norm (optimizer_step below).
//
// Memory, llm.c style: tensors are added in segments, and each segment's values live in
// one allocation per storage type, carved by the segment's size table. A model adds its
// base weights as segment 0 and, for LoRA, its adapters as segment 1 (dropped and re-added
// when the adapters change). Gradients, and the AdamW moments m and v, are one f32
// allocation each over the trainable tensors in table order, so zeroing, norms and the
// optimizer are flat loops, and the optimizer state of a checkpoint is (m, v) in that order.
// Only f32 tensors can be trained (bf16 is storage for frozen weights; trained weights are
// their own f32 master copy).
//
// Gradients ACCUMULATE (+=) into grad() until zero_grad().
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "../core/status.h"
#include "../io/safetensors.h"
#include "../kernels/adamw.h"

namespace vlatext {

struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;
  int64_t size = 0;   // elements
  DType dtype = DType::F32;
  int segment = 0;
  int64_t offset = 0;       // elements into its segment's allocation of its dtype
  bool trainable = false;
  int64_t grad_offset = -1; // into grad()/m/v when trainable, else -1
};

class ParamStore {
 public:
  explicit ParamStore(Backend* be) : be_(be) {}
  ParamStore(const ParamStore&) = delete;
  ParamStore& operator=(const ParamStore&) = delete;

  // ---- building
  // Adds a tensor to the open segment (its memory comes with end_segment()).
  void add(const std::string& name, std::vector<int64_t> shape, DType dtype);
  // Allocates the open segment's tensors (zeros). OutOfMemory, with `error` saying how much.
  Status end_segment(std::string* error);
  // Drops the tensors of segments >= `keep` (their memory, gradients and the moments).
  void truncate(int keep);
  int segments() const { return (int)segs_.size(); }

  // ---- tensors
  const std::vector<ParamTensor>& tensors() const { return t_; }
  const ParamTensor* find(const std::string& name) const;
  int index_of(const std::string& name) const;  // -1 if absent
  // Device memory of tensor i: f32() is nullptr for a bf16 tensor.
  float* f32(int i);
  const float* f32(int i) const;
  ConstTensorRef ref(int i) const;
  // Its gradient (device memory), or nullptr when it is not trained.
  float* grad(int i);

  // ---- host transfers (converted to and from the storage type)
  void set(int i, const float* host);   // t.size values
  void get(int i, float* host) const;
  void get_grad(int i, float* host) const;  // zeros when not trained
  // Fills tensor i from a mapped safetensors file (F32/F16/BF16 at `offset`), converting in
  // pieces of bounded size; bf16 into a bf16 tensor is copied bit for bit.
  Status load(int i, const MappedFile& f, size_t offset, StDtype dtype, std::string* error);

  // ---- training
  // Trains (or freezes) every tensor of `segment`; tensors that are not f32 cannot be trained
  // (InvalidArgument naming one). Changing the trained set re-carves the gradients and drops the moments.
  Status set_trainable(int segment, bool on, std::string* error);
  bool segment_trainable(int segment) const;
  int64_t trainable_size() const { return n_train_; }
  void zero_grad();
  double grad_sq_norm();
  // AdamW over every trained tensor with gradients scaled by grad_scale; increments step().
  void adamw(const AdamWConfig& opt, float grad_scale);
  int step() const { return step_; }
  // (m, v) over the trained tensors in table order; empty before the first step.
  void optimizer_state(std::vector<float>* m, std::vector<float>* v) const;
  Status set_optimizer_state(int step, const std::vector<float>& m, const std::vector<float>& v, std::string* error);

  // ---- sizes
  int64_t num_elements() const;   // all tensors
  int64_t bytes() const;          // values + gradients + moments
  Backend& backend() { return *be_; }

 private:
  struct Segment {
    Buf<float> f32;
    Buf<uint16_t> bf16;
  };
  void carve_grads();
  void* data(int i) const;

  Backend* be_;
  std::vector<ParamTensor> t_;
  std::vector<std::unique_ptr<Segment>> segs_;
  int open_first_ = 0;             // first tensor of the open segment
  std::vector<bool> seg_trainable_;
  int64_t n_train_ = 0;
  Buf<float> grad_, m_, v_;        // (n_train_) each; m_, v_ empty until the first step
  int step_ = 0;
};

// One AdamW step over the trained tensors of several stores (a policy's language model and
// vision tower), with the gradients clipped to max_norm (<= 0: no clipping) by ONE global norm
// over all of them; zeroes the gradients. Returns the norm before clipping.
double optimizer_step(ParamStore* const* stores, int n, const AdamWConfig& opt, float max_norm);

}  // namespace vlatext
