// N-API wrapper for vlatext::Decoder (native/model/decoder.h): argument checks and
// conversions only. Long work (forward + backward) runs on a worker thread.
#include <napi.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../decode/automaton.h"
#include "../decode/generate.h"
#include "../io/safetensors.h"
#include "../model/decoder.h"
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

class DecoderWrap : public Napi::ObjectWrap<DecoderWrap> {
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

  std::unique_ptr<Decoder> model_;
  std::atomic<int> in_flight{0};

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
  Napi::Value GenerateConstrainedAsync(const Napi::CallbackInfo& info);

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
    Napi::Object o = Napi::Object::New(env);
    o.Set("step", model_->step_count());
    auto m = Napi::Float32Array::New(env, model_->adam_m().size());
    auto v = Napi::Float32Array::New(env, model_->adam_v().size());
    std::copy(model_->adam_m().begin(), model_->adam_m().end(), m.Data());
    std::copy(model_->adam_v().begin(), model_->adam_v().end(), v.Data());
    o.Set("m", m);
    o.Set("v", v);
    return o;
  }

  Napi::Value SetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    if (info.Length() < 1 || !info[0].IsObject()) return type_error(env, "setOptimizerState({step, m, v})"), env.Undefined();
    Napi::Object o = info[0].As<Napi::Object>();
    int step = 0;
    std::vector<float> m, v;
    if (!get_int(env, o, "step", 0, &step) || !get_f32_array(env, o, "m", -1, &m) || !get_f32_array(env, o, "v", -1, &v)) return env.Undefined();
    if (m.size() != v.size()) return range_error(env, "setOptimizerState: m and v differ in length"), env.Undefined();
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
    if (info.Length() < 1 || !info[0].IsObject()) return type_error(env, "optimizerStep(options): options must be an object"), env.Undefined();
    Napi::Object o = info[0].As<Napi::Object>();
    vlatext::AdamWConfig c{};
    float max_norm = 0;
    if (!get_float(env, o, "lr", &c.lr) || !get_float(env, o, "beta1", &c.beta1) || !get_float(env, o, "beta2", &c.beta2) || !get_float(env, o, "eps", &c.eps) ||
        !get_float(env, o, "weightDecay", &c.weight_decay) || !get_float(env, o, "maxGradNorm", &max_norm))
      return env.Undefined();
    return Napi::Number::New(env, model_->optimizer_step(c, max_norm));
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

// new ActionAutomaton({count, dims, bins, width, separator, timestepSeparator, eos, tokenIds, tokenTexts})
//   .allowed(state?) is exposed through step-by-step helpers for tests: allowedAfter(tokens) -> Int32Array
// Per-environment addon state (worker threads each get their own): the class constructors
// needed for instanceof checks.
struct AddonData {
  Napi::FunctionReference automaton_ctor;
};

class AutomatonWrap : public Napi::ObjectWrap<AutomatonWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "ActionAutomaton", {InstanceMethod<&AutomatonWrap::AllowedAfter>("allowedAfter"), InstanceAccessor<&AutomatonWrap::MemoSize>("memoSize")});
    auto* data = new AddonData();
    data->automaton_ctor = Napi::Persistent(f);
    env.SetInstanceData<AddonData>(data);  // freed by N-API when the environment ends
    return f;
  }
  explicit AutomatonWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AutomatonWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      type_error(env, "ActionAutomaton(spec): spec must be an object");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    vlatext::GrammarSpec g;
    int eos = -1;
    if (!get_int(env, o, "count", 1, &g.count) || !get_int(env, o, "dims", 1, &g.dims) || !get_int(env, o, "bins", 1, &g.bins) || !get_int(env, o, "width", 0, &g.width) || !get_int(env, o, "eos", 0, &eos)) return;
    g.separator = o.Get("separator").ToString();
    g.timestep_separator = o.Get("timestepSeparator").ToString();
    if (g.separator.empty() || g.timestep_separator.empty()) {
      range_error(env, "ActionAutomaton: separators must be non-empty");
      return;
    }
    std::vector<int32_t> ids;
    if (!get_i32_array(env, o, "tokenIds", -1, &ids, true)) return;
    Napi::Value tv = o.Get("tokenTexts");
    if (!tv.IsArray() || tv.As<Napi::Array>().Length() != ids.size()) {
      type_error(env, "ActionAutomaton: tokenTexts must be an array of strings, one per token id");
      return;
    }
    std::vector<std::string> texts;
    for (uint32_t i = 0; i < ids.size(); i++) texts.push_back(tv.As<Napi::Array>().Get(i).ToString());
    automaton_ = std::make_unique<vlatext::TokenAutomaton>(g, std::move(ids), std::move(texts), eos);
  }
  std::unique_ptr<vlatext::TokenAutomaton> automaton_;
  std::atomic<int> in_flight{0};

 private:
  // The allowed next tokens after feeding `tokens` from the start (throws if one is not allowed).
  Napi::Value AllowedAfter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (in_flight.load() > 0) return error(env, "ActionAutomaton is in use by a generation"), env.Undefined();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) return type_error(env, "allowedAfter(tokens: Int32Array)"), env.Undefined();
    auto t = info[0].As<Napi::Int32Array>();
    vlatext::GState s = automaton_->start();
    for (size_t i = 0; i < t.ElementLength(); i++)
      if (!automaton_->advance(&s, t[i])) return error(env, "token " + std::to_string(t[i]) + " at position " + std::to_string(i) + " is not allowed"), env.Undefined();
    const auto& a = automaton_->allowed(s);
    auto out = Napi::Int32Array::New(env, a.size());
    std::copy(a.begin(), a.end(), out.Data());
    return out;
  }
  Napi::Value MemoSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)automaton_->memo_size()); }
};

// Runs (batched) generation off the JS thread; with a callback, each chosen token is
// delivered to JavaScript as it is produced, as (sequence, token) through a thread-safe
// progress queue. Resolves with one result object, or an array for a batch.
struct SeqToken {
  int32_t seq, token;
};

class GenerateWorker : public Napi::AsyncProgressQueueWorker<SeqToken> {
 public:
  GenerateWorker(Napi::Env env, DecoderWrap* d, Napi::Object dobj, AutomatonWrap* a, Napi::Object aobj, std::vector<std::vector<int32_t>> prompts, std::vector<vlatext::GenOptions> opts,
                 Napi::Function on_tokens, bool batch)
      : Napi::AsyncProgressQueueWorker<SeqToken>(env, "vlatext:generateConstrained"), deferred_(Napi::Promise::Deferred::New(env)), d_(d), a_(a), prompts_(std::move(prompts)), opts_(std::move(opts)), batch_(batch) {
    dref_ = Napi::Persistent(dobj);
    aref_ = Napi::Persistent(aobj);
    if (!on_tokens.IsEmpty()) on_tokens_ = Napi::Persistent(on_tokens);
    d_->in_flight++;
    a_->in_flight++;
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute(const ExecutionProgress& progress) override {
    std::string err;
    std::function<void(int, int32_t)> cb;
    if (!on_tokens_.IsEmpty()) cb = [&progress](int seq, int32_t t) {
      SeqToken st{seq, t};
      progress.Send(&st, 1);
    };
    if (vlatext::generate_constrained_batch(*d_->model_, prompts_, *a_->automaton_, opts_, &results_, &err, cb) != Status::Ok) SetError("generateConstrained: " + err);
  }
  void OnProgress(const SeqToken* data, size_t count) override {
    if (on_tokens_.IsEmpty()) return;
    for (size_t i = 0; i < count; i++) {
      auto arr = Napi::Int32Array::New(Env(), 1);
      arr[0] = data[i].token;
      if (batch_) on_tokens_.Call({Napi::Number::New(Env(), data[i].seq), arr});
      else on_tokens_.Call({arr});
    }
  }
  void OnOK() override {
    done();
    Napi::Env env = Env();
    auto result = [&](const vlatext::GenResult& r) {
      Napi::Object o = Napi::Object::New(env);
      auto t = Napi::Int32Array::New(env, r.tokens.size());
      std::copy(r.tokens.begin(), r.tokens.end(), t.Data());
      o.Set("tokens", t);
      o.Set("finished", r.finished);
      o.Set("modelCalls", r.model_calls);
      o.Set("forced", r.forced);
      o.Set("sampled", r.sampled);
      o.Set("maskMs", r.mask_ms);
      o.Set("modelMs", r.model_ms);
      o.Set("headMs", r.head_ms);
      o.Set("totalMs", r.total_ms);
      return o;
    };
    if (!batch_) return deferred_.Resolve(result(results_[0]));
    Napi::Array arr = Napi::Array::New(env, results_.size());
    for (size_t i = 0; i < results_.size(); i++) arr.Set((uint32_t)i, result(results_[i]));
    deferred_.Resolve(arr);
  }
  void OnError(const Napi::Error& e) override {
    done();
    deferred_.Reject(e.Value());
  }

 private:
  void done() {
    d_->in_flight--;
    a_->in_flight--;
  }
  Napi::Promise::Deferred deferred_;
  DecoderWrap* d_;
  AutomatonWrap* a_;
  Napi::ObjectReference dref_, aref_;
  Napi::FunctionReference on_tokens_;
  std::vector<std::vector<int32_t>> prompts_;
  std::vector<vlatext::GenOptions> opts_;
  bool batch_;
  std::vector<vlatext::GenResult> results_;
};

bool read_gen_options(Napi::Env env, Napi::Value v, vlatext::GenOptions* opt) {
  if (!v.IsObject()) return true;
  Napi::Object o = v.As<Napi::Object>();
  int seed = 0, jf = 1;
  if (!get_float(env, o, "temperature", &opt->temperature) || !get_int(env, o, "seed", 0, &seed) || !get_int(env, o, "jumpForward", 0, &jf) || !get_int(env, o, "sparseMax", 0, &opt->sparse_max) ||
      !get_int(env, o, "maxTokens", 1, &opt->max_tokens))
    return false;
  opt->seed = (uint64_t)seed;
  opt->jump_forward = jf != 0;
  if (!get_i32_array(env, o, "positions", -1, &opt->prompt.positions, false)) return false;
  if (o.Has("injectRows") && !o.Get("injectRows").IsUndefined()) {
    if (!get_i32_array(env, o, "injectRows", -1, &opt->prompt.inject_rows, true) || !get_f32_array(env, o, "inject", -1, &opt->prompt.inject)) return false;
  }
  return true;
}

// generateConstrainedAsync(prompt: Int32Array, automaton, options?, onTokens?(tokens))
// generateConstrainedAsync([prompt, ...], automaton, [options, ...], onTokens?(seq, tokens)): one batched decode
Napi::Value DecoderWrap::GenerateConstrainedAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ready(env)) return env.Undefined();
  const bool batch = info.Length() > 0 && info[0].IsArray();
  if (info.Length() < 2 || !info[1].IsObject() || (!batch && (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)))
    return type_error(env, "generateConstrainedAsync(prompt: Int32Array | Int32Array[], automaton, options?, onTokens?)"), env.Undefined();
  Napi::Object aobj = info[1].As<Napi::Object>();
  if (!aobj.InstanceOf(env.GetInstanceData<AddonData>()->automaton_ctor.Value())) return type_error(env, "generateConstrainedAsync: the second argument must be an ActionAutomaton"), env.Undefined();
  AutomatonWrap* a = Napi::ObjectWrap<AutomatonWrap>::Unwrap(aobj);
  if (a->in_flight.load() > 0) return error(env, "the ActionAutomaton is in use by another generation"), env.Undefined();
  std::vector<std::vector<int32_t>> prompts;
  std::vector<vlatext::GenOptions> opts;
  auto add_prompt = [&](Napi::Value p, Napi::Value o) {
    if (!p.IsTypedArray() || p.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) return type_error(env, "each prompt must be an Int32Array");
    auto t = p.As<Napi::Int32Array>();
    prompts.emplace_back(t.Data(), t.Data() + t.ElementLength());
    vlatext::GenOptions opt;
    if (!read_gen_options(env, o, &opt)) return false;
    opts.push_back(opt);
    return true;
  };
  if (batch) {
    Napi::Array ps = info[0].As<Napi::Array>();
    Napi::Value os = info.Length() > 2 ? info[2] : env.Undefined();
    if (ps.Length() == 0) return range_error(env, "generateConstrainedAsync: the batch is empty"), env.Undefined();
    for (uint32_t i = 0; i < ps.Length(); i++)
      if (!add_prompt(ps.Get(i), os.IsArray() ? os.As<Napi::Array>().Get(i) : env.Undefined())) return env.Undefined();
  } else if (!add_prompt(info[0], info.Length() > 2 ? info[2] : env.Undefined())) {
    return env.Undefined();
  }
  Napi::Function on_tokens;
  if (info.Length() > 3 && info[3].IsFunction()) on_tokens = info[3].As<Napi::Function>();
  auto* w = new GenerateWorker(env, this, info.This().As<Napi::Object>(), a, aobj, std::move(prompts), std::move(opts), on_tokens, batch);
  Napi::Promise pr = w->promise();
  w->Queue();
  return pr;
}

// Incremental decoding state for one sequence: new KvCache(decoder, capacity).
//   feed(tokens: Int32Array, options?: {positions?, injectRows?, inject?}) -> Float32Array (V), the last token's logits
//   reset(), length, capacity
class KvCacheWrap : public Napi::ObjectWrap<KvCacheWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "KvCache",
                       {InstanceMethod<&KvCacheWrap::Feed>("feed"), InstanceMethod<&KvCacheWrap::Reset>("reset"),
                        InstanceAccessor<&KvCacheWrap::Length>("length"), InstanceAccessor<&KvCacheWrap::Capacity>("capacity")});
  }

  explicit KvCacheWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<KvCacheWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsNumber()) {
      type_error(env, "KvCache(decoder, capacity): needs a Decoder and a token capacity");
      return;
    }
    Napi::Object d = info[0].As<Napi::Object>();
    decoder_ = Napi::ObjectWrap<DecoderWrap>::Unwrap(d);
    if (!decoder_ || !decoder_->model_) {
      error(env, "KvCache: the decoder was disposed");
      return;
    }
    const double cap = info[1].As<Napi::Number>().DoubleValue();
    if (cap < 1 || cap > 1 << 20 || cap != (int)cap) {
      range_error(env, "KvCache: capacity must be an integer in [1, 1048576]");
      return;
    }
    decoder_ref_ = Napi::Persistent(d);
    decoder_->model_->init_cache(&cache_, (int)cap);
  }

 private:
  Napi::Value Feed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!decoder_->model_) return error(env, "KvCache: the decoder was disposed"), env.Undefined();
    if (decoder_->in_flight.load() > 0) return error(env, "KvCache: the decoder is busy with an async call"), env.Undefined();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      return type_error(env, "feed(tokens): tokens must be an Int32Array"), env.Undefined();
    auto t = info[0].As<Napi::Int32Array>();
    const int n = (int)t.ElementLength();
    const vlatext::DecoderConfig& c = decoder_->model_->config();
    const int S = c.rope_sections.empty() ? 1 : (int)c.rope_sections.size();
    std::vector<int32_t> positions, rows;
    std::vector<float> inject;
    bool has_pos = false;
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Object o = info[1].As<Napi::Object>();
      if (o.Has("positions") && !o.Get("positions").IsUndefined()) {
        if (!get_i32_array(env, o, "positions", (int64_t)S * n, &positions, true)) return env.Undefined();
        has_pos = true;
      }
      if (o.Has("injectRows") && !o.Get("injectRows").IsUndefined()) {
        if (!get_i32_array(env, o, "injectRows", -1, &rows, true)) return env.Undefined();
        if (!get_f32_array(env, o, "inject", (int64_t)rows.size() * c.C, &inject)) return env.Undefined();
      }
    }
    auto out = Napi::Float32Array::New(env, (size_t)c.V);
    std::string err;
    if (decoder_->model_->infer(&cache_, t.Data(), n, has_pos ? positions.data() : nullptr, (int)rows.size(), rows.data(), inject.data(), out.Data(), &err) != Status::Ok)
      return error(env, "feed: " + err), env.Undefined();
    return out;
  }
  Napi::Value Reset(const Napi::CallbackInfo& info) {
    cache_.length = 0;
    cache_.next_pos = 0;
    return info.Env().Undefined();
  }
  Napi::Value Length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cache_.length); }
  Napi::Value Capacity(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cache_.capacity); }

  DecoderWrap* decoder_ = nullptr;
  Napi::ObjectReference decoder_ref_;
  vlatext::KvCache cache_;
};

void RegisterDecoder(Napi::Env env, Napi::Object exports) {
  exports.Set("Decoder", DecoderWrap::Define(env));
  exports.Set("KvCache", KvCacheWrap::Define(env));
  exports.Set("ActionAutomaton", AutomatonWrap::Define(env));
}

}  // namespace vlatext_napi
