// N-API wrapper for a vlatext::VisionEncoder (native/model/vision_encoder.h) of either family:
//   new VisionTower({family?: "qwen2_5_vl" (default) | "siglip", depth, hiddenSize, intermediateSize,
//                    numHeads, outHiddenSize, patchSize, dtype?, device?, threads?, isa?, ...})
//     qwen2_5_vl (native/model/vision.h): spatialMergeSize, temporalPatchSize, windowSize,
//                    fullattBlockIndexes: Int32Array, rmsNormEps?, ropeTheta?
//     siglip (native/model/vision_siglip.h): imageSize, scaleFactor, layerNormEps?
//   .params -> ParamStore (param_store_napi.cpp), .setTrainable(on), .backend, .family
//   .forwardAsync(pixels: Float32Array, grids: Int32Array, train = false) -> Promise<Float32Array>
//       train: keeps this call's activations in the encoder for the next backwardAsync
//   .backwardAsync(dout: Float32Array) -> Promise<void>   gradients accumulate until zeroGrad()
//   .dispose()
#include <napi.h>

#include <atomic>
#include <cstring>
#include <memory>

#include "../model/vision.h"
#include "../model/vision_qwen3.h"
#include "../model/vision_siglip.h"
#include "handles.h"
#include "napi_util.h"

namespace vlatext_napi {

using vlatext::VisionEncoder;
using vlatext::VisionTower;

class VisionWrap : public Napi::ObjectWrap<VisionWrap>, public StoreOwner {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "VisionTower",
                       {InstanceAccessor<&VisionWrap::Params>("params"), InstanceMethod<&VisionWrap::SetTrainable>("setTrainable"),
                        InstanceMethod<&VisionWrap::ForwardAsync>("forwardAsync"), InstanceMethod<&VisionWrap::BackwardAsync>("backwardAsync"),
                        InstanceMethod<&VisionWrap::Dispose>("dispose"), InstanceAccessor<&VisionWrap::BackendName>("backend"), InstanceAccessor<&VisionWrap::Family>("family")});
  }

  explicit VisionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<VisionWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      type_error(env, "VisionTower(config): config must be an object");
      return;
    }
    Napi::Object o = info[0].As<Napi::Object>();
    std::string family = "qwen2_5_vl";
    if (o.Has("family") && !get_string(env, o, "family", &family)) return;
    vlatext::BackendOptions bo;
    if (!read_backend(env, o, &bo)) return;
    std::string err;
    Status st = Status::Ok;
    if (family == "qwen2_5_vl") {
      vlatext::VisionConfig c;
      if (!get_int(env, o, "depth", 1, &c.depth) || !get_int(env, o, "hiddenSize", 1, &c.C) || !get_int(env, o, "intermediateSize", 1, &c.F) || !get_int(env, o, "numHeads", 1, &c.NH) ||
          !get_int(env, o, "outHiddenSize", 1, &c.Cout) || !get_int(env, o, "patchSize", 1, &c.patch) || !get_int(env, o, "spatialMergeSize", 1, &c.merge) ||
          !get_int(env, o, "temporalPatchSize", 1, &c.temporal) || !get_int(env, o, "windowSize", 1, &c.window) || !get_float(env, o, "rmsNormEps", &c.eps) || !get_float(env, o, "ropeTheta", &c.theta) ||
          !read_dtype(env, o, &c.dtype))
        return;
      std::vector<int32_t> full;
      if (!get_i32_array(env, o, "fullattBlockIndexes", -1, &full, false)) return;
      c.fullatt.assign(full.begin(), full.end());
      std::unique_ptr<VisionTower> m;
      st = VisionTower::create(c, bo, &m, &err);
      model_ = std::move(m);
    } else if (family == "siglip") {
      vlatext::SiglipConfig c;
      if (!get_int(env, o, "depth", 1, &c.depth) || !get_int(env, o, "hiddenSize", 1, &c.C) || !get_int(env, o, "intermediateSize", 1, &c.F) || !get_int(env, o, "numHeads", 1, &c.NH) ||
          !get_int(env, o, "outHiddenSize", 1, &c.Cout) || !get_int(env, o, "patchSize", 1, &c.patch) || !get_int(env, o, "imageSize", 1, &c.image) || !get_int(env, o, "scaleFactor", 1, &c.scale) ||
          !get_float(env, o, "layerNormEps", &c.eps) || !read_dtype(env, o, &c.dtype))
        return;
      std::unique_ptr<vlatext::SiglipEncoder> m;
      st = vlatext::SiglipEncoder::create(c, bo, &m, &err);
      model_ = std::move(m);
    } else if (family == "qwen3_vl") {
      vlatext::Qwen3VisionConfig c;
      if (!get_int(env, o, "depth", 1, &c.depth) || !get_int(env, o, "hiddenSize", 1, &c.C) || !get_int(env, o, "intermediateSize", 1, &c.F) || !get_int(env, o, "numHeads", 1, &c.NH) ||
          !get_int(env, o, "outHiddenSize", 1, &c.Cout) || !get_int(env, o, "patchSize", 1, &c.patch) || !get_int(env, o, "spatialMergeSize", 1, &c.merge) ||
          !get_int(env, o, "temporalPatchSize", 1, &c.temporal) || !get_int(env, o, "numPositionEmbeddings", 1, &c.npos) || !get_float(env, o, "ropeTheta", &c.theta) || !read_dtype(env, o, &c.dtype))
        return;
      std::vector<int32_t> ds;
      if (!get_i32_array(env, o, "deepstackVisualIndexes", -1, &ds, false)) return;
      c.deepstack.assign(ds.begin(), ds.end());
      std::unique_ptr<vlatext::Qwen3VisionEncoder> m;
      st = vlatext::Qwen3VisionEncoder::create(c, bo, &m, &err);
      model_ = std::move(m);
    } else {
      type_error(env, "VisionTower config: family '" + family + "' is not a vision encoder family (qwen2_5_vl, siglip, qwen3_vl)");
      return;
    }
    if (st != Status::Ok) {
      fail(env, st, "VisionTower config: " + err);
      return;
    }
    accounted_ = model_->params().bytes();
    Napi::MemoryManagement::AdjustExternalMemory(env, accounted_);
  }

  vlatext::ParamStore* owned_store() override { return model_ ? &model_->params() : nullptr; }
  bool owner_busy() const override { return in_flight.load() > 0; }
  const char* owner_name() const override { return "VisionTower"; }

  std::unique_ptr<VisionEncoder> model_;  // holds the last training forward's activations (its backend's memory)
  std::atomic<int> in_flight{0};

 private:
  bool ready(Napi::Env env) {
    if (!model_) return state_error(env, "VisionTower was disposed");
    if (in_flight.load() > 0) return state_error(env, "VisionTower is busy; await the running call");
    return true;
  }
  void account(Napi::Env env) {
    const int64_t now = model_ ? model_->params().bytes() : 0;
    if (now != accounted_) Napi::MemoryManagement::AdjustExternalMemory(env, now - accounted_);
    accounted_ = now;
  }
  Napi::Value Params(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) return state_error(env, "VisionTower was disposed"), env.Undefined();
    if (params_.IsEmpty()) params_ = Napi::Persistent(new_param_store(env, this, info.This().As<Napi::Object>()).As<Napi::Object>());
    return params_.Value();
  }
  Napi::Value BackendName(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) return state_error(env, "VisionTower was disposed"), env.Undefined();
    return Napi::String::New(env, model_->backend().describe());
  }
  Napi::Value Family(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!model_) return state_error(env, "VisionTower was disposed"), env.Undefined();
    return Napi::String::New(env, model_->family());
  }
  Napi::Value SetTrainable(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!ready(env)) return env.Undefined();
    std::string err;
    const Status st = model_->set_trainable(info.Length() > 0 && info[0].ToBoolean(), &err);
    if (st != Status::Ok) return fail(env, st, "setTrainable: " + err), env.Undefined();
    account(env);
    return env.Undefined();
  }
  Napi::Value ForwardAsync(const Napi::CallbackInfo& info);
  Napi::Value BackwardAsync(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (in_flight.load() > 0) return state_error(info.Env(), "VisionTower.dispose(): a call is still running; await it first"), info.Env().Undefined();
    model_.reset();
    account(info.Env());
    return info.Env().Undefined();
  }
  Napi::ObjectReference params_;
  int64_t accounted_ = 0;
};

class VisionWorker : public StatusWorker {
 public:
  // forward (train: keep the activations), or backward of dout (pixels_ holds dout, grids_ empty)
  enum class Mode { Forward, ForwardTrain, Backward };
  VisionWorker(Napi::Env env, VisionWrap* w, Napi::Object self, Mode mode, std::vector<float> pixels, std::vector<int32_t> grids)
      : StatusWorker(env, "vlatext:vision"), w_(w), mode_(mode), pixels_(std::move(pixels)), grids_(std::move(grids)) {
    self_ = Napi::Persistent(self);
    w_->in_flight++;
  }
  void Execute() override {
    VisionEncoder& m = *w_->model_;
    std::string err;
    if (mode_ == Mode::Backward) {
      const int64_t want = m.backward_values();
      if (want == 0) return Fail(Status::InvalidState, "backward: no training forward to go back through; call forwardAsync(pixels, grids, true) first");
      if ((int64_t)pixels_.size() != want) return Fail(Status::InvalidArgument, "backward: dout holds " + std::to_string(pixels_.size()) + " values, the last forward gave " + std::to_string(want));
      const Status st = m.encode_backward(pixels_.data(), &err);
      if (st != Status::Ok) Fail(st, "backward: " + err);
      return;
    }
    const int64_t P = m.patch_values();
    const int64_t N = (int64_t)pixels_.size() / P;
    if ((int64_t)pixels_.size() != N * P) return Fail(Status::InvalidArgument, "forward: pixels hold " + std::to_string(pixels_.size()) + " values, not a multiple of " + std::to_string(P));
    out_.assign((size_t)(m.out_blocks() * m.out_rows(N) * m.out_width()), 0.0f);
    const Status st = m.encode(pixels_.data(), N, grids_.data(), (int)grids_.size() / 3, out_.data(), mode_ == Mode::ForwardTrain, &err);
    if (st != Status::Ok) return Fail(st, "forward: " + err);
  }
  void Finish() override { w_->in_flight--; }
  void OnOK() override {
    Finish();
    if (mode_ == Mode::Backward) return deferred_.Resolve(Env().Undefined());
    auto a = Napi::Float32Array::New(Env(), out_.size());
    std::memcpy(a.Data(), out_.data(), sizeof(float) * out_.size());
    deferred_.Resolve(a);
  }

 private:
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
