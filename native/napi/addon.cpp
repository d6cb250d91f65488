// The thin N-API layer: argument checks, handles, async workers. All math
// lives in native/kernels; this file only converts between JavaScript and C++.
//
// Surface (typed in src/engine/addon.ts, NativeAddon):
//   buildInfo() -> { version, simd, threadsDefault, cuda }
//   reduceSumRef(x: Float32Array) -> number                       scalar reference
//   reduceSum(x, { threads?, simd? }) -> number                   pool made for the call;
//                                                                 simd "avx2" | "scalar" forces a kernel
//   reduceSumAsync(x, { threads?, simd? }) -> Promise<number>     same, off the JS thread
//   new Runtime({ threads? })                                     owns a thread pool
//     .threads, .reduceSum(x), .reduceSumAsync(x) -> Promise<number>, .dispose()
//   reduceSumCuda(x) -> number                                    only in CUDA builds
//   new Decoder(config) ...                                       see native/napi/decoder_napi.cpp
//
// Errors: bad arguments throw TypeError/RangeError whose message names the argument;
// a failed native call throws Error with `status` set to vlatext::status_name(...).
// C++ exceptions: node-addon-api is built with NAPI_DISABLE_CPP_EXCEPTIONS, and no
// C++ exception leaves this file (ThreadPool::create returns a Status).
#include <napi.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <string>

#include "../core/cpu.h"
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
constexpr int kMaxThreads = 4096;

// Throws Error("<what>: <status message>") with .status = "<StatusName>".
Napi::Value throw_status(Napi::Env env, const std::string& what, Status st) {
  vlatext_napi::fail(env, st, what + ": " + vlatext::status_message(st));
  return env.Undefined();
}

// Float32Array argument `name` at info[index]; returns false after throwing a TypeError.
bool get_f32(const Napi::CallbackInfo& info, size_t index, const char* name, Napi::Float32Array* out) {
  if (info.Length() <= index || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    vlatext_napi::type_error(info.Env(), std::string("argument '") + name + "' must be a Float32Array");
    return false;
  }
  *out = info[index].As<Napi::Float32Array>();
  return true;
}

struct Options {
  int threads = 0;  // 0: hardware_concurrency
  vlatext::Simd simd = vlatext::Simd::Auto;
};

// The options object at info[index]: { threads?, simd? } (simd only when allow_simd).
// Returns false after throwing a TypeError/RangeError that names the option.
bool get_options(const Napi::CallbackInfo& info, size_t index, bool allow_simd, Options* out) {
  Napi::Env env = info.Env();
  if (info.Length() <= index || info[index].IsUndefined()) return true;
  if (!info[index].IsObject()) {
    vlatext_napi::type_error(env, "argument 'options' must be an object like { threads: 4 }");
    return false;
  }
  Napi::Object o = info[index].As<Napi::Object>();
  Napi::Value v = o.Get("threads");
  if (!v.IsUndefined()) {
    const std::string want = "option 'threads' must be an integer in [1, " + std::to_string(kMaxThreads) + "]";
    if (!v.IsNumber()) {
      const char* got = v.IsString() ? "a string" : v.IsBoolean() ? "a boolean" : v.IsNull() ? "null" : "a non-number";
      vlatext_napi::type_error(env, want + ", got " + got);
      return false;
    }
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < 1 || d > kMaxThreads) {
      vlatext_napi::range_error(env, want + ", got " + v.ToString().Utf8Value());
      return false;
    }
    out->threads = static_cast<int>(d);
  }
  if (!allow_simd) return true;
  v = o.Get("simd");
  if (v.IsUndefined()) return true;
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  if (s == "scalar") {
    out->simd = vlatext::Simd::Scalar;
  } else if (s == "avx2") {
    if (!vlatext::cpu_has_avx2()) {
      vlatext_napi::range_error(env, "option 'simd' is \"avx2\" but this CPU lacks AVX2/FMA; use \"scalar\" or leave it out");
      return false;
    }
    out->simd = vlatext::Simd::Avx2;
  } else {
    vlatext_napi::type_error(env, "option 'simd' must be \"avx2\" or \"scalar\" (or absent for the best available)");
    return false;
  }
  return true;
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", kVersion);
  o.Set("simd", vlatext::cpu_has_avx2() ? "avx2" : "scalar");
  o.Set("isa", vlatext::isa_name(vlatext::cpu_best_isa()));
  o.Set("threadsDefault", ThreadPool::default_threads());
#ifdef VLATEXT_WITH_CUDA
  o.Set("cuda", true);
#else
  o.Set("cuda", false);
#endif
  return o;
}

Napi::Value ReduceSumRef(const Napi::CallbackInfo& info) {
  Napi::Float32Array x;
  if (!get_f32(info, 0, "x", &x)) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), vlatext::reduce_sum_ref(x.Data(), static_cast<int64_t>(x.ElementLength())));
}

// reduceSum(x, { threads, simd }): a pool of `threads` made for this call (no state kept).
Napi::Value ReduceSum(const Napi::CallbackInfo& info) {
  Napi::Float32Array x;
  Options opt;
  if (!get_f32(info, 0, "x", &x) || !get_options(info, 1, true, &opt)) return info.Env().Undefined();
  std::unique_ptr<ThreadPool> pool;
  Status st = ThreadPool::create(opt.threads, &pool);
  double sum = 0;
  if (st == Status::Ok) st = vlatext::reduce_sum_mt(&sum, *pool, x.Data(), static_cast<int64_t>(x.ElementLength()), 0, opt.simd);
  if (st != Status::Ok) return throw_status(info.Env(), "reduceSum", st);
  return Napi::Number::New(info.Env(), sum);
}

#ifdef VLATEXT_WITH_CUDA
Napi::Value ReduceSumCuda(const Napi::CallbackInfo& info) {
  Napi::Float32Array x;
  if (!get_f32(info, 0, "x", &x)) return info.Env().Undefined();
  double out = 0;
  const Status st = vlatext::cuda_reduce_sum(x.Data(), static_cast<int64_t>(x.ElementLength()), &out);
  if (st != Status::Ok) return throw_status(info.Env(), "reduceSumCuda", st);
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
    Options opt;
    if (!get_options(info, 0, false, &opt)) return;
    const Status st = ThreadPool::create(opt.threads, &pool_);
    if (st != Status::Ok) throw_status(info.Env(), "Runtime", st);
  }

  ThreadPool* pool() { return pool_.get(); }
  std::atomic<int> in_flight{0};

 private:
  bool check_alive(Napi::Env env) {
    if (!pool_) {
      vlatext_napi::state_error(env, "Runtime was disposed");
      return false;
    }
    return true;
  }

  Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), pool_ ? pool_->size() : 0); }

  Napi::Value ReduceSum(const Napi::CallbackInfo& info) {
    Napi::Float32Array x;
    if (!check_alive(info.Env()) || !get_f32(info, 0, "x", &x)) return info.Env().Undefined();
    double sum = 0;
    const Status st = vlatext::reduce_sum_mt(&sum, *pool_, x.Data(), static_cast<int64_t>(x.ElementLength()), 0);
    if (st != Status::Ok) return throw_status(info.Env(), "reduceSum", st);
    return Napi::Number::New(info.Env(), sum);
  }

  Napi::Value ReduceSumAsync(const Napi::CallbackInfo& info);

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (in_flight.load() > 0) {
      vlatext_napi::state_error(info.Env(), "Runtime.dispose(): calls are still running; await them first");
      return info.Env().Undefined();
    }
    pool_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<ThreadPool> pool_;
};

// Sums off the JavaScript thread, on a Runtime's pool or on a pool of `threads`
// made inside Execute. Holds references to the array (and the Runtime) so neither is
// collected while the work runs; the caller must not resize or transfer the buffer.
class ReduceWorker : public Napi::AsyncWorker {
 public:
  ReduceWorker(Napi::Env env, Napi::Float32Array arr, Runtime* rt, Napi::Object rt_obj, Options opt)
      : Napi::AsyncWorker(env, "vlatext:reduceSum"), deferred_(Napi::Promise::Deferred::New(env)), rt_(rt), opt_(opt) {
    if (rt_) {
      rt_ref_ = Napi::Persistent(rt_obj);
      rt_->in_flight++;
    }
    arr_ref_ = Napi::Persistent(static_cast<Napi::Object>(arr));
    x_ = arr.Data();
    n_ = static_cast<int64_t>(arr.ElementLength());
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    ThreadPool* pool = rt_ ? rt_->pool() : nullptr;
    std::unique_ptr<ThreadPool> own;
    if (!pool) {
      status_ = ThreadPool::create(opt_.threads, &own);
      pool = own.get();
    }
    if (status_ == Status::Ok) status_ = vlatext::reduce_sum_mt(&result_, *pool, x_, n_, 0, opt_.simd);
  }
  void OnOK() override {
    if (rt_) rt_->in_flight--;
    if (status_ != Status::Ok) {
      Napi::Error e = Napi::Error::New(Env(), std::string("reduceSumAsync: ") + vlatext::status_message(status_));
      e.Set("status", Napi::String::New(Env(), vlatext::status_name(status_)));
      deferred_.Reject(e.Value());
      return;
    }
    deferred_.Resolve(Napi::Number::New(Env(), result_));
  }
  void OnError(const Napi::Error& e) override {
    if (rt_) rt_->in_flight--;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Runtime* rt_;
  Options opt_;
  Napi::ObjectReference rt_ref_;
  Napi::ObjectReference arr_ref_;
  const float* x_ = nullptr;
  int64_t n_ = 0;
  double result_ = 0;
  Status status_ = Status::Ok;
};

Napi::Value Runtime::ReduceSumAsync(const Napi::CallbackInfo& info) {
  Napi::Float32Array x;
  if (!check_alive(info.Env()) || !get_f32(info, 0, "x", &x)) return info.Env().Undefined();
  auto* w = new ReduceWorker(info.Env(), x, this, info.This().As<Napi::Object>(), Options());
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// reduceSumAsync(x, { threads, simd }) -> Promise<number>
Napi::Value ReduceSumAsync(const Napi::CallbackInfo& info) {
  Napi::Float32Array x;
  Options opt;
  if (!get_f32(info, 0, "x", &x) || !get_options(info, 1, true, &opt)) return info.Env().Undefined();
  auto* w = new ReduceWorker(info.Env(), x, nullptr, Napi::Object(), opt);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("buildInfo", Napi::Function::New<BuildInfo>(env, "buildInfo"));
  exports.Set("reduceSumRef", Napi::Function::New<ReduceSumRef>(env, "reduceSumRef"));
  exports.Set("reduceSum", Napi::Function::New<ReduceSum>(env, "reduceSum"));
  exports.Set("reduceSumAsync", Napi::Function::New<ReduceSumAsync>(env, "reduceSumAsync"));
#ifdef VLATEXT_WITH_CUDA
  exports.Set("reduceSumCuda", Napi::Function::New<ReduceSumCuda>(env, "reduceSumCuda"));
#endif
  exports.Set("Runtime", Runtime::Define(env));
  vlatext_napi::RegisterDecoder(env, exports);
  vlatext_napi::RegisterGeneration(env, exports);
  vlatext_napi::RegisterVision(env, exports);
  vlatext_napi::RegisterParamStore(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(vlatext, Init)
