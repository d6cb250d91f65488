// The device seam: everything a model file asks of a device, as one small interface.
// Model code (native/model/*) holds a Backend and calls it for memory and for every
// kernel, with explicit shapes in llm.c's order (outputs, inputs, dimensions); it never
// touches device memory itself, so the same model file runs on any backend. The CPU
// backend (native/kernels/cpu_backend.cpp) forwards to the kernels in native/kernels/;
// a CUDA backend implements the same calls in native/cuda/.
//
// Conventions (as in native/kernels/*.h): gradients ACCUMULATE (+=) into their outputs,
// any gradient pointer may be nullptr to skip it; every pointer given to a kernel is
// memory of this backend (Buf below); host memory crosses only through upload/download.
// Calls on one backend run one at a time, in order (a backend is not shared between
// threads that call it concurrently).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "cpu.h"
#include "dtype.h"
#include "status.h"

namespace vlatext {

enum class Device : uint8_t { Cpu = 0, Cuda = 1 };
inline const char* device_name(Device d) { return d == Device::Cuda ? "cuda" : "cpu"; }

struct BackendOptions {
  Device device = Device::Cpu;
  int threads = 0;          // CPU worker threads; <= 0: all cores
  Isa isa = Isa::Amx;       // CPU instruction-set cap (the CPU's best when it is lower)
  int device_index = 0;     // CUDA device
  // CUDA: every product through our own kernels (native/cuda/gemm.cu) instead of cuBLASLt:
  // slower; for checking cuBLASLt against them, and for machines without it.
  bool cuda_builtin_gemm = false;
};

// Shape descriptors shared with the kernels.
struct AttnShape;
struct RopeSpec;
struct AdamWConfig;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  // e.g. "cpu (2 threads, amx)"
  virtual std::string describe() const = 0;
  virtual int threads() const = 0;
  // Waits for the work queued so far and returns the first failure since the last sync (a
  // device reports kernel errors late); the CPU runs every call to completion and has none.
  virtual Status sync(std::string* error) = 0;

  // ---- memory: zeroed allocations (nullptr when out of memory), copies across the boundary
  virtual void* alloc(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* dst, size_t bytes) = 0;
  // dst (n) = src (n) converted to dst_type (f32 <-> bf16; same type: a copy)
  virtual void convert(void* dst, DType dst_type, const void* src, DType src_type, int64_t n) = 0;

  // ---- linear layers: out (N, OC) = inp (N, C) . W^T + bias; W (OC, C) f32 or bf16 (frozen)
  virtual void matmul_forward(float* out, const float* inp, ConstTensorRef weight, const float* bias, int64_t N, int C, int OC) = 0;
  // dinp (N, C) += dout . W, dweight (OC, C) += dout^T . inp (f32 weights only), dbias (OC) += sum_n dout
  virtual void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, ConstTensorRef weight, int64_t N, int C, int OC) = 0;
  // out (n) = dot(inp (C), W[rows[i]] (C)) for i < n: a few rows of a weight (the LM head over allowed tokens)
  virtual void matmul_rows(float* out, const float* inp, ConstTensorRef weight, const int32_t* host_rows, int n, int C) = 0;

  // ---- elementwise and per-row
  virtual void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps) = 0;
  virtual void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int64_t N, int C) = 0;
  // y (n) += alpha * x (n)
  virtual void axpy(float* y, const float* x, float alpha, int64_t n) = 0;
  // out (n) = a + b
  virtual void add(float* out, const float* a, const float* b, int64_t n) = 0;
  // out (n) = alpha * x;  x (n) *= y (n)
  virtual void scale(float* out, const float* x, float alpha, int64_t n) = 0;
  virtual void mul_inplace(float* x, const float* y, int64_t n) = 0;
  virtual void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) = 0;
  virtual void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) = 0;
  virtual void gelu_forward(float* out, const float* x, int64_t n) = 0;
  virtual void gelu_backward(float* dx, const float* dout, const float* x, int64_t n) = 0;
  // LayerNorm with bias (SigLIP): out (N, C), mean and rstd (N) saved for the backward; bias may be nullptr
  virtual void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t N, int C, float eps) = 0;
  virtual void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t N, int C) = 0;
  // GELU, tanh form (torch's approximate="tanh", transformers' gelu_pytorch_tanh)
  virtual void gelu_tanh_forward(float* out, const float* x, int64_t n) = 0;
  virtual void gelu_tanh_backward(float* dx, const float* dout, const float* x, int64_t n) = 0;
  // out (N, C) = table[tokens[n]], table (V, C) f32 or bf16; tokens on the device
  virtual void embedding_forward(float* out, const int32_t* tokens, ConstTensorRef table, int64_t N, int C) = 0;
  virtual void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int C) = 0;
  // dst[rows[i]] = src[i] (scatter) and dst[i] = src[rows[i]] (gather), rows of C floats; rows on the device
  virtual void scatter_rows(float* dst, const int32_t* rows, const float* src, int64_t n, int C) = 0;
  virtual void gather_rows(float* dst, const float* src, const int32_t* rows, int64_t n, int C) = 0;

  // ---- rotary embeddings (in place), positions (S, N) on the device
  virtual void rope_forward(float* x, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) = 0;
  virtual void rope_backward(float* dx, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) = 0;

  // ---- attention (native/kernels/attention.h)
  virtual void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnShape& s) = 0;
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const AttnShape& s) = 0;
  virtual void attention_forward_cached(float* out, const float* q, const float* k, const float* v, int start, int n, int NH, int KV, int hd) = 0;
  // cu_seqlens (n_seg + 1) on the host
  virtual void attention_segments(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* host_cu, int n_seg, int NH, int hd) = 0;
  virtual void attention_segments_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const int32_t* host_cu,
                                           int n_seg, int NH, int hd) = 0;

  // ---- the LM head with its cross-entropy, never holding more than a chunk of logits:
  // hidden (K, C) rows with targets (K) on the device (< 0 ignored), head (V, C) f32 or bf16.
  //   loss_sum  sum over kept rows of -log softmax(hidden . head^T)[target]   (host double)
  //   lse (K)   log-sum-exp per row (saved for head_backward)
  //   dhidden (K, C), when not nullptr: += loss_scale * d(loss_sum)/d(hidden), in the same pass
  //             (the softmax is accumulated online, as FlashAttention does with V), so a frozen
  //             head costs one forward and one backward product and no logits are stored.
  //   logits (K, V), when not nullptr: every logit is also written out.
  virtual Status head_forward(double* loss_sum, int64_t* kept, float* lse, float* dhidden, float* logits, const float* hidden, const int32_t* targets, ConstTensorRef head, float loss_scale, int64_t K,
                              int C, int V) = 0;
  // The head's weight gradient (a trained, f32 head): dhead (V, C) += loss_scale * d(loss_sum)/d(head),
  // and dhidden as above when the forward did not compute it; from the forward's logits when it
  // kept them, else recomputed chunk by chunk from lse.
  virtual void head_backward(float* dhead, float* dhidden, const float* hidden, const int32_t* targets, const float* lse, const float* logits, const float* head, float loss_scale, int64_t K, int C,
                             int V) = 0;

  // ---- optimizer: AdamW (native/kernels/adamw.h) and the squared norm of a gradient
  virtual void adamw_update(float* params, float* m, float* v, const float* grads, int64_t n, const AdamWConfig& cfg, int t, float grad_scale) = 0;
  virtual double sq_norm(const float* x, int64_t n) = 0;
};

// Makes the backend `opt` names. Status::NoDevice (with `error` saying why) when this build
// or machine has no such device.
Status create_backend(const BackendOptions& opt, std::unique_ptr<Backend>* out, std::string* error);

// An allocation of T on a backend, freed with it (move-only). Sizes are elements.
template <typename T>
class Buf {
 public:
  Buf() = default;
  explicit Buf(Backend* be) : be_(be) {}
  Buf(Backend* be, int64_t n) : be_(be) { resize(n); }
  ~Buf() { reset(); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  Buf(Buf&& o) noexcept : be_(o.be_), p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  Buf& operator=(Buf&& o) noexcept {
    if (this != &o) {
      reset();
      be_ = o.be_, p_ = o.p_, n_ = o.n_;
      o.p_ = nullptr, o.n_ = 0;
    }
    return *this;
  }
  void bind(Backend* be) {
    if (be_ != be) reset();
    be_ = be;
  }
  // n zeroed elements (reuses the allocation when the size is unchanged). False when out of memory.
  bool resize(int64_t n) {
    if (n == n_ && p_) {
      be_->zero(p_, sizeof(T) * (size_t)n);
      return true;
    }
    reset();
    if (n <= 0) return true;
    p_ = static_cast<T*>(be_->alloc(sizeof(T) * (size_t)n));
    if (!p_) return false;
    n_ = n;
    return true;
  }
  // n elements whose contents are unspecified (zeroed when newly allocated, else what the last
  // user left): for outputs a kernel overwrites whole, kept from call to call without the cost
  // of zeroing them. False when out of memory.
  bool ensure(int64_t n) { return (n == n_ && p_) ? true : resize(n); }
  // At least n elements (size() may be larger), contents unspecified: scratch reused across
  // calls of different sizes.
  bool reserve(int64_t n) { return (n <= n_ && p_) ? true : resize(n); }
  // n elements copied from host memory.
  bool upload(const T* host, int64_t n) {
    if (n != n_ && !resize(n)) return false;
    if (n > 0) be_->upload(p_, host, sizeof(T) * (size_t)n);
    return true;
  }
  // A copy of another buffer of the same backend.
  bool assign(const Buf& o) {
    if (o.n_ != n_ && !resize(o.n_)) return false;
    if (n_ > 0) be_->copy(p_, o.p_, sizeof(T) * (size_t)n_);
    return true;
  }
  void reset() {
    if (p_) be_->release(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  int64_t size() const { return n_; }
  bool empty() const { return n_ == 0; }

 private:
  Backend* be_ = nullptr;
  T* p_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace vlatext
