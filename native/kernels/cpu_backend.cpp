#include "cpu_backend.h"

#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "adamw.h"
#include "attention.h"
#include "elementwise.h"
#include "head.h"
#include "layernorm.h"
#include "matmul.h"
#include "norm.h"
#include "rope.h"

namespace vlatext {

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(std::unique_ptr<ThreadPool> pool, Isa isa) : pool_(std::move(pool)), isa_(effective_isa(isa)) {}

  Device device() const override { return Device::Cpu; }
  std::string describe() const override { return std::string("cpu (") + std::to_string(pool_->size()) + " threads, " + isa_name(isa_) + ")"; }
  int threads() const override { return pool_->size(); }
  Status sync(std::string*) override { return Status::Ok; }

  ~CpuBackend() override {
    for (auto& [size, p] : cached_) std::free(p);
  }

  // Freed blocks are kept for reuse, by size (at most kCachedBytes of them): a training step
  // frees and allocates the same temporaries every step, and a fresh large allocation is a
  // fresh mapping whose pages fault in, each zeroed by the kernel, on first touch.
  void* alloc(size_t bytes) override {
    const size_t rounded = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = cached_.find(rounded);
      if (it != cached_.end()) {
        p = it->second;
        cached_.erase(it);
        cached_bytes_ -= rounded;
      }
    }
    if (!p) p = std::aligned_alloc(64, rounded);
    if (!p) return nullptr;
    std::memset(p, 0, rounded);
    std::lock_guard<std::mutex> lock(mu_);
    live_[p] = rounded;
    return p;
  }
  void release(void* p) override {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    const size_t size = it == live_.end() ? 0 : it->second;
    if (it != live_.end()) live_.erase(it);
    if (size == 0 || size > kCachedBytes) return std::free(p);
    cached_.emplace(size, p);
    cached_bytes_ += size;
    while (cached_bytes_ > kCachedBytes) {  // over the bound: give back the largest blocks first
      auto big = std::max_element(cached_.begin(), cached_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      cached_bytes_ -= big->first;
      std::free(big->second);
      cached_.erase(big);
    }
  }
  void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { std::memmove(dst, src, bytes); }
  void zero(void* dst, size_t bytes) override { std::memset(dst, 0, bytes); }
  void convert(void* dst, DType dt, const void* src, DType st, int64_t n) override {
    if (dt == st) return copy(dst, src, (size_t)n * dtype_size(dt));
    pool_->parallel_for(n, [&](int, int64_t a, int64_t b) {
      for (int64_t i = a; i < b; i++) {
        if (dt == DType::BF16) static_cast<uint16_t*>(dst)[i] = f32_to_bf16(static_cast<const float*>(src)[i]);
        else static_cast<float*>(dst)[i] = bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      }
    }, 0, grain_for(1));
  }

  void matmul_forward(float* out, const float* inp, ConstTensorRef w, const float* bias, int64_t N, int C, int OC) override { vlatext::matmul_forward(*pool_, isa_, out, inp, w, bias, N, C, OC); }
  void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, ConstTensorRef w, int64_t N, int C, int OC) override {
    vlatext::matmul_backward(*pool_, isa_, dinp, dweight, dbias, dout, inp, w, N, C, OC);
  }
  void matmul_rows(float* out, const float* inp, ConstTensorRef w, const int32_t* rows, int n, int C) override {
    pool_->parallel_for(n, [&](int, int64_t a, int64_t b) {
      for (int64_t i = a; i < b; i++) {
        const int64_t r = (int64_t)rows[i] * C;
        out[i] = w.dtype == DType::BF16 ? dot_bf16(inp, w.bf16() + r, C) : dot(inp, w.f32() + r, C);
      }
    }, 0, grain_for(C));
  }

  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps) override { vlatext::rmsnorm_forward(*pool_, out, rstd, inp, weight, N, C, eps); }
  void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int64_t N, int C) override {
    vlatext::rmsnorm_backward(*pool_, dinp, dweight, dout, inp, weight, rstd, N, C);
  }
  void axpy(float* y, const float* x, float alpha, int64_t n) override {
    pool_->parallel_for(n, [&](int, int64_t a, int64_t b) {
      for (int64_t i = a; i < b; i++) y[i] += alpha * x[i];
    }, 0, grain_for(1));
  }
  void add(float* out, const float* a, const float* b, int64_t n) override { add_forward(*pool_, out, a, b, n); }
  void scale(float* out, const float* x, float alpha, int64_t n) override {
    pool_->parallel_for(n, [&](int, int64_t a, int64_t b) {
      for (int64_t i = a; i < b; i++) out[i] = alpha * x[i];
    }, 0, grain_for(1));
  }
  void mul_inplace(float* x, const float* y, int64_t n) override {
    pool_->parallel_for(n, [&](int, int64_t a, int64_t b) {
      for (int64_t i = a; i < b; i++) x[i] *= y[i];
    }, 0, grain_for(1));
  }
  void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) override { vlatext::swiglu_forward(*pool_, out, gate, up, n); }
  void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) override { vlatext::swiglu_backward(*pool_, dgate, dup, dout, gate, up, n); }
  void gelu_forward(float* out, const float* x, int64_t n) override { vlatext::gelu_forward(*pool_, out, x, n); }
  void gelu_backward(float* dx, const float* dout, const float* x, int64_t n) override { vlatext::gelu_backward(*pool_, dx, dout, x, n); }
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t N, int C, float eps) override {
    vlatext::layernorm_forward(*pool_, out, mean, rstd, inp, weight, bias, N, C, eps);
  }
  void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t N, int C) override {
    vlatext::layernorm_backward(*pool_, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
  }
  void gelu_tanh_forward(float* out, const float* x, int64_t n) override { vlatext::gelu_tanh_forward(*pool_, out, x, n); }
  void gelu_tanh_backward(float* dx, const float* dout, const float* x, int64_t n) override { vlatext::gelu_tanh_backward(*pool_, dx, dout, x, n); }
  void embedding_forward(float* out, const int32_t* tokens, ConstTensorRef table, int64_t N, int C) override { vlatext::embedding_forward(*pool_, out, tokens, table, N, C); }
  void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int C) override { vlatext::embedding_backward(*pool_, dtable, dout, tokens, N, C); }
  void scatter_rows(float* dst, const int32_t* rows, const float* src, int64_t n, int C) override {
    pool_->parallel_for(n, [&](int, int64_t a, int64_t b) {
      for (int64_t i = a; i < b; i++) std::memcpy(dst + (int64_t)rows[i] * C, src + i * C, sizeof(float) * (size_t)C);
    }, 0, grain_for(C));
  }
  void gather_rows(float* dst, const float* src, const int32_t* rows, int64_t n, int C) override {
    pool_->parallel_for(n, [&](int, int64_t a, int64_t b) {
      for (int64_t i = a; i < b; i++) std::memcpy(dst + i * C, src + (int64_t)rows[i] * C, sizeof(float) * (size_t)C);
    }, 0, grain_for(C));
  }

  void rope_forward(float* x, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) override { vlatext::rope_forward(*pool_, x, positions, spec, N, H); }
  void rope_backward(float* dx, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) override { vlatext::rope_backward(*pool_, dx, positions, spec, N, H); }

  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnShape& s) override { vlatext::attention_forward(*pool_, out, lse, q, k, v, s); }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const AttnShape& s) override {
    vlatext::attention_backward(*pool_, dq, dk, dv, dout, out, lse, q, k, v, s);
  }
  void attention_forward_cached(float* out, const float* q, const float* k, const float* v, int start, int n, int NH, int KV, int hd) override {
    vlatext::attention_forward_cached(*pool_, out, q, k, v, start, n, NH, KV, hd);
  }
  void attention_segments(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* cu, int n_seg, int NH, int hd) override {
    vlatext::attention_segments(*pool_, out, lse, q, k, v, cu, n_seg, NH, hd);
  }
  void attention_segments_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const int32_t* cu, int n_seg, int NH,
                                   int hd) override {
    vlatext::attention_segments_backward(*pool_, dq, dk, dv, dout, out, lse, q, k, v, cu, n_seg, NH, hd);
  }

  Status head_forward(double* loss_sum, int64_t* kept, float* lse, float* dhidden, float* logits, const float* hidden, const int32_t* targets, ConstTensorRef head, float loss_scale, int64_t K, int C,
                      int V) override {
    *loss_sum = vlatext::head_forward(*pool_, isa_, kept, lse, dhidden, logits, hidden, targets, head, loss_scale, K, C, V, kHeadChunk, &head_scratch_);
    return Status::Ok;
  }
  void head_backward(float* dhead, float* dhidden, const float* hidden, const int32_t* targets, const float* lse, const float* logits, const float* head, float loss_scale, int64_t K, int C, int V) override {
    vlatext::head_backward(*pool_, isa_, dhead, dhidden, hidden, targets, lse, logits, head, loss_scale, K, C, V, kHeadChunk, &head_scratch_);
  }

  void adamw_update(float* params, float* m, float* v, const float* grads, int64_t n, const AdamWConfig& cfg, int t, float grad_scale) override {
    vlatext::adamw_update(*pool_, params, m, v, grads, n, cfg, t, grad_scale);
  }
  double sq_norm(const float* x, int64_t n) override { return grad_sq_norm(*pool_, x, n); }

 private:
  static constexpr size_t kCachedBytes = size_t(256) << 20;
  std::unique_ptr<ThreadPool> pool_;
  Isa isa_;
  HeadScratch head_scratch_;
  std::mutex mu_;  // alloc/release may come from the thread that destroys a model
  std::unordered_map<void*, size_t> live_;
  std::unordered_multimap<size_t, void*> cached_;
  size_t cached_bytes_ = 0;
};

}  // namespace

Status create_cpu_backend(int threads, Isa isa, std::unique_ptr<Backend>* out, std::string* error) {
  std::unique_ptr<ThreadPool> pool;
  const Status st = ThreadPool::create(threads, &pool);
  if (st != Status::Ok) {
    *error = std::string("could not start the thread pool: ") + status_message(st);
    return st;
  }
  *out = std::make_unique<CpuBackend>(std::move(pool), isa);
  return Status::Ok;
}

}  // namespace vlatext
