// N-API wrapper for vlatext::Decoder (native/model/decoder.h): parameters, LoRA,
// optimizer, forward, and forward + backward on a worker thread. Argument checks and
// conversions only. Generation and the KV cache are in generate_napi.cpp.
#include <napi.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../io/safetensors.h"
#include "../model/decoder.h"
#include "decoder_napi.h"
#include "napi_util.h"

namespace vlatext_napi {

using vlatext::Batch;
using vlatext::Decoder;
using vlatext::DecoderConfig;
using vlatext::Status;

namespace {

// Owned copies of a batch's arrays (so a worker thread can read them safely).
struct OwnedBatch {
  int B = 0, T = 0;
  std::vector<int32_t> tokens, targets, positions, inject_rows;
  std::vector<float> inject;
  bool has_targets = false, has_positions = false;
  int64_t dropout_seed = -1;
  Batch view() const {
    Batch b;
    b.B = B;
    b.T = T;
    b.tokens = tokens.data();
    b.targets = has_targets ? targets.data() : nullptr;
    b.positions = has_positions ? positions.data() : nullptr;
    b.M = (int)inject_rows.size();
    b.inject_rows = inject_rows.data();
    b.inject = inject.data();
    b.dropout_seed = dropout_seed;
    return b;
  }
};

bool read_batch(Napi::Env env, Napi::Value v, const DecoderConfig& cfg, OwnedBatch* out) {
  if (!v.IsObject()) return type_error(env, "batch must be an object {B, T, tokens, targets?, positions?, injectRows?, inject?}");
  Napi::Object o = v.As<Napi::Object>();
  if (!get_int(env, o, "B", 1, &out->B) || !get_int(env, o, "T", 1, &out->T)) return false;
  const int64_t N = (int64_t)out->B * out->T;
  if (!get_i32_array(env, o, "tokens", N, &out->tokens, true)) return false;
  if (o.Has("targets") && !o.Get("targets").IsUndefined()) {
    if (!get_i32_array(env, o, "targets", N, &out->targets, true)) return false;
    out->has_targets = true;
  }
  const int S = cfg.rope_sections.empty() ? 1 : (int)cfg.rope_sections.size();
  if (o.Has("positions") && !o.Get("positions").IsUndefined()) {
    if (!get_i32_array(env, o, "positions", S * N, &out->positions, true)) return false;
    out->has_positions = true;
  }
  if (o.Has("injectRows") && !o.Get("injectRows").IsUndefined()) {
    if (!get_i32_array(env, o, "injectRows", -1, &out->inject_rows, true)) return false;
    if (!get_f32_array(env, o, "inject", (int64_t)out->inject_rows.size() * cfg.C, &out->inject)) return false;
  }
  int seed = -1;
  if (!get_int(env, o, "dropoutSeed", -1, &seed)) return false;
  out->dropout_seed = seed;
  return true;
}

}  // namespace

class DecoderWrap : public Napi::ObjectWrap<DecoderWrap>, public DecoderState {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Decoder",
                       {InstanceMethod<&DecoderWrap::ParamInfo>("paramInfo"), InstanceMethod<&DecoderWrap::LoraInfo>("loraInfo"),
                        InstanceMethod<&DecoderWrap::SetParam>("setParam"), InstanceMethod<&DecoderWrap::GetParam>("getParam"),
                        InstanceMethod<&DecoderWrap::GetParamGrad>("getParamGrad"), InstanceMethod<&DecoderWrap::SetLora>("setLora"),
                        InstanceMethod<&DecoderWrap::GetLora>("getLora"), InstanceMethod<&DecoderWrap::GetLoraGrad>("getLoraGrad"),
                        InstanceMethod<&DecoderWrap::EnableLora>("enableLora"), InstanceMethod<&DecoderWrap::SetTrainBase>("setTrainBase"),
                        InstanceMethod<&DecoderWrap::Forward>("forward"), InstanceMethod<&DecoderWrap::LoadSafetensors>("loadSafetensors"),
                        InstanceMethod<&DecoderWrap::GenerateConstrainedAsync>("generateConstrainedAsync"),
                        InstanceMethod<&DecoderWrap::GetOptimizerState>("getOptimizerState"), InstanceMethod<&DecoderWrap::SetOptimizerState>("setOptimizerState"),
                        InstanceMethod<&DecoderWrap::ForwardBackwardAsync>("forwardBackwardAsync"),
                        InstanceMethod<&DecoderWrap::ZeroGrad>("zeroGrad"), InstanceMethod<&DecoderWrap::OptimizerStep>("optimizerStep"),
                        InstanceMethod<&DecoderWrap::Dispose>("dispose"), InstanceAccessor<&DecoderWrap::NumParams>("numParams"),
                        InstanceAccessor<&DecoderWrap::NumLoraParams>("numLoraParams"), InstanceAccessor<&DecoderWrap::StepCount>("stepCount")});
  }

  explicit DecoderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DecoderWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      type_error(env, "Decoder(config): config must be an object");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    DecoderConfig c;
    int arch = 0, threads = 0, tie = 0;
    if (!get_int(env, o, "arch", 0, &arch) || !get_int(env, o, "vocabSize", 1, &c.V) || !get_int(env, o, "hiddenSize", 1, &c.C) ||
        !get_int(env, o, "numLayers", 1, &c.L) || !get_int(env, o, "numHeads", 1, &c.NH) || !get_int(env, o, "numKvHeads", 1, &c.KV) ||
        !get_int(env, o, "headDim", 2, &c.hd) || !get_int(env, o, "intermediateSize", 1, &c.F) || !get_float(env, o, "rmsNormEps", &c.eps) ||
        !get_float(env, o, "ropeTheta", &c.theta) || !get_int(env, o, "tieEmbeddings", 0, &tie) || !get_int(env, o, "threads", 0, &threads))
      return;
    if (arch > 2) {
      range_error(env, "arch must be 0 (llama), 1 (qwen2) or 2 (qwen3)");
      return;
    }
    c.arch = static_cast<vlatext::Arch>(arch);
    c.tie = tie != 0;
    if (o.Has("ropeSections") && !o.Get("ropeSections").IsUndefined()) {
      std::vector<int32_t> s;
      if (!get_i32_array(env, o, "ropeSections", -1, &s, false)) return;
      c.rope_sections.assign(s.begin(), s.end());
    }
    std::string err;
    if (Decoder::create(c, threads, &model_, &err) != Status::Ok) {
      Napi::Error::New(env, "Decoder config: " + err).ThrowAsJavaScriptException();
      return;
    }
    Napi::MemoryManagement::AdjustExternalMemory(env, model_->num_params() * 8);
  }

 private:
  bool ready(Napi::Env env) {
    if (!model_) return error(env, "Decoder was disposed");
    if (in_flight.load() > 0) return error(env, "Decoder is busy with an async call; await it first");
    return true;
  }

  Napi::Value ParamInfo(const Napi::CallbackInfo& info) { return ready(info.Env()) ? (Napi::Value)tensor_infos(info.Env(), model_->params()) : info.Env().Undefined(); }
  Napi::Value LoraInfo(const Napi::CallbackInfo& info) { return ready(info.Env()) ? (Napi::Value)tensor_infos(info.Env(), model_->lora_params()) : info.Env().Undefined(); }

  // Resolve info[0] as a parameter (lora=false) or LoRA tensor name.
  const vlatext::TensorInfo* tensor(const Napi::CallbackInfo& info, bool lora) {
    if (info.Length() < 1 || !info[0].IsString()) {
      type_error(info.Env(), "tensor name must be a string");
      return nullptr;
    }
    const std::string name = info[0].As<Napi::String>();
    const vlatext::TensorInfo* t = lora ? model_->find_lora(name) : model_->find_param(name);
    if (!t) error(info.Env(), std::string("no ") + (lora ? "LoRA tensor" : "parameter") + " named '" + name + "'");
    return t;
  }

  Napi::Value set(const Napi::CallbackInfo& info, bool lora) {
    if (!ready(info.Env())) return info.Env().Undefined();
    const vlatext::TensorInfo* t = tensor(info, lora);
    if (!t) return info.Env().Undefined();
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      return type_error(info.Env(), "setParam(name, data): data must be a Float32Array"), info.Env().Undefined();
    auto arr = info[1].As<Napi::Float32Array>();
    if ((int64_t)arr.ElementLength() != t->size)
      return range_error(info.Env(), "tensor '" + t->name + "' has " + std::to_string(t->size) + " values, got " + std::to_string(arr.ElementLength())), info.Env().Undefined();
    std::memcpy((lora ? model_->lora_data() : model_->param_data()) + t->offset, arr.Data(), sizeof(float) * t->size);
    return info.Env().Undefined();
  }

  Napi::Value get(const Napi::CallbackInfo& info, bool lora, bool grad) {
    if (!ready(info.Env())) return info.Env().Undefined();
    const vlatext::TensorInfo* t = tensor(info, lora);
    if (!t) return info.Env().Undefined();
    const float* base = lora ? (grad ? model_->lora_grad() : model_->lora_data()) : (grad ? model_->param_grad() : model_->param_data());
    auto out = Napi::Float32Array::New(info.Env(), (size_t)t->size);
    std::memcpy(out.Data(), base + t->offset, sizeof(float) * t->size);
    return out;
  }

  Napi::Value SetParam(const Napi::CallbackInfo& info) { return set(info, false); }
  Napi::Value GetParam(const Napi::CallbackInfo& info) { return get(info, false, false); }
  Napi::Value GetParamGrad(const Napi::CallbackInfo& info) { return get(info, false, true); }
  Napi::Value SetLora(const Napi::CallbackInfo& info) { return set(info, true); }
  Napi::Value GetLora(const Napi::CallbackInfo& info) { return get(info, true, false); }
  Napi::Value GetLoraGrad(const Napi::CallbackInfo& info) { return get(info, true, true); }

  Napi::Value EnableLora(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsObject()) return type_error(env, "enableLora(options): options must be an object"), env.Undefined();
    Napi::Object o = info[0].As<Napi::Object>();
    vlatext::LoraConfig lc;
    int seed = 0;
    if (!get_int(env, o, "rank", 1, &lc.rank) || !get_float(env, o, "alpha", &lc.alpha) || !get_int(env, o, "seed", 0, &seed) || !get_float(env, o, "dropout", &lc.dropout)) return env.Undefined();
    if (lc.dropout < 0 || lc.dropout >= 1) return range_error(env, "enableLora: dropout must be in [0, 1)"), env.Undefined();
    lc.seed = (uint64_t)seed;
    Napi::Value tv = o.Get("targets");
    if (!tv.IsArray()) return type_error(env, "enableLora: targets must be an array of module names"), env.Undefined();
    Napi::Array ta = tv.As<Napi::Array>();
    for (uint32_t i = 0; i < ta.Length(); i++) {
      const std::string name = ta.Get(i).ToString();
      bool found = false;
      for (int p = 0; p < vlatext::kNumProj; p++)
        if (name == vlatext::kProjNames[p]) lc.targets[p] = found = true;
      if (!found) return range_error(env, "enableLora: unknown target module '" + name + "'"), env.Undefined();
    }
    std::string err;
    if (model_->enable_lora(lc, &err) != Status::Ok) return error(env, "enableLora: " + err), env.Undefined();
    return env.Undefined();
  }

  Napi::Value SetTrainBase(const Napi::CallbackInfo& info) {
    if (!ready(info.Env())) return info.Env().Undefined();
    model_->set_train_base(info.Length() > 0 && info[0].ToBoolean());
    return info.Env().Undefined();
  }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    OwnedBatch b;
    if (!read_batch(env, info.Length() > 0 ? info[0] : env.Undefined(), model_->config(), &b)) return env.Undefined();
    const bool want_logits = info.Length() > 1 && info[1].ToBoolean();
    std::vector<float> logits(want_logits ? (size_t)b.B * b.T * model_->config().V : 0);
    vlatext::ForwardResult r;
    std::string err;
    if (model_->forward(b.view(), &r, want_logits ? logits.data() : nullptr, &err) != Status::Ok) return error(env, "forward: " + err), env.Undefined();
    Napi::Object out = Napi::Object::New(env);
    out.Set("lossSum", r.loss_sum);
    out.Set("kept", (double)r.kept);
    if (want_logits) {
      auto arr = Napi::Float32Array::New(env, logits.size());
      std::memcpy(arr.Data(), logits.data(), sizeof(float) * logits.size());
      out.Set("logits", arr);
    }
    return out;
  }

  Napi::Value ForwardBackwardAsync(const Napi::CallbackInfo& info);
  Napi::Value GenerateConstrainedAsync(const Napi::CallbackInfo& info) {
    return ready(info.Env()) ? generate_constrained_async(info, this, info.This().As<Napi::Object>()) : info.Env().Undefined();
  }

  // loadSafetensors(file, entries: [{name, dtype: 0 F32 | 1 F16 | 2 BF16, offset}]): maps the
  // file and fills each named parameter (its size comes from the model; the caller has
  // checked the header's shape against it).
  Napi::Value LoadSafetensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray()) return type_error(env, "loadSafetensors(file, entries): needs a path and an array"), env.Undefined();
    const std::string file = info[0].As<Napi::String>();
    vlatext::MappedFile mf;
    std::string err;
    if (mf.open(file, &err) != Status::Ok) return error(env, err), env.Undefined();
    Napi::Array entries = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < entries.Length(); i++) {
      Napi::Object e = entries.Get(i).As<Napi::Object>();
      const std::string name = e.Get("name").ToString();
      int dtype = 0;
      if (!get_int(env, e, "dtype", 0, &dtype) || dtype > 2) return range_error(env, "loadSafetensors: bad dtype for " + name), env.Undefined();
      const double offset = e.Get("offset").ToNumber().DoubleValue();
      const vlatext::TensorInfo* t = model_->find_param(name);
      if (!t) return error(env, "loadSafetensors: no parameter named '" + name + "'"), env.Undefined();
      if (vlatext::load_tensor(mf, (size_t)offset, (vlatext::StDtype)dtype, t->size, model_->param_data() + t->offset, &err) != Status::Ok)
        return error(env, file + ": tensor '" + name + "': " + err), env.Undefined();
    }
    return env.Undefined();
  }

  // {step, m, v}: AdamW's moments over the trainable tensors (base if trained, then LoRA), for checkpoints.
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    return optimizer_state(env, model_->step_count(), model_->adam_m(), model_->adam_v());
  }

  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    int step = 0;
    std::vector<float> m, v;
    if (!get_optimizer_state(env, info, &step, &m, &v)) return env.Undefined();
    std::string err;
    if (model_->set_optimizer_state(step, std::move(m), std::move(v), &err) != Status::Ok) return error(env, "setOptimizerState: " + err), env.Undefined();
    return env.Undefined();
  }

  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    if (ready(info.Env())) model_->zero_grad();
    return info.Env().Undefined();
  }

  Napi::Value OptimizerStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    vlatext::AdamWConfig c{};
    float max_norm = 0, extra = 0;  // extraSqNorm: the squared gradient norm of parts trained alongside, clipped with one global norm
    if (!get_adamw(env, info, &c, &max_norm, &extra)) return env.Undefined();
    return Napi::Number::New(env, model_->optimizer_step(c, max_norm, extra));
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (in_flight.load() > 0) return error(info.Env(), "Decoder.dispose(): an async call is still running; await it first"), info.Env().Undefined();
    if (model_) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -model_->num_params() * 8);
    model_.reset();
    return info.Env().Undefined();
  }

  Napi::Value NumParams(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), model_ ? (double)model_->num_params() : 0); }
  Napi::Value NumLoraParams(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), model_ ? (double)model_->num_lora_params() : 0); }
  Napi::Value StepCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), model_ ? model_->step_count() : 0); }
};

// forward + backward off the JS thread: resolves {lossSum, kept, dInject?}.
class ForwardBackwardWorker : public Napi::AsyncWorker {
 public:
  ForwardBackwardWorker(Napi::Env env, DecoderWrap* w, Napi::Object self, OwnedBatch batch, float loss_scale, bool want_inject)
      : Napi::AsyncWorker(env, "vlatext:forwardBackward"), deferred_(Napi::Promise::Deferred::New(env)), w_(w), batch_(std::move(batch)), scale_(loss_scale), want_inject_(want_inject) {
    self_ = Napi::Persistent(self);
    w_->in_flight++;
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    std::string err;
    if (w_->model_->forward(batch_.view(), &result_, nullptr, &err) != Status::Ok) return SetError("forward: " + err);
    // the loss scale may depend on the kept count: a negative scale means 1 / kept
    const float s = scale_ < 0 ? (result_.kept > 0 ? 1.0f / (float)result_.kept : 0.0f) : scale_;
    d_inject_.assign(want_inject_ ? batch_.inject.size() : 0, 0.0f);
    w_->model_->backward(s, want_inject_ ? d_inject_.data() : nullptr);
  }
  void OnOK() override {
    w_->in_flight--;
    Napi::Object o = Napi::Object::New(Env());
    o.Set("lossSum", result_.loss_sum);
    o.Set("kept", (double)result_.kept);
    if (want_inject_) {
      auto a = Napi::Float32Array::New(Env(), d_inject_.size());
      std::memcpy(a.Data(), d_inject_.data(), sizeof(float) * d_inject_.size());
      o.Set("dInject", a);
    }
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error& e) override {
    w_->in_flight--;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  DecoderWrap* w_;
  Napi::ObjectReference self_;
  OwnedBatch batch_;
  float scale_;
  bool want_inject_;
  vlatext::ForwardResult result_;
  std::vector<float> d_inject_;
};

Napi::Value DecoderWrap::ForwardBackwardAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ready(env)) return env.Undefined();
  OwnedBatch b;
  if (!read_batch(env, info.Length() > 0 ? info[0] : env.Undefined(), model_->config(), &b)) return env.Undefined();
  if (!b.has_targets) return type_error(env, "forwardBackwardAsync: batch.targets is required for training"), env.Undefined();
  float scale = -1.0f;
  bool want_inject = false;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    if (o.Has("lossScale") && !o.Get("lossScale").IsUndefined() && !get_float(env, o, "lossScale", &scale)) return env.Undefined();
    want_inject = o.Get("injectGrad").ToBoolean();
  }
  auto* w = new ForwardBackwardWorker(env, this, info.This().As<Napi::Object>(), std::move(b), scale, want_inject);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

AddonData& addon_data(Napi::Env env) {
  AddonData* d = env.GetInstanceData<AddonData>();
  if (!d) {
    d = new AddonData();
    env.SetInstanceData<AddonData>(d);
  }
  return *d;
}

DecoderState* unwrap_decoder(Napi::Env env, Napi::Value v) {
  const Napi::FunctionReference& ctor = addon_data(env).decoder_ctor;
  if (!v.IsObject() || ctor.IsEmpty() || !v.As<Napi::Object>().InstanceOf(ctor.Value())) {
    type_error(env, "expected a Decoder");
    return nullptr;
  }
  return Napi::ObjectWrap<DecoderWrap>::Unwrap(v.As<Napi::Object>());
}

void RegisterDecoder(Napi::Env env, Napi::Object exports) {
  Napi::Function f = DecoderWrap::Define(env);
  addon_data(env).decoder_ctor = Napi::Persistent(f);
  exports.Set("Decoder", f);
}

}  // namespace vlatext_napi
