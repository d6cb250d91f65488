// Helpers shared by the N-API wrappers: argument readers, and the ONE error path. Every
// error thrown to JavaScript carries `status` (vlatext::status_name): a bad argument is a
// TypeError/RangeError with status "InvalidArgument", a failed native call an Error with
// the native Status, a disposed or busy handle "InvalidState". Async workers reject the
// same way (StatusWorker). src/engine/addon.ts turns `status` into the CLI's error codes.
// Each reader returns false after throwing (C++ exceptions are disabled).
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/status.h"
#include "../kernels/adamw.h"

namespace vlatext_napi {

using vlatext::Status;

inline void set_status(Napi::Env env, Napi::Error& e, Status st) { e.Set("status", Napi::String::New(env, vlatext::status_name(st))); }

// Throws Error(message) with .status; returns false.
inline bool fail(Napi::Env env, Status st, const std::string& m) {
  Napi::Error e = Napi::Error::New(env, m);
  set_status(env, e, st);
  e.ThrowAsJavaScriptException();
  return false;
}
inline bool type_error(Napi::Env env, const std::string& m) {
  Napi::Error e = Napi::TypeError::New(env, m);
  set_status(env, e, Status::InvalidArgument);
  e.ThrowAsJavaScriptException();
  return false;
}
inline bool range_error(Napi::Env env, const std::string& m) {
  Napi::Error e = Napi::RangeError::New(env, m);
  set_status(env, e, Status::InvalidArgument);
  e.ThrowAsJavaScriptException();
  return false;
}
// A disposed handle, or a synchronous call while an async one runs.
inline bool state_error(Napi::Env env, const std::string& m) { return fail(env, Status::InvalidState, m); }

// An AsyncWorker whose failures reject with .status: call Fail(status, message) in Execute().
class StatusWorker : public Napi::AsyncWorker {
 public:
  StatusWorker(Napi::Env env, const char* name) : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  void Fail(Status st, const std::string& m) {
    status_ = st;
    SetError(m);
  }
  // Called on the JS thread once the work ended, success or not (release in-flight counts here).
  virtual void Finish() {}
  void OnError(const Napi::Error& e) override {
    Finish();
    Napi::Error err = e;
    set_status(Env(), err, status_);
    deferred_.Reject(err.Value());
  }
  Napi::Promise::Deferred deferred_;
  Status status_ = Status::InvalidArgument;
};

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

// Optional string field: left unchanged when undefined.
inline bool get_string(Napi::Env env, Napi::Object o, const char* key, std::string* out) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return true;
  if (!v.IsString()) return type_error(env, std::string("'") + key + "' must be a string");
  *out = v.As<Napi::String>().Utf8Value();
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

// {lr, beta1, beta2, eps, weightDecay, maxGradNorm} options.
inline bool get_adamw(Napi::Env env, Napi::Value v, vlatext::AdamWConfig* c, float* max_norm) {
  if (!v.IsObject()) return type_error(env, "optimizer options must be an object {lr, beta1, beta2, eps, weightDecay, maxGradNorm}");
  Napi::Object o = v.As<Napi::Object>();
  return get_float(env, o, "lr", &c->lr) && get_float(env, o, "beta1", &c->beta1) && get_float(env, o, "beta2", &c->beta2) && get_float(env, o, "eps", &c->eps) &&
         get_float(env, o, "weightDecay", &c->weight_decay) && get_float(env, o, "maxGradNorm", max_norm);
}

void RegisterDecoder(Napi::Env env, Napi::Object exports);
void RegisterGeneration(Napi::Env env, Napi::Object exports);
void RegisterVision(Napi::Env env, Napi::Object exports);
void RegisterParamStore(Napi::Env env, Napi::Object exports);

}  // namespace vlatext_napi
