// N-API wrapper for vlatext::VisionTower (native/model/vision.h).
//   new VisionTower({depth, hiddenSize, intermediateSize, numHeads, outHiddenSize, patchSize,
//                    spatialMergeSize, temporalPatchSize, windowSize, fullattBlockIndexes: Int32Array, threads?})
//   .paramInfo(), .setParam(name, Float32Array), .getParam(name), .getParamGrad(name)
//   .forwardAsync(pixels: Float32Array, grids: Int32Array, train = false) -> Promise<Float32Array>
//       train: keeps this call's activations on the handle for the next backwardAsync
//   .backwardAsync(dout: Float32Array) -> Promise<void>   gradients accumulate until zeroGrad()
//   .zeroGrad(), .gradSqNorm(), .optimizerStep({lr, beta1, beta2, eps, weightDecay, maxGradNorm, extraSqNorm}) -> norm
//   .getOptimizerState() -> {step, m, v}, .setOptimizerState({step, m, v})
#include <napi.h>

#include <atomic>
#include <cstring>
#include <memory>

#include "../model/vision.h"
#include "napi_util.h"

namespace vlatext_napi {

using vlatext::Status;
using vlatext::VisionTower;

class VisionWrap : public Napi::ObjectWrap<VisionWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VisionTower",
                       {InstanceMethod<&VisionWrap::ParamInfo>("paramInfo"), InstanceMethod<&VisionWrap::SetParam>("setParam"), InstanceMethod<&VisionWrap::GetParam>("getParam"),
                        InstanceMethod<&VisionWrap::GetParamGrad>("getParamGrad"), InstanceMethod<&VisionWrap::ForwardAsync>("forwardAsync"),
                        InstanceMethod<&VisionWrap::BackwardAsync>("backwardAsync"), InstanceMethod<&VisionWrap::ZeroGrad>("zeroGrad"), InstanceMethod<&VisionWrap::GradSqNorm>("gradSqNorm"),
                        InstanceMethod<&VisionWrap::OptimizerStep>("optimizerStep"), InstanceMethod<&VisionWrap::GetOptimizerState>("getOptimizerState"),
                        InstanceMethod<&VisionWrap::SetOptimizerState>("setOptimizerState"), InstanceMethod<&VisionWrap::Dispose>("dispose")});
  }

  explicit VisionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VisionWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      type_error(env, "VisionTower(config): config must be an object");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    vlatext::VisionConfig c;
    int threads = 0;
    if (!get_int(env, o, "depth", 1, &c.depth) || !get_int(env, o, "hiddenSize", 1, &c.C) || !get_int(env, o, "intermediateSize", 1, &c.F) || !get_int(env, o, "numHeads", 1, &c.NH) ||
        !get_int(env, o, "outHiddenSize", 1, &c.Cout) || !get_int(env, o, "patchSize", 1, &c.patch) || !get_int(env, o, "spatialMergeSize", 1, &c.merge) ||
        !get_int(env, o, "temporalPatchSize", 1, &c.temporal) || !get_int(env, o, "windowSize", 1, &c.window) || !get_float(env, o, "rmsNormEps", &c.eps) || !get_float(env, o, "ropeTheta", &c.theta) || !get_int(env, o, "threads", 0, &threads))
      return;
    std::vector<int32_t> full;
    if (!get_i32_array(env, o, "fullattBlockIndexes", -1, &full, false)) return;
    c.fullatt.assign(full.begin(), full.end());
    std::string err;
    if (VisionTower::create(c, threads, &model_, &err) != Status::Ok) error(env, "VisionTower config: " + err);
  }

  std::unique_ptr<VisionTower> model_;
  std::unique_ptr<vlatext::VisionActs> acts_;  // the last training forward's activations
  std::atomic<int> in_flight{0};

 private:
  bool ready(Napi::Env env) {
    if (!model_) return error(env, "VisionTower was disposed");
    if (in_flight.load() > 0) return error(env, "VisionTower is busy; await the running call");
    return true;
  }
  Napi::Value ParamInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    return tensor_infos(env, model_->params());
  }
  Napi::Value SetParam(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      return type_error(env, "setParam(name: string, data: Float32Array)"), env.Undefined();
    const std::string name = info[0].As<Napi::String>();
    const vlatext::TensorInfo* t = model_->find_param(name);
    if (!t) return error(env, "no vision parameter named '" + name + "'"), env.Undefined();
    auto a = info[1].As<Napi::Float32Array>();
    if ((int64_t)a.ElementLength() != t->size) return range_error(env, "tensor '" + name + "' has " + std::to_string(t->size) + " values, got " + std::to_string(a.ElementLength())), env.Undefined();
    std::memcpy(model_->param_data() + t->offset, a.Data(), sizeof(float) * t->size);
    return env.Undefined();
  }
  const vlatext::TensorInfo* tensor(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsString()) return type_error(info.Env(), "expected a parameter name"), nullptr;
    const std::string name = info[0].As<Napi::String>();
    const vlatext::TensorInfo* t = model_->find_param(name);
    if (!t) error(info.Env(), "no vision parameter named '" + name + "'");
    return t;
  }
  Napi::Value get(const Napi::CallbackInfo& info, bool grad) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    const vlatext::TensorInfo* t = tensor(info);
    if (!t) return env.Undefined();
    auto out = Napi::Float32Array::New(env, (size_t)t->size);
    std::memcpy(out.Data(), (grad ? model_->param_grad() : model_->param_data()) + t->offset, sizeof(float) * t->size);
    return out;
  }
  Napi::Value GetParam(const Napi::CallbackInfo& info) { return get(info, false); }
  Napi::Value GetParamGrad(const Napi::CallbackInfo& info) { return get(info, true); }
  Napi::Value ZeroGrad(const Napi::CallbackInfo& info) {
    if (ready(info.Env())) model_->zero_grad();
    return info.Env().Undefined();
  }
  Napi::Value GradSqNorm(const Napi::CallbackInfo& info) {
    if (!ready(info.Env())) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), model_->grad_sq_norm());
  }
  Napi::Value OptimizerStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    vlatext::AdamWConfig c{};
    float max_norm = 0, extra = 0;
    if (!get_adamw(env, info, &c, &max_norm, &extra)) return env.Undefined();
    return Napi::Number::New(env, model_->optimizer_step(c, max_norm, extra));
  }
  Napi::Value GetOptimizerState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    return optimizer_state(env, model_->optimizer_step_count(), model_->optimizer_m(), model_->optimizer_v());
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
  Napi::Value ForwardAsync(const Napi::CallbackInfo& info);
  Napi::Value BackwardAsync(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (in_flight.load() > 0) return error(info.Env(), "VisionTower.dispose(): a call is still running"), info.Env().Undefined();
    model_.reset();
    return info.Env().Undefined();
  }
};

class VisionWorker : public Napi::AsyncWorker {
 public:
  // forward (train: keep the activations), or backward of dout (pixels_ holds dout, grids_ empty)
  enum class Mode { Forward, ForwardTrain, Backward };
  VisionWorker(Napi::Env env, VisionWrap* w, Napi::Object self, Mode mode, std::vector<float> pixels, std::vector<int32_t> grids)
      : Napi::AsyncWorker(env, "vlatext:vision"), deferred_(Napi::Promise::Deferred::New(env)), w_(w), mode_(mode), pixels_(std::move(pixels)), grids_(std::move(grids)) {
    self_ = Napi::Persistent(self);
    w_->in_flight++;
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    const auto& c = w_->model_->config();
    std::string err;
    if (mode_ == Mode::Backward) {
      const vlatext::VisionActs* a = w_->acts_.get();
      if (!a) return SetError("backward: no training forward to go back through; call forwardAsync(pixels, grids, true) first");
      const int64_t want = a->N / (c.merge * c.merge) * c.Cout;
      if ((int64_t)pixels_.size() != want) return SetError("backward: dout holds " + std::to_string(pixels_.size()) + " values, the last forward gave " + std::to_string(want));
      if (w_->model_->backward(pixels_.data(), *a, &err) != Status::Ok) SetError("backward: " + err);
      return;
    }
    const int64_t P = 3LL * c.temporal * c.patch * c.patch;
    const int64_t N = (int64_t)pixels_.size() / P;
    out_.assign((size_t)(N / (c.merge * c.merge) * c.Cout), 0.0f);
    if ((int64_t)pixels_.size() != N * P) return SetError("forward: pixels hold " + std::to_string(pixels_.size()) + " values, not a multiple of " + std::to_string(P));
    std::unique_ptr<vlatext::VisionActs> acts;
    if (mode_ == Mode::ForwardTrain) acts.reset(new vlatext::VisionActs());
    if (w_->model_->forward(pixels_.data(), N, grids_.data(), (int)grids_.size() / 3, out_.data(), &err, acts.get()) != Status::Ok) return SetError("forward: " + err);
    if (acts) w_->acts_ = std::move(acts);
  }
  void OnOK() override {
    w_->in_flight--;
    if (mode_ == Mode::Backward) return deferred_.Resolve(Env().Undefined());
    auto a = Napi::Float32Array::New(Env(), out_.size());
    std::memcpy(a.Data(), out_.data(), sizeof(float) * out_.size());
    deferred_.Resolve(a);
  }
  void OnError(const Napi::Error& e) override {
    w_->in_flight--;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  VisionWrap* w_;
  Mode mode_;
  Napi::ObjectReference self_;
  std::vector<float> pixels_;
  std::vector<int32_t> grids_;
  std::vector<float> out_;
};

Napi::Value VisionWrap::ForwardAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ready(env)) return env.Undefined();
  if (info.Length() < 2 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array || info[1].As<Napi::TypedArray>().ElementLength() % 3 != 0)
    return type_error(env, "forwardAsync(pixels: Float32Array, grids: Int32Array of (t, h, w) triples, train?: boolean)"), env.Undefined();
  auto px = info[0].As<Napi::Float32Array>();
  auto gr = info[1].As<Napi::Int32Array>();
  const bool train = info.Length() > 2 && info[2].IsBoolean() && info[2].As<Napi::Boolean>().Value();
  auto* w = new VisionWorker(env, this, info.This().As<Napi::Object>(), train ? VisionWorker::Mode::ForwardTrain : VisionWorker::Mode::Forward,
                             std::vector<float>(px.Data(), px.Data() + px.ElementLength()), std::vector<int32_t>(gr.Data(), gr.Data() + gr.ElementLength()));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

Napi::Value VisionWrap::BackwardAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!ready(env)) return env.Undefined();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    return type_error(env, "backwardAsync(dout: Float32Array of the last training forward's output size)"), env.Undefined();
  auto d = info[0].As<Napi::Float32Array>();
  auto* w = new VisionWorker(env, this, info.This().As<Napi::Object>(), VisionWorker::Mode::Backward, std::vector<float>(d.Data(), d.Data() + d.ElementLength()), {});
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

void RegisterVision(Napi::Env env, Napi::Object exports) { exports.Set("VisionTower", VisionWrap::Define(env)); }

}  // namespace vlatext_napi
