// The thin N-API layer: argument checks, handles, async workers. All math
// lives in native/kernels; this file only converts between JavaScript and C++.
//
// Surface (typed in src/engine/addon.ts):
//   buildInfo() -> { version, simd, threadsDefault, cuda }
//   reduceSumRef(x: Float32Array) -> number                 scalar reference
//   new Runtime({ threads? })                               owns a thread pool
//     .threads, .reduceSum(x), .reduceSumAsync(x) -> Promise<number>, .dispose()
//   reduceSumCuda(x) -> number                              only in CUDA builds
//   new Decoder(config)                                     see native/napi/decoder_napi.cpp
#include <napi.h>

#include <atomic>
#include <memory>
#include <string>

#include "../core/status.h"
#include "../core/threadpool.h"
#include "../kernels/reduce.h"
#include "napi_util.h"
#ifdef VLATEXT_WITH_CUDA
#include "../cuda/reduce_cuda.h"
#endif

namespace {

using vlatext::Status;
using vlatext::ThreadPool;

constexpr const char* kVersion = "0.1.0";

Napi::Value throw_error(Napi::Env env, const std::string& msg) {
  Napi::Error::New(env, msg).ThrowAsJavaScriptException();
  return env.Undefined();
}

// A Float32Array argument, or nullptr after throwing a TypeError naming it.
bool get_f32(const Napi::CallbackInfo& info, size_t index, const char* name, const float** data, int64_t* n) {
  if (info.Length() <= index || !info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be a Float32Array").ThrowAsJavaScriptException();
    return false;
  }
  auto arr = info[index].As<Napi::Float32Array>();
  *data = arr.Data();
  *n = static_cast<int64_t>(arr.ElementLength());
  return true;
}

// Optional integer option `key` of an options object at info[index]; returns false after throwing.
bool get_int_option(const Napi::CallbackInfo& info, size_t index, const char* key, int min, int* out) {
  if (info.Length() <= index || info[index].IsUndefined()) return true;
  if (!info[index].IsObject()) {
    Napi::TypeError::New(info.Env(), "options must be an object").ThrowAsJavaScriptException();
    return false;
  }
  Napi::Value v = info[index].As<Napi::Object>().Get(key);
  if (v.IsUndefined()) return true;
  if (!v.IsNumber()) {
    Napi::TypeError::New(info.Env(), std::string("option '") + key + "' must be an integer >= " + std::to_string(min)).ThrowAsJavaScriptException();
    return false;
  }
  const double d = v.As<Napi::Number>().DoubleValue();
  if (d != static_cast<double>(static_cast<int>(d)) || d < min || d > 4096) {
    Napi::RangeError::New(info.Env(), std::string("option '") + key + "' must be an integer >= " + std::to_string(min) + ", got " + std::to_string(d)).ThrowAsJavaScriptException();
    return false;
  }
  *out = static_cast<int>(d);
  return true;
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", kVersion);
  o.Set("simd", vlatext::cpu_has_avx2() ? "avx2" : "scalar");
  o.Set("threadsDefault", ThreadPool::default_threads());
#ifdef VLATEXT_WITH_CUDA
  o.Set("cuda", true);
#else
  o.Set("cuda", false);
#endif
  return o;
}

Napi::Value ReduceSumRef(const Napi::CallbackInfo& info) {
  const float* x;
  int64_t n;
  if (!get_f32(info, 0, "x", &x, &n)) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), vlatext::reduce_sum_ref(x, n));
}

#ifdef VLATEXT_WITH_CUDA
Napi::Value ReduceSumCuda(const Napi::CallbackInfo& info) {
  const float* x;
  int64_t n;
  if (!get_f32(info, 0, "x", &x, &n)) return info.Env().Undefined();
  double out = 0;
  const Status st = vlatext::cuda_reduce_sum(x, n, &out);
  if (st != Status::Ok) return throw_error(info.Env(), std::string("reduceSumCuda: ") + vlatext::status_message(st));
  return Napi::Number::New(info.Env(), out);
}
#endif

class Runtime : public Napi::ObjectWrap<Runtime> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Runtime",
                       {InstanceAccessor<&Runtime::Threads>("threads"), InstanceMethod<&Runtime::ReduceSum>("reduceSum"),
                        InstanceMethod<&Runtime::ReduceSumAsync>("reduceSumAsync"), InstanceMethod<&Runtime::Dispose>("dispose")});
  }

  explicit Runtime(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Runtime>(info) {
    int threads = 0;
    if (!get_int_option(info, 0, "threads", 1, &threads)) return;
    pool_ = std::make_unique<ThreadPool>(threads);
  }

  ThreadPool* pool() { return pool_.get(); }
  std::atomic<int> in_flight{0};

 private:
  bool check_alive(Napi::Env env) {
    if (!pool_) {
      Napi::Error::New(env, "Runtime was disposed").ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }

  Napi::Value Threads(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), pool_ ? pool_->size() : 0);
  }

  Napi::Value ReduceSum(const Napi::CallbackInfo& info) {
    if (!check_alive(info.Env())) return info.Env().Undefined();
    const float* x;
    int64_t n;
    if (!get_f32(info, 0, "x", &x, &n)) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), vlatext::reduce_sum_mt(*pool_, x, n, 0));
  }

  Napi::Value ReduceSumAsync(const Napi::CallbackInfo& info);

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (in_flight.load() > 0) return throw_error(info.Env(), "Runtime.dispose(): calls are still running; await them first");
    pool_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<ThreadPool> pool_;
};

// Sums off the JavaScript thread. Holds references to the array and the
// Runtime so neither is collected while the work runs.
class ReduceWorker : public Napi::AsyncWorker {
 public:
  ReduceWorker(Napi::Env env, Runtime* rt, Napi::Object rt_obj, Napi::Float32Array arr)
      : Napi::AsyncWorker(env, "vlatext:reduceSum"), deferred_(Napi::Promise::Deferred::New(env)), rt_(rt) {
    rt_ref_ = Napi::Persistent(rt_obj);
    arr_ref_ = Napi::Persistent(static_cast<Napi::Object>(arr));
    x_ = arr.Data();
    n_ = static_cast<int64_t>(arr.ElementLength());
    rt_->in_flight++;
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override { result_ = vlatext::reduce_sum_mt(*rt_->pool(), x_, n_, 0); }
  void OnOK() override {
    rt_->in_flight--;
    deferred_.Resolve(Napi::Number::New(Env(), result_));
  }
  void OnError(const Napi::Error& e) override {
    rt_->in_flight--;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Runtime* rt_;
  Napi::ObjectReference rt_ref_;
  Napi::ObjectReference arr_ref_;
  const float* x_ = nullptr;
  int64_t n_ = 0;
  double result_ = 0;
};

Napi::Value Runtime::ReduceSumAsync(const Napi::CallbackInfo& info) {
  if (!check_alive(info.Env())) return info.Env().Undefined();
  const float* x;
  int64_t n;
  if (!get_f32(info, 0, "x", &x, &n)) return info.Env().Undefined();
  auto* w = new ReduceWorker(info.Env(), this, info.This().As<Napi::Object>(), info[0].As<Napi::Float32Array>());
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New<BuildInfo>(env, "buildInfo"));
  exports.Set("reduceSumRef", Napi::Function::New<ReduceSumRef>(env, "reduceSumRef"));
#ifdef VLATEXT_WITH_CUDA
  exports.Set("reduceSumCuda", Napi::Function::New<ReduceSumCuda>(env, "reduceSumCuda"));
#endif
  exports.Set("Runtime", Runtime::Define(env));
  vlatext_napi::RegisterDecoder(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(vlatext, Init)
