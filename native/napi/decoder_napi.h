// Shared between the N-API decoder wrapper (decoder_napi.cpp) and the generation
// wrappers (generate_napi.cpp): the decoder's native state as both see it, and the
// per-environment constructors used for instanceof checks.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

#include "../model/decoder.h"

namespace vlatext_napi {

// What a JS Decoder object holds: the model (null once disposed) and the number of
// async calls using it (no synchronous call may touch the model while one runs).
struct DecoderState {
  std::unique_ptr<vlatext::Decoder> model_;
  std::atomic<int> in_flight{0};
};

// Per-environment addon state (worker threads each get their own): the class
// constructors needed for instanceof checks. Freed by N-API when the environment ends.
struct AddonData {
  Napi::FunctionReference decoder_ctor, automaton_ctor;
};
AddonData& addon_data(Napi::Env env);

// The DecoderState of a JS Decoder object; null (with a TypeError thrown) for anything else.
DecoderState* unwrap_decoder(Napi::Env env, Napi::Value v);

// decoder.generateConstrainedAsync(...), see generate_napi.cpp; `self` is the Decoder object.
Napi::Value generate_constrained_async(const Napi::CallbackInfo& info, DecoderState* d, Napi::Object self);

}  // namespace vlatext_napi
