// N-API wrapper for vlatext::Decoder (native/model/decoder.h): its ParamStore (.params),
// LoRA, forward, and forward + backward on a worker thread. Argument checks and
// conversions only. Generation and the KV cache are in generate_napi.cpp, the parameter
// store in param_store_napi.cpp.
#include <napi.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../model/decoder.h"
#include "handles.h"
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
  std::vector<float> inject, deepstack;
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
    b.K = inject.empty() ? 0 : (int)(deepstack.size() / inject.size());
    b.deepstack = deepstack.empty() ? nullptr : deepstack.data();
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
    if (o.Has("deepstack") && !o.Get("deepstack").IsUndefined()) {
      if (!get_f32_array(env, o, "deepstack", -1, &out->deepstack)) return false;
      if (out->inject.empty() || out->deepstack.size() % out->inject.size() != 0) return range_error(env, "'deepstack' must hold K layers of inject's (M, C) values");
    }
  }
  int seed = -1;
  if (!get_int(env, o, "dropoutSeed", -1, &seed)) return false;
  out->dropout_seed = seed;
  return true;
}

}  // namespace

// The backend options of a config object: {device?: "cpu" | "cuda", threads?, isa?}.
bool read_backend(Napi::Env env, Napi::Object o, vlatext::BackendOptions* b) {
  std::string device = "cpu", isa;
  if (!get_string(env, o, "device", &device) || !get_int(env, o, "threads", 0, &b->threads) || !get_string(env, o, "isa", &isa)) return false;
  if (device == "cuda") b->device = vlatext::Device::Cuda;
  else if (device != "cpu") return range_error(env, "device must be \"cpu\" or \"cuda\", got \"" + device + "\"");
  if (!isa.empty() && !vlatext::parse_isa(isa.c_str(), &b->isa)) return range_error(env, "isa must be one of portable, avx2, avx512, avx512bf16, amx; got \"" + isa + "\"");
  return true;
}

bool read_dtype(Napi::Env env, Napi::Object o, vlatext::DType* d) {
  std::string s = "f32";
  if (!get_string(env, o, "dtype", &s)) return false;
  if (s == "bf16") *d = vlatext::DType::BF16;
  else if (s != "f32") return range_error(env, "dtype must be \"f32\" or \"bf16\", got \"" + s + "\"");
  return true;
}

class DecoderWrap : public Napi::ObjectWrap<DecoderWrap>, public DecoderState {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Decoder",
                       {InstanceAccessor<&DecoderWrap::Params>("params"), InstanceMethod<&DecoderWrap::EnableLora>("enableLora"),
                        InstanceMethod<&DecoderWrap::SetTrainBase>("setTrainBase"), InstanceMethod<&DecoderWrap::Forward>("forward"),
                        InstanceMethod<&DecoderWrap::GenerateConstrainedAsync>("generateConstrainedAsync"),
                        InstanceMethod<&DecoderWrap::ForwardBackwardAsync>("forwardBackwardAsync"), InstanceMethod<&DecoderWrap::Dispose>("dispose"),
                        InstanceAccessor<&DecoderWrap::BackendName>("backend")});
  }

  explicit DecoderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DecoderWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      type_error(env, "Decoder(config): config must be an object");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    DecoderConfig c;
    vlatext::BackendOptions bo;
    int arch = 0, tie = 0;
    if (!get_int(env, o, "arch", 0, &arch) || !get_int(env, o, "vocabSize", 1, &c.V) || !get_int(env, o, "hiddenSize", 1, &c.C) ||
        !get_int(env, o, "numLayers", 1, &c.L) || !get_int(env, o, "numHeads", 1, &c.NH) || !get_int(env, o, "numKvHeads", 1, &c.KV) ||
        !get_int(env, o, "headDim", 2, &c.hd) || !get_int(env, o, "intermediateSize", 1, &c.F) || !get_float(env, o, "rmsNormEps", &c.eps) ||
        !get_float(env, o, "ropeTheta", &c.theta) || !get_int(env, o, "tieEmbeddings", 0, &tie) || !read_backend(env, o, &bo) || !read_dtype(env, o, &c.dtype))
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
    const Status st = Decoder::create(c, bo, &model_, &err);
    if (st != Status::Ok) {
      fail(env, st, "Decoder config: " + err);
      return;
    }
    accounted_ = model_->params().bytes();
    Napi::MemoryManagement::AdjustExternalMemory(env, accounted_);
  }

 private:
  bool ready(Napi::Env env) {
    if (!model_) return state_error(env, "Decoder was disposed");
    if (in_flight.load() > 0) return state_error(env, "Decoder is busy with an async call; await it first");
    return true;
  }
  // the native bytes V8 is told about follow the store (LoRA, gradients, moments)
  void account(Napi::Env env) {
    const int64_t now = model_ ? model_->params().bytes() : 0;
    if (now != accounted_) Napi::MemoryManagement::AdjustExternalMemory(env, now - accounted_);
    accounted_ = now;
  }

  Napi::Value Params(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) return state_error(env, "Decoder was disposed"), env.Undefined();
    if (params_.IsEmpty()) params_ = Napi::Persistent(new_param_store(env, this, info.This().As<Napi::Object>()).As<Napi::Object>());
    return params_.Value();
  }

  Napi::Value BackendName(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) return state_error(env, "Decoder was disposed"), env.Undefined();
    return Napi::String::New(env, model_->backend().describe());
  }

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
    const Status st = model_->enable_lora(lc, &err);
    if (st != Status::Ok) return fail(env, st, "enableLora: " + err), env.Undefined();
    account(env);
    return env.Undefined();
  }

  Napi::Value SetTrainBase(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    std::string err;
    const Status st = model_->set_train_base(info.Length() > 0 && info[0].ToBoolean(), &err);
    if (st != Status::Ok) return fail(env, st, "setTrainBase: " + err), env.Undefined();
    account(env);
    return env.Undefined();
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
    const Status st = model_->forward(b.view(), &r, want_logits ? logits.data() : nullptr, &err);
    if (st != Status::Ok) return fail(env, st, "forward: " + err), env.Undefined();
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

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (in_flight.load() > 0) return state_error(info.Env(), "Decoder.dispose(): an async call is still running; await it first"), info.Env().Undefined();
    for (vlatext::KvCache* c : caches) {  // their memory belongs to the decoder's backend
      c->k.clear();
      c->v.clear();
      c->capacity = c->length = 0;
    }
    model_.reset();
    account(info.Env());
    return info.Env().Undefined();
  }

  Napi::ObjectReference params_;
  int64_t accounted_ = 0;
  friend class ForwardBackwardWorker;
};

// forward + backward off the JS thread: resolves {lossSum, kept, dInject?}.
class ForwardBackwardWorker : public StatusWorker {
 public:
  ForwardBackwardWorker(Napi::Env env, DecoderWrap* w, Napi::Object self, OwnedBatch batch, float loss_scale, bool want_inject)
      : StatusWorker(env, "vlatext:forwardBackward"), w_(w), batch_(std::move(batch)), scale_(loss_scale), want_inject_(want_inject) {
    self_ = Napi::Persistent(self);
    w_->in_flight++;
  }
  void Execute() override {
    std::string err;
    d_inject_.assign(want_inject_ ? batch_.inject.size() : 0, 0.0f);
    // a negative scale means 1 / kept targets
    const Status st = w_->model_->forward_backward(batch_.view(), scale_, &result_, want_inject_ ? d_inject_.data() : nullptr, &err);
    if (st != Status::Ok) Fail(st, "forwardBackward: " + err);
  }
  void Finish() override { w_->in_flight--; }
  void OnOK() override {
    Finish();
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

 private:
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
