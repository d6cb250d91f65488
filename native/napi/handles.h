// State shared between the N-API wrappers: what a JS Decoder holds (the generation and
// KV-cache wrappers use it too), what a JS ParamStore needs of the handle that owns it, and
// the per-environment class constructors used for instanceof checks.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>
#include <vector>

#include "../model/decoder.h"
#include "../model/param_store.h"

namespace vlatext_napi {

// What a ParamStore object needs of its owner (a Decoder or a VisionTower): the store
// (nullptr once the owner is disposed) and whether an async call is using it.
struct StoreOwner {
  virtual ~StoreOwner() = default;
  virtual vlatext::ParamStore* owned_store() = 0;
  virtual bool owner_busy() const = 0;
  virtual const char* owner_name() const = 0;
};

// What a JS Decoder object holds: the model (null once disposed), the number of async calls
// using it (no synchronous call may touch the model while one runs), and the KV caches made
// on it (their memory is the decoder backend's: dispose() frees them first).
struct DecoderState : StoreOwner {
  std::unique_ptr<vlatext::Decoder> model_;
  std::atomic<int> in_flight{0};
  std::vector<vlatext::KvCache*> caches;
  vlatext::ParamStore* owned_store() override { return model_ ? &model_->params() : nullptr; }
  bool owner_busy() const override { return in_flight.load() > 0; }
  const char* owner_name() const override { return "Decoder"; }
};

// Per-environment addon state (worker threads each get their own). Freed by N-API when the environment ends.
struct AddonData {
  Napi::FunctionReference decoder_ctor, automaton_ctor, store_ctor;
};
AddonData& addon_data(Napi::Env env);

// The DecoderState of a JS Decoder object; null (with a TypeError thrown) for anything else.
DecoderState* unwrap_decoder(Napi::Env env, Napi::Value v);

// decoder.generateConstrainedAsync(...), see generate_napi.cpp; `self` is the Decoder object.
Napi::Value generate_constrained_async(const Napi::CallbackInfo& info, DecoderState* d, Napi::Object self);

// The backend and storage options of a model's config object: {device?: "cpu" | "cuda",
// threads?, isa?} and {dtype?: "f32" | "bf16"} (decoder_napi.cpp). False after throwing.
bool read_backend(Napi::Env env, Napi::Object o, vlatext::BackendOptions* b);
bool read_dtype(Napi::Env env, Napi::Object o, vlatext::DType* d);

// A new JS ParamStore over `owner`'s store; it keeps owner_obj alive.
Napi::Value new_param_store(Napi::Env env, StoreOwner* owner, Napi::Object owner_obj);

}  // namespace vlatext_napi
