// N-API wrapper for vlatext::ParamStore (native/model/param_store.h): one class for every
// model's tensors. A ParamStore object is made by its owner (decoder.params,
// tower.params) and keeps the owner alive.
//   .info() -> [{name, shape, dtype: "f32" | "bf16", segment, trainable}]
//   .get(name) -> Float32Array, .set(name, Float32Array), .grad(name) -> Float32Array (zeros when frozen)
//   .loadSafetensors(file, [{name, dtype: 0 F32 | 1 F16 | 2 BF16, offset}])   mapped, converted to each tensor's storage type
//   .zeroGrad(), .gradSqNorm(), .numElements, .trainableSize, .bytes, .step
//   .getOptimizerState() -> {step, m, v}, .setOptimizerState({step, m, v})
// and the addon function optimizerStep([stores], {lr, beta1, beta2, eps, weightDecay, maxGradNorm}) -> global norm.
#include <napi.h>

#include <cstring>
#include <string>
#include <vector>

#include "../io/safetensors.h"
#include "handles.h"
#include "napi_util.h"

namespace vlatext_napi {

using vlatext::ParamStore;

class ParamStoreWrap : public Napi::ObjectWrap<ParamStoreWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "ParamStore",
                                   {InstanceMethod<&ParamStoreWrap::Info>("info"), InstanceMethod<&ParamStoreWrap::Get>("get"), InstanceMethod<&ParamStoreWrap::Set>("set"),
                                    InstanceMethod<&ParamStoreWrap::Grad>("grad"), InstanceMethod<&ParamStoreWrap::LoadSafetensors>("loadSafetensors"),
                                    InstanceMethod<&ParamStoreWrap::ZeroGrad>("zeroGrad"), InstanceMethod<&ParamStoreWrap::GradSqNorm>("gradSqNorm"),
                                    InstanceMethod<&ParamStoreWrap::GetOptimizerState>("getOptimizerState"), InstanceMethod<&ParamStoreWrap::SetOptimizerState>("setOptimizerState"),
                                    InstanceAccessor<&ParamStoreWrap::NumElements>("numElements"), InstanceAccessor<&ParamStoreWrap::TrainableSize>("trainableSize"),
                                    InstanceAccessor<&ParamStoreWrap::Bytes>("bytes"), InstanceAccessor<&ParamStoreWrap::Step>("step")});
    addon_data(env).store_ctor = Napi::Persistent(f);
    return f;
  }

  // new ParamStore(External<StoreOwner>, ownerObject): only new_param_store() calls this
  explicit ParamStoreWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ParamStoreWrap>(info) {
    if (info.Length() < 2 || !info[0].IsExternal() || !info[1].IsObject()) {
      type_error(info.Env(), "a ParamStore comes from its model (decoder.params, tower.params); it cannot be made directly");
      return;
    }
    owner_ = info[0].As<Napi::External<StoreOwner>>().Data();
    owner_ref_ = Napi::Persistent(info[1].As<Napi::Object>());
  }

  // The store, or nullptr after throwing (owner disposed or busy).
  ParamStore* store(Napi::Env env) {
    ParamStore* s = owner_ ? owner_->owned_store() : nullptr;
    if (!s) return state_error(env, std::string(owner_ ? owner_->owner_name() : "model") + " was disposed; its parameters are gone"), nullptr;
    if (owner_->owner_busy()) return state_error(env, std::string(owner_->owner_name()) + " is busy with an async call; await it first"), nullptr;
    return s;
  }

 private:
  // The tensor named by info[0], or -1 after throwing.
  int tensor(const Napi::CallbackInfo& info, ParamStore* s) {
    if (info.Length() < 1 || !info[0].IsString()) return type_error(info.Env(), "the tensor name must be a string"), -1;
    const std::string name = info[0].As<Napi::String>();
    const int i = s->index_of(name);
    if (i < 0) fail(info.Env(), Status::InvalidArgument, std::string("no tensor named '") + name + "' in the " + owner_->owner_name() + "'s parameters");
    return i;
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ParamStore* s = store(env);
    if (!s) return env.Undefined();
    const auto& ts = s->tensors();
    Napi::Array a = Napi::Array::New(env, ts.size());
    for (size_t i = 0; i < ts.size(); i++) {
      Napi::Object t = Napi::Object::New(env);
      t.Set("name", ts[i].name);
      Napi::Array shape = Napi::Array::New(env, ts[i].shape.size());
      for (size_t d = 0; d < ts[i].shape.size(); d++) shape.Set((uint32_t)d, (double)ts[i].shape[d]);
      t.Set("shape", shape);
      t.Set("dtype", vlatext::dtype_name(ts[i].dtype));
      t.Set("segment", ts[i].segment);
      t.Set("trainable", ts[i].trainable);
      a.Set((uint32_t)i, t);
    }
    return a;
  }

  Napi::Value Get(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ParamStore* s = store(env);
    const int i = s ? tensor(info, s) : -1;
    if (i < 0) return env.Undefined();
    auto out = Napi::Float32Array::New(env, (size_t)s->tensors()[(size_t)i].size);
    s->get(i, out.Data());
    return out;
  }

  Napi::Value Grad(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ParamStore* s = store(env);
    const int i = s ? tensor(info, s) : -1;
    if (i < 0) return env.Undefined();
    auto out = Napi::Float32Array::New(env, (size_t)s->tensors()[(size_t)i].size);
    s->get_grad(i, out.Data());
    return out;
  }

  Napi::Value Set(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ParamStore* s = store(env);
    const int i = s ? tensor(info, s) : -1;
    if (i < 0) return env.Undefined();
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      return type_error(env, "set(name, data): data must be a Float32Array"), env.Undefined();
    auto arr = info[1].As<Napi::Float32Array>();
    const vlatext::ParamTensor& t = s->tensors()[(size_t)i];
    if ((int64_t)arr.ElementLength() != t.size) return range_error(env, "tensor '" + t.name + "' has " + std::to_string(t.size) + " values, got " + std::to_string(arr.ElementLength())), env.Undefined();
    s->set(i, arr.Data());
    return env.Undefined();
  }

  // loadSafetensors(file, entries): maps the file once and fills each named tensor (its size
  // comes from the store; the caller has checked the header's shape against it).
  Napi::Value LoadSafetensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ParamStore* s = store(env);
    if (!s) return env.Undefined();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray()) return type_error(env, "loadSafetensors(file, entries): needs a path and an array"), env.Undefined();
    const std::string file = info[0].As<Napi::String>();
    vlatext::MappedFile mf;
    std::string err;
    const Status os = mf.open(file, &err);
    if (os != Status::Ok) return fail(env, os, err), env.Undefined();
    Napi::Array entries = info[1].As<Napi::Array>();
    for (uint32_t k = 0; k < entries.Length(); k++) {
      if (!entries.Get(k).IsObject()) return type_error(env, "loadSafetensors: each entry must be {name, dtype, offset}"), env.Undefined();
      Napi::Object e = entries.Get(k).As<Napi::Object>();
      std::string name;
      int dtype = 0;
      if (!get_string(env, e, "name", &name) || !get_int(env, e, "dtype", 0, &dtype)) return env.Undefined();
      if (dtype > 2) return range_error(env, "loadSafetensors: dtype of '" + name + "' must be 0 (F32), 1 (F16) or 2 (BF16)"), env.Undefined();
      const Napi::Value off = e.Get("offset");
      if (!off.IsNumber() || off.As<Napi::Number>().DoubleValue() < 0) return type_error(env, "loadSafetensors: offset of '" + name + "' must be a byte offset >= 0"), env.Undefined();
      const int i = s->index_of(name);
      if (i < 0) return fail(env, Status::InvalidArgument, "loadSafetensors: no tensor named '" + name + "'"), env.Undefined();
      const Status st = s->load(i, mf, (size_t)off.As<Napi::Number>().DoubleValue(), (vlatext::StDtype)dtype, &err);
      if (st != Status::Ok) return fail(env, st, file + ": tensor '" + name + "': " + err), env.Undefined();
    }
    return env.Undefined();
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    if (ParamStore* s = store(info.Env())) s->zero_grad();
    return info.Env().Undefined();
  }
  Napi::Value GradSqNorm(const Napi::CallbackInfo& info) {
    ParamStore* s = store(info.Env());
    return s ? Napi::Number::New(info.Env(), s->grad_sq_norm()) : info.Env().Undefined();
  }

  // {step, m, v}: AdamW's moments over the trained tensors in table order, for checkpoints.
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ParamStore* s = store(env);
    if (!s) return env.Undefined();
    std::vector<float> m, v;
    s->optimizer_state(&m, &v);
    Napi::Object o = Napi::Object::New(env);
    o.Set("step", s->step());
    auto jm = Napi::Float32Array::New(env, m.size());
    auto jv = Napi::Float32Array::New(env, v.size());
    std::copy(m.begin(), m.end(), jm.Data());
    std::copy(v.begin(), v.end(), jv.Data());
    o.Set("m", jm);
    o.Set("v", jv);
    return o;
  }

  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    ParamStore* s = store(env);
    if (!s) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsObject()) return type_error(env, "setOptimizerState({step, m, v})"), env.Undefined();
    Napi::Object o = info[0].As<Napi::Object>();
    int step = 0;
    std::vector<float> m, v;
    if (!get_int(env, o, "step", 0, &step) || !get_f32_array(env, o, "m", -1, &m) || !get_f32_array(env, o, "v", -1, &v)) return env.Undefined();
    std::string err;
    const Status st = s->set_optimizer_state(step, m, v, &err);
    if (st != Status::Ok) return fail(env, st, "setOptimizerState: " + err), env.Undefined();
    return env.Undefined();
  }

  Napi::Value NumElements(const Napi::CallbackInfo& info) {
    ParamStore* s = owner_ ? owner_->owned_store() : nullptr;
    return Napi::Number::New(info.Env(), s ? (double)s->num_elements() : 0);
  }
  Napi::Value TrainableSize(const Napi::CallbackInfo& info) {
    ParamStore* s = owner_ ? owner_->owned_store() : nullptr;
    return Napi::Number::New(info.Env(), s ? (double)s->trainable_size() : 0);
  }
  Napi::Value Bytes(const Napi::CallbackInfo& info) {
    ParamStore* s = owner_ ? owner_->owned_store() : nullptr;
    return Napi::Number::New(info.Env(), s ? (double)s->bytes() : 0);
  }
  Napi::Value Step(const Napi::CallbackInfo& info) {
    ParamStore* s = owner_ ? owner_->owned_store() : nullptr;
    return Napi::Number::New(info.Env(), s ? s->step() : 0);
  }

  StoreOwner* owner_ = nullptr;
  Napi::ObjectReference owner_ref_;
};

Napi::Value new_param_store(Napi::Env env, StoreOwner* owner, Napi::Object owner_obj) {
  return addon_data(env).store_ctor.New({Napi::External<StoreOwner>::New(env, owner), owner_obj});
}

namespace {

// optimizerStep(stores: ParamStore[], options): one AdamW step over every trained tensor of
// all the stores, clipped by one global norm; returns that norm (before clipping).
Napi::Value OptimizerStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArray()) return type_error(env, "optimizerStep(stores: ParamStore[], options)"), env.Undefined();
  Napi::Array arr = info[0].As<Napi::Array>();
  const Napi::FunctionReference& ctor = addon_data(env).store_ctor;
  std::vector<ParamStore*> stores;
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr.Get(i);
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(ctor.Value())) return type_error(env, "optimizerStep: stores[" + std::to_string(i) + "] is not a ParamStore"), env.Undefined();
    ParamStore* s = Napi::ObjectWrap<ParamStoreWrap>::Unwrap(v.As<Napi::Object>())->store(env);
    if (!s) return env.Undefined();
    for (ParamStore* o : stores)
      if (o == s) return range_error(env, "optimizerStep: stores[" + std::to_string(i) + "] appears twice"), env.Undefined();
    stores.push_back(s);
  }
  vlatext::AdamWConfig c{1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f};
  float max_norm = 0;
  if (!get_adamw(env, info[1], &c, &max_norm)) return env.Undefined();
  return Napi::Number::New(env, vlatext::optimizer_step(stores.data(), (int)stores.size(), c, max_norm));
}

}  // namespace

void RegisterParamStore(Napi::Env env, Napi::Object exports) {
  exports.Set("ParamStore", ParamStoreWrap::Define(env));
  exports.Set("optimizerStep", Napi::Function::New<OptimizerStep>(env, "optimizerStep"));
}

}  // namespace vlatext_napi
