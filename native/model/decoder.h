// The decoder-only language model family: Llama / SmolLM2 (no bias), Qwen2 / Qwen2.5
// (q/k/v bias), Qwen3 (per-head q/k RMSNorm), with Hugging Face semantics, tied or
// untied embeddings, and multi-section RoPE (Qwen2.5-VL's M-RoPE; one section = RoPE).
//
// Every tensor lives in one ParamStore (native/model/param_store.h) under its HF name:
// the base weights as segment 0 (matrices and embeddings in the config's storage type, f32
// or bf16; norms and biases f32), LoRA adapters (PEFT semantics: out = W x + b +
// (alpha / R) B (A x)) as segment 1; every projection goes through the one choke point
// linear_forward/linear_backward. All device work goes through the Backend the decoder was
// made with (native/core/backend.h): this file never touches device memory itself.
//
// Gradients ACCUMULATE (+=) into the store's gradients until zero_grad().
// Shapes: B sequences of T tokens, N = B*T rows; C hidden, V vocab, L layers, NH query
// heads, KV key/value heads, hd head size, F MLP width, R LoRA rank.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "../core/status.h"
#include "../kernels/adamw.h"
#include "param_store.h"

namespace vlatext {

enum class Arch { Llama = 0, Qwen2 = 1, Qwen3 = 2 };

struct DecoderConfig {
  Arch arch = Arch::Llama;
  int V = 0, C = 0, L = 0, NH = 0, KV = 0, hd = 0, F = 0;
  float eps = 1e-6f, theta = 10000.0f;
  bool tie = false;
  std::vector<int> rope_sections;  // sums to hd / 2; empty = one section
  // Storage of the weight matrices and embeddings (norms and biases are always f32). bf16
  // halves the memory of a frozen base model; trained weights must be f32.
  DType dtype = DType::F32;
};

// The seven projections LoRA can target, in PEFT's module names.
enum Proj { kQ = 0, kK, kV, kO, kGate, kUp, kDown, kNumProj };
extern const char* const kProjNames[kNumProj];

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
  // DeepStack (Qwen3-VL): deepstack[l] (M, C) is added to the residual stream at the injected
  // rows after layer l, for l < K. Its gradient is not computed (it comes from a frozen tower).
  int K = 0;
  const float* deepstack = nullptr;  // (K, M, C)
  // LoRA dropout masks are drawn from this seed (deterministic); < 0 disables dropout.
  int64_t dropout_seed = -1;
};

struct ForwardResult {
  double loss_sum = 0;  // sum of token losses over kept targets
  int64_t kept = 0;     // targets that were not ignored
};

// Keys (after RoPE) and values of every layer for one sequence, for incremental decoding,
// in the decoder's backend memory.
//   k[l], v[l]  (capacity, KV, hd)
struct KvCache {
  int capacity = 0;
  int length = 0;       // tokens cached
  int next_pos = 0;     // default position of the next token (all RoPE sections)
  std::vector<Buf<float>> k, v;
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
  int n_hidden = 1;            // trailing rows whose hidden states are returned (1..n; 1: the last)
  int K = 0;                          // DeepStack layers (see Batch)
  const float* deepstack = nullptr;   // (K, M, C)
};

class Decoder {
 public:
  // Validates the config, makes the backend and allocates the parameters (zeros).
  // InvalidArgument with `error` set on a bad config; NoDevice when the backend is unavailable.
  static Status create(const DecoderConfig& cfg, const BackendOptions& backend, std::unique_ptr<Decoder>* out, std::string* error);

  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  const DecoderConfig& config() const { return cfg_; }
  ParamStore& params() { return *store_; }
  Backend& backend() { return *be_; }

  // Adds LoRA adapters (segment 1 of the store): A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's
  // kaiming_uniform(a=sqrt(5))), B = 0. Base weights become frozen. Replaces any previous adapters.
  Status enable_lora(const LoraConfig& lc, std::string* error);
  bool has_lora() const { return lora_.rank > 0; }
  const LoraConfig& lora_config() const { return lora_; }
  // Full fine-tuning: base weights get gradients (LoRA adapters too, if present). Fails for a
  // bf16 base (trained weights are kept in f32).
  Status set_train_base(bool on, std::string* error);
  bool train_base() const { return store_->segment_trainable(0); }

  // Forward pass (loss and, if logits_out (N, V) is given, every logit); no gradients.
  Status forward(const Batch& batch, ForwardResult* result, float* logits_out, std::string* error);
  // Forward and backward of loss_scale * (sum of token losses) (loss_scale < 0: 1 / kept
  // targets). The LM head's gradient is computed in the forward's pass over the vocabulary
  // (native/kernels/head.h). d_inject (M, C), if given, receives the gradient w.r.t. the
  // injected embeddings (=). Parameter gradients accumulate into params().
  Status forward_backward(const Batch& batch, float loss_scale, ForwardResult* result, float* d_inject, std::string* error);
  void zero_grad() { store_->zero_grad(); }

  // Allocates an empty cache for up to `capacity` tokens. OutOfMemory when it does not fit.
  Status init_cache(KvCache* cache, int capacity, std::string* error);
  // Runs n new tokens of one sequence through the model using and extending the cache
  // (no activations saved, no gradients). positions (S, n) or nullptr for next_pos..;
  // inject rows index into the n new tokens. logits_last (V) gets the last token's logits.
  Status infer(KvCache* cache, const int32_t* tokens, int n, const int32_t* positions, int M, const int32_t* inject_rows, const float* inject, float* logits_last, std::string* error, int K = 0,
               const float* deepstack = nullptr);
  // Several sequences in one forward pass (one matmul per layer over all their rows);
  // hidden_last (sum of n_hidden, C), host memory, gets each sequence's last n_hidden final-normed
  // hidden states in order (one row per sequence by default).
  Status infer_hidden_batch(const SeqInput* seqs, int n_seqs, float* hidden_last, std::string* error);
  // Language-model head on one hidden state (host memory): out[i] = logit of ids[i] (a sparse
  // head), or all V logits when ids == nullptr.
  void head_logits(const float* hidden, const int32_t* ids, int n_ids, float* out);

 private:
  Decoder(const DecoderConfig& cfg, std::unique_ptr<Backend> be);
  // Store indices of one layer's tensors (-1 for absent ones).
  struct LayerW {
    int ln1;          // (C)
    int w[kNumProj];  // q (NH*hd, C), k/v (KV*hd, C), o (C, NH*hd), gate/up (F, C), down (C, F)
    int bq, bk, bv;   // Qwen2 biases: (NH*hd), (KV*hd), (KV*hd)
    int qn, kn;       // Qwen3 q/k norms (hd)
    int ln2;          // (C)
  };
  struct Lora {
    const float* A = nullptr;  // (R, in)
    const float* B = nullptr;  // (out, R)
    float* dA = nullptr;
    float* dB = nullptr;
    const float* mask = nullptr;  // (N, in) dropout scale (0 or 1/(1-p)), or nullptr
  };
  Lora lora(int l, Proj p);
  ConstTensorRef W(int i) const { return store_->ref(i); }
  const float* F32(int i) const { return i < 0 ? nullptr : store_->f32(i); }
  float* G(int i) { return i < 0 ? nullptr : store_->grad(i); }
  void linear_forward(float* out, float* ax, const float* inp, ConstTensorRef W, const float* bias, const Lora& lo, int64_t N, int in, int outd);
  void linear_backward(float* dinp, float* dW, float* dbias, const float* dout, const float* inp, const float* ax, ConstTensorRef W, const Lora& lo, int64_t N, int in, int outd);
  // The layers of a training or evaluation forward, saving activations in acts_; then the
  // final norm. Host-side checks of the batch first.
  Status forward_layers(const Batch& b, std::string* error);
  Status backward_layers(float* d_inject, std::string* error);
  int head_index() const { return cfg_.tie ? embed_ : lm_head_; }

  DecoderConfig cfg_;
  std::unique_ptr<Backend> be_;  // never null after create()
  std::unique_ptr<ParamStore> store_;
  std::vector<LayerW> layers_;
  int embed_ = -1, norm_ = -1, lm_head_ = -1;
  std::vector<int> lora_a_, lora_b_;  // (L * kNumProj) store indices, -1 when not targeted
  LoraConfig lora_{0, 0, {}, 0};

  // Activations saved by forward_layers() for the backward.
  struct Acts;
  std::unique_ptr<Acts> acts_;
  // LoRA's temporaries in linear_forward/backward, reused from call to call; an allocation
  // that failed there is reported by the caller's next check (scratch_failed_).
  Buf<float> scratch_[4];
  bool scratch_failed_ = false;
};

}  // namespace vlatext
