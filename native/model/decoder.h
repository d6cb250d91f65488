// The decoder-only language model family: Llama / SmolLM2 (no bias), Qwen2 / Qwen2.5
// (q/k/v bias), Qwen3 (per-head q/k RMSNorm), with Hugging Face semantics, tied or
// untied embeddings, and multi-section RoPE (Qwen2.5-VL's M-RoPE; one section = RoPE).
//
// All parameters live in one float allocation carved by a size table (llm.c style), so
// zeroing, checkpoint I/O and the optimizer are flat loops. Parameters carry HF names.
// LoRA adapters (PEFT semantics: out = W x + b + (alpha / R) B (A x)) live in a second
// allocation; every projection goes through the one choke point linear_lora_*.
//
// Gradients ACCUMULATE (+=) into the gradient buffers until zero_grad().
// Shapes: B sequences of T tokens, N = B*T rows; C hidden, V vocab, L layers, NH query
// heads, KV key/value heads, hd head size, F MLP width, R LoRA rank.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/status.h"
#include "../core/threadpool.h"
#include "../kernels/adamw.h"

namespace vlatext {

enum class Arch { Llama = 0, Qwen2 = 1, Qwen3 = 2 };

struct DecoderConfig {
  Arch arch = Arch::Llama;
  int V = 0, C = 0, L = 0, NH = 0, KV = 0, hd = 0, F = 0;
  float eps = 1e-6f, theta = 10000.0f;
  bool tie = false;
  std::vector<int> rope_sections;  // sums to hd / 2; empty = one section
};

// The seven projections LoRA can target, in PEFT's module names.
enum Proj { kQ = 0, kK, kV, kO, kGate, kUp, kDown, kNumProj };
extern const char* const kProjNames[kNumProj];

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // into the parameter (or LoRA) allocation, in floats
  int64_t size = 0;
};

struct LoraConfig {
  int rank = 8;
  float alpha = 16.0f;
  float dropout = 0.0f;  // on the adapter's input, training forward passes only
  std::array<bool, kNumProj> targets{};
  uint64_t seed = 0;
};

// One batch. Pointers are borrowed for the duration of the call.
struct Batch {
  int B = 0, T = 0;
  const int32_t* tokens = nullptr;     // (N)
  const int32_t* targets = nullptr;    // (N), < 0 ignored; nullptr for inference
  const int32_t* positions = nullptr;  // (S, N) or nullptr for 0..T-1 in every section
  // Injected embeddings (e.g. vision features) replace token embeddings at given rows.
  int M = 0;
  const int32_t* inject_rows = nullptr;  // (M) row indices in [0, N)
  const float* inject = nullptr;         // (M, C)
  // LoRA dropout masks are drawn from this seed (deterministic); < 0 disables dropout.
  int64_t dropout_seed = -1;
};

struct ForwardResult {
  double loss_sum = 0;  // sum of token losses over kept targets
  int64_t kept = 0;     // targets that were not ignored
};

// Keys (after RoPE) and values of every layer for one sequence, for incremental decoding.
//   k[l], v[l]  (capacity, KV, hd)
struct KvCache {
  int capacity = 0;
  int length = 0;       // tokens cached
  int next_pos = 0;     // default position of the next token (all RoPE sections)
  std::vector<std::vector<float>> k, v;
};

// New tokens of one sequence for a (batched) inference call.
struct SeqInput {
  KvCache* cache;
  const int32_t* tokens;     // (n)
  int n;
  const int32_t* positions;  // (S, n) or nullptr: cache->next_pos onwards
  int M;
  const int32_t* inject_rows;  // (M) rows within the n new tokens
  const float* inject;         // (M, C)
};

class Decoder {
 public:
  // Validates the config and allocates parameters (zeros). Status::InvalidArgument with `error` set on a bad config.
  static Status create(const DecoderConfig& cfg, int threads, std::unique_ptr<Decoder>* out, std::string* error);

  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  const DecoderConfig& config() const { return cfg_; }
  const std::vector<TensorInfo>& params() const { return params_; }
  const std::vector<TensorInfo>& lora_params() const { return lora_params_; }
  const TensorInfo* find_param(const std::string& name) const;
  const TensorInfo* find_lora(const std::string& name) const;
  float* param_data() { return param_mem_.data(); }
  float* param_grad() { return param_grad_.data(); }
  float* lora_data() { return lora_mem_.data(); }
  float* lora_grad() { return lora_grad_.data(); }
  int64_t num_params() const { return (int64_t)param_mem_.size(); }
  int64_t num_lora_params() const { return (int64_t)lora_mem_.size(); }
  ThreadPool& pool() { return *pool_; }

  // Adds LoRA adapters: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform(a=sqrt(5))), B = 0.
  // Base weights become frozen. Replaces any previous adapters.
  Status enable_lora(const LoraConfig& lc, std::string* error);
  bool has_lora() const { return lora_.rank > 0; }
  const LoraConfig& lora_config() const { return lora_; }
  // Full fine-tuning: base weights get gradients (LoRA adapters too, if present).
  void set_train_base(bool on) { train_base_ = on; }
  bool train_base() const { return train_base_; }

  // Forward pass; saves activations for backward(). logits_out (N, V) may be nullptr.
  Status forward(const Batch& batch, ForwardResult* result, float* logits_out, std::string* error);
  // Backward of loss_scale * (sum of token losses); call after forward() with targets.
  // d_inject (M, C), if given, receives the gradient w.r.t. the injected embeddings (=).
  Status backward(float loss_scale, float* d_inject);
  void zero_grad();

  // Allocates an empty cache for up to `capacity` tokens.
  void init_cache(KvCache* cache, int capacity) const;
  // Runs n new tokens of one sequence through the model using and extending the cache
  // (no activations saved, no gradients). positions (S, n) or nullptr for next_pos..;
  // inject rows index into the n new tokens. logits_last (V) gets the last token's logits.
  Status infer(KvCache* cache, const int32_t* tokens, int n, const int32_t* positions, int M, const int32_t* inject_rows, const float* inject, float* logits_last, std::string* error);
  // Same, but stops at the last token's final-normed hidden state, hidden_last (C).
  Status infer_hidden(KvCache* cache, const int32_t* tokens, int n, const int32_t* positions, int M, const int32_t* inject_rows, const float* inject, float* hidden_last, std::string* error);
  // Several sequences in one forward pass (one matmul per layer over all their rows);
  // hidden_last (n_seqs, C) gets each sequence's last final-normed hidden state.
  Status infer_hidden_batch(const SeqInput* seqs, int n_seqs, float* hidden_last, std::string* error);
  // Language-model head on one hidden state: out[i] = logit of ids[i] (a sparse head),
  // or all V logits when ids == nullptr.
  void head_logits(const float* hidden, const int32_t* ids, int n_ids, float* out);
  // Clips trainable gradients to max_norm (<= 0: no clipping), applies AdamW, zeroes gradients.
  // Returns the gradient norm before clipping.
  // extra_sq: squared gradient norm of other trained parts (the vision tower), clipped
  // together; returns the global norm sqrt(own + extra_sq)
  double optimizer_step(const AdamWConfig& opt, float max_norm, double extra_sq = 0);
  int step_count() const { return t_; }

  // Optimizer state, for checkpoints: (m, v) for trainable tensors, flat.
  std::vector<float>& adam_m() { return m_; }
  std::vector<float>& adam_v() { return v_; }
  // Restore AdamW's state (from a checkpoint); m and v must cover the trainable tensors.
  Status set_optimizer_state(int step, std::vector<float> m, std::vector<float> v, std::string* error);

 private:
  Decoder(const DecoderConfig& cfg, std::unique_ptr<ThreadPool> pool);
  // Pointers into the parameter allocation for one layer (nullptr for absent tensors).
  struct LayerW {
    float* ln1;          // (C)
    float* w[kNumProj];  // q (NH*hd, C), k/v (KV*hd, C), o (C, NH*hd), gate/up (F, C), down (C, F)
    float* bq;           // Qwen2 biases: (NH*hd), (KV*hd), (KV*hd)
    float* bk;
    float* bv;
    float* qn;           // Qwen3 q/k norms (hd)
    float* kn;
    float* ln2;          // (C)
  };
  LayerW layer(int l);
  struct Lora {
    float* A = nullptr;  // (R, in)
    float* B = nullptr;  // (out, R)
    float* dA = nullptr;
    float* dB = nullptr;
    const float* mask = nullptr;  // (N, in) dropout scale (0 or 1/(1-p)), or nullptr
  };
  Lora lora(int l, Proj p);
  void linear_forward(float* out, float* ax, const float* inp, const float* W, const float* bias, const Lora& lo, int64_t N, int in, int outd);
  void linear_backward(float* dinp, float* dW, float* dbias, const float* dout, const float* inp, const float* ax, const float* W, const Lora& lo, int64_t N, int in, int outd);
  int64_t trainable_size() const;

  DecoderConfig cfg_;
  std::unique_ptr<ThreadPool> pool_;  // never null after create()
  std::vector<TensorInfo> params_, lora_params_;
  std::vector<float> param_mem_, param_grad_, lora_mem_, lora_grad_;
  LoraConfig lora_{0, 0, {}, 0};
  bool train_base_ = true;
  std::vector<float> m_, v_;  // AdamW moments over [base (if trained), lora]
  int t_ = 0;
  bool m_for_base_ = false;

  // Activations saved by forward() for backward().
  struct Acts;
  std::unique_ptr<Acts> acts_;
};

}  // namespace vlatext
