// Argument helpers shared by the N-API wrappers. Each returns false after throwing a
// JavaScript error that names the bad argument (C++ exceptions are disabled).
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../kernels/adamw.h"

namespace vlatext_napi {

inline bool type_error(Napi::Env env, const std::string& m) {
  Napi::TypeError::New(env, m).ThrowAsJavaScriptException();
  return false;
}
inline bool range_error(Napi::Env env, const std::string& m) {
  Napi::RangeError::New(env, m).ThrowAsJavaScriptException();
  return false;
}
inline bool error(Napi::Env env, const std::string& m) {
  Napi::Error::New(env, m).ThrowAsJavaScriptException();
  return false;
}

// Optional integer field: left unchanged when undefined.
inline bool get_int(Napi::Env env, Napi::Object o, const char* key, int min, int* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return true;
  if (v.IsBoolean()) {
    *out = v.As<Napi::Boolean>().Value() ? 1 : 0;
    return true;
  }
  if (!v.IsNumber()) return type_error(env, std::string("'") + key + "' must be an integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != std::floor(d) || d < min || d > 2147483647.0) return range_error(env, std::string("'") + key + "' must be an integer >= " + std::to_string(min) + ", got " + std::to_string(d));
  *out = (int)d;
  return true;
}

// Optional number field: left unchanged when undefined.
inline bool get_float(Napi::Env env, Napi::Object o, const char* key, float* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return true;
  if (!v.IsNumber() || !std::isfinite(v.As<Napi::Number>().DoubleValue())) return type_error(env, std::string("'") + key + "' must be a finite number");
  *out = v.As<Napi::Number>().FloatValue();
  return true;
}

// Int32Array field copied out; expected < 0 accepts any length.
inline bool get_i32_array(Napi::Env env, Napi::Object o, const char* key, int64_t expected, std::vector<int32_t>* out, bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return required ? type_error(env, std::string("'") + key + "' is required (Int32Array)") : true;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) return type_error(env, std::string("'") + key + "' must be an Int32Array");
  auto a = v.As<Napi::Int32Array>();
  if (expected >= 0 && (int64_t)a.ElementLength() != expected) return range_error(env, std::string("'") + key + "' has " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(expected));
  out->assign(a.Data(), a.Data() + a.ElementLength());
  return true;
}

inline bool get_f32_array(Napi::Env env, Napi::Object o, const char* key, int64_t expected, std::vector<float>* out) {
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) return type_error(env, std::string("'") + key + "' must be a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  if (expected >= 0 && (int64_t)a.ElementLength() != expected) return range_error(env, std::string("'") + key + "' has " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(expected));
  out->assign(a.Data(), a.Data() + a.ElementLength());
  return true;
}

// [{name, shape}] for a parameter table (Decoder, LoRA, VisionTower).
template <typename Info>
Napi::Array tensor_infos(Napi::Env env, const std::vector<Info>& ts) {
  Napi::Array a = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("name", ts[i].name);
    Napi::Array shape = Napi::Array::New(env, ts[i].shape.size());
    for (size_t d = 0; d < ts[i].shape.size(); d++) shape.Set((uint32_t)d, (double)ts[i].shape[d]);
    t.Set("shape", shape);
    a.Set((uint32_t)i, t);
  }
  return a;
}

void RegisterDecoder(Napi::Env env, Napi::Object exports);
void RegisterGeneration(Napi::Env env, Napi::Object exports);
void RegisterVision(Napi::Env env, Napi::Object exports);

// optimizerStep({lr, beta1, beta2, eps, weightDecay, maxGradNorm, extraSqNorm?}) options.
inline bool get_adamw(Napi::Env env, const Napi::CallbackInfo& info, vlatext::AdamWConfig* c, float* max_norm, float* extra_sq) {
  if (info.Length() < 1 || !info[0].IsObject()) return type_error(env, "optimizerStep(options): options must be an object");
  Napi::Object o = info[0].As<Napi::Object>();
  return get_float(env, o, "lr", &c->lr) && get_float(env, o, "beta1", &c->beta1) && get_float(env, o, "beta2", &c->beta2) && get_float(env, o, "eps", &c->eps) &&
         get_float(env, o, "weightDecay", &c->weight_decay) && get_float(env, o, "maxGradNorm", max_norm) && get_float(env, o, "extraSqNorm", extra_sq);
}

// AdamW's state as JavaScript sees it: {step, m: Float32Array, v: Float32Array}.
inline Napi::Object optimizer_state(Napi::Env env, int step, const std::vector<float>& m, const std::vector<float>& v) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("step", step);
  auto jm = Napi::Float32Array::New(env, m.size());
  auto jv = Napi::Float32Array::New(env, v.size());
  std::copy(m.begin(), m.end(), jm.Data());
  std::copy(v.begin(), v.end(), jv.Data());
  o.Set("m", jm);
  o.Set("v", jv);
  return o;
}

// setOptimizerState({step, m, v}) argument.
inline bool get_optimizer_state(Napi::Env env, const Napi::CallbackInfo& info, int* step, std::vector<float>* m, std::vector<float>* v) {
  if (info.Length() < 1 || !info[0].IsObject()) return type_error(env, "setOptimizerState({step, m, v})");
  Napi::Object o = info[0].As<Napi::Object>();
  if (!get_int(env, o, "step", 0, step) || !get_f32_array(env, o, "m", -1, m) || !get_f32_array(env, o, "v", -1, v)) return false;
  if (m->size() != v->size()) return range_error(env, "setOptimizerState: m and v differ in length");
  return true;
}

}  // namespace vlatext_napi
