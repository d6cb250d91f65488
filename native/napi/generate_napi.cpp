// N-API wrappers for generation: the action-grammar token automaton, constrained
// (batched) generation on a worker thread with per-token callbacks, and the KV cache
// for incremental decoding. Argument checks and conversions only.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../decode/automaton.h"
#include "../decode/generate.h"
#include "../decode/speculative.h"
#include "../model/decoder.h"
#include "handles.h"
#include "napi_util.h"

namespace vlatext_napi {

using vlatext::Status;

// new ActionAutomaton({count, dims, bins, width, separator, timestepSeparator, eos, tokenIds, tokenTexts})
//   .allowed(state?) is exposed through step-by-step helpers for tests: allowedAfter(tokens) -> Int32Array
class AutomatonWrap : public Napi::ObjectWrap<AutomatonWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    Napi::Function f = DefineClass(env, "ActionAutomaton", {InstanceMethod<&AutomatonWrap::AllowedAfter>("allowedAfter"), InstanceAccessor<&AutomatonWrap::MemoSize>("memoSize")});
    addon_data(env).automaton_ctor = Napi::Persistent(f);
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
    if (in_flight.load() > 0) return state_error(env, "ActionAutomaton is in use by a generation"), env.Undefined();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) return type_error(env, "allowedAfter(tokens: Int32Array)"), env.Undefined();
    auto t = info[0].As<Napi::Int32Array>();
    vlatext::GState s = automaton_->start();
    for (size_t i = 0; i < t.ElementLength(); i++)
      if (!automaton_->advance(&s, t[i])) return fail(env, Status::InvalidArgument, "token " + std::to_string(t[i]) + " at position " + std::to_string(i) + " is not allowed"), env.Undefined();
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
  // spec: speculative decoding of the one prompt with spec->draft (nullptr: plain decoding)
  GenerateWorker(Napi::Env env, DecoderState* d, Napi::Object dobj, AutomatonWrap* a, Napi::Object aobj, std::vector<std::vector<int32_t>> prompts, std::vector<vlatext::GenOptions> opts,
                 Napi::Function on_tokens, bool batch, const std::vector<Napi::Object>& keep, std::unique_ptr<vlatext::SpecOptions> spec)
      : Napi::AsyncProgressQueueWorker<SeqToken>(env, "vlatext:generateConstrained"), deferred_(Napi::Promise::Deferred::New(env)), d_(d), a_(a), prompts_(std::move(prompts)), opts_(std::move(opts)), batch_(batch),
        spec_(std::move(spec)) {
    dref_ = Napi::Persistent(dobj);
    aref_ = Napi::Persistent(aobj);
    // the cancel flags' typed arrays stay alive (their memory is polled) until the worker is deleted
    for (const Napi::Object& o : keep) keep_.push_back(Napi::Persistent(o));
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
    if (spec_) {
      spec_->gen = opts_[0];
      results_.assign(1, vlatext::GenResult{});
      std::function<void(int32_t)> one;
      if (cb) one = [&cb](int32_t t) { cb(0, t); };
      status_ = vlatext::generate_speculative(*d_->model_, prompts_[0], *a_->automaton_, *spec_, &results_[0], &stats_, &err, one);
    } else {
      status_ = vlatext::generate_constrained_batch(*d_->model_, prompts_, *a_->automaton_, opts_, &results_, &err, cb);
    }
    if (status_ != Status::Ok) SetError("generateConstrained: " + err);
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
      o.Set("cancelled", r.cancelled);
      o.Set("modelCalls", r.model_calls);
      o.Set("forced", r.forced);
      o.Set("sampled", r.sampled);
      o.Set("maskMs", r.mask_ms);
      o.Set("modelMs", r.model_ms);
      o.Set("headMs", r.head_ms);
      o.Set("totalMs", r.total_ms);
      if (spec_) o.Set("drafted", stats_.drafted), o.Set("accepted", stats_.accepted);
      return o;
    };
    if (!batch_) return deferred_.Resolve(result(results_[0]));
    Napi::Array arr = Napi::Array::New(env, results_.size());
    for (size_t i = 0; i < results_.size(); i++) arr.Set((uint32_t)i, result(results_[i]));
    deferred_.Resolve(arr);
  }
  void OnError(const Napi::Error& e) override {
    done();
    Napi::Error err = e;
    set_status(Env(), err, status_);
    deferred_.Reject(err.Value());
  }

 private:
  void done() {
    d_->in_flight--;
    a_->in_flight--;
  }
  Napi::Promise::Deferred deferred_;
  DecoderState* d_;
  AutomatonWrap* a_;
  Napi::ObjectReference dref_, aref_;
  std::vector<Napi::ObjectReference> keep_;
  Napi::FunctionReference on_tokens_;
  std::vector<std::vector<int32_t>> prompts_;
  std::vector<vlatext::GenOptions> opts_;
  bool batch_;
  std::vector<vlatext::GenResult> results_;
  std::unique_ptr<vlatext::SpecOptions> spec_;
  vlatext::SpecStats stats_;
  Status status_ = Status::Ok;
};

// keep: objects the worker must hold on to (the cancel flag's typed array).
bool read_gen_options(Napi::Env env, Napi::Value v, vlatext::GenOptions* opt, std::vector<Napi::Object>* keep) {
  if (!v.IsObject()) return true;
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value c = o.Get("cancel");
  if (!c.IsUndefined()) {
    if (!c.IsTypedArray() || c.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array || c.As<Napi::TypedArray>().ElementLength() < 1)
      return type_error(env, "'cancel' must be an Int32Array of at least one element (element 0 non-zero: stop this sequence)");
    opt->cancel = c.As<Napi::Int32Array>().Data();
    keep->push_back(c.As<Napi::Object>());
  }
  int seed = 0, jf = 1;
  if (!get_float(env, o, "temperature", &opt->temperature) || !get_int(env, o, "seed", 0, &seed) || !get_int(env, o, "jumpForward", 0, &jf) || !get_int(env, o, "sparseMax", 0, &opt->sparse_max) ||
      !get_int(env, o, "maxTokens", 1, &opt->max_tokens))
    return false;
  opt->seed = (uint64_t)seed;
  opt->jump_forward = jf != 0;
  if (!get_i32_array(env, o, "positions", -1, &opt->prompt.positions, false)) return false;
  if (o.Has("injectRows") && !o.Get("injectRows").IsUndefined()) {
    if (!get_i32_array(env, o, "injectRows", -1, &opt->prompt.inject_rows, true) || !get_f32_array(env, o, "inject", -1, &opt->prompt.inject)) return false;
    if (o.Has("deepstack") && !o.Get("deepstack").IsUndefined()) {
      const size_t per = opt->prompt.inject.size();
      if (!get_f32_array(env, o, "deepstack", -1, &opt->prompt.deepstack)) return false;
      if (per == 0 || opt->prompt.deepstack.size() % per != 0) return range_error(env, "'deepstack' must hold K layers of inject's (M, C) values");
    }
  }
  return true;
}

// generateConstrainedAsync(prompt: Int32Array, automaton, options?, onTokens?(tokens))
// generateConstrainedAsync([prompt, ...], automaton, [options, ...], onTokens?(seq, tokens)): one batched decode
// (the Decoder wrapper has checked that `d` is ready)
Napi::Value generate_constrained_async(const Napi::CallbackInfo& info, DecoderState* d, Napi::Object self) {
  Napi::Env env = info.Env();
  const bool batch = info.Length() > 0 && info[0].IsArray();
  if (info.Length() < 2 || !info[1].IsObject() || (!batch && (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)))
    return type_error(env, "generateConstrainedAsync(prompt: Int32Array | Int32Array[], automaton, options?, onTokens?)"), env.Undefined();
  Napi::Object aobj = info[1].As<Napi::Object>();
  if (!aobj.InstanceOf(addon_data(env).automaton_ctor.Value())) return type_error(env, "generateConstrainedAsync: the second argument must be an ActionAutomaton"), env.Undefined();
  AutomatonWrap* a = Napi::ObjectWrap<AutomatonWrap>::Unwrap(aobj);
  if (a->in_flight.load() > 0) return state_error(env, "the ActionAutomaton is in use by another generation"), env.Undefined();
  std::vector<std::vector<int32_t>> prompts;
  std::vector<vlatext::GenOptions> opts;
  std::vector<Napi::Object> keep;
  std::unique_ptr<vlatext::SpecOptions> spec;
  auto add_prompt = [&](Napi::Value p, Napi::Value o) {
    if (!p.IsTypedArray() || p.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) return type_error(env, "each prompt must be an Int32Array");
    auto t = p.As<Napi::Int32Array>();
    prompts.emplace_back(t.Data(), t.Data() + t.ElementLength());
    vlatext::GenOptions opt;
    if (!read_gen_options(env, o, &opt, &keep)) return false;
    opts.push_back(opt);
    // draft (Int32Array) and maxDraft: speculative decoding (greedy, one prompt)
    if (o.IsObject() && o.As<Napi::Object>().Has("draft") && !o.As<Napi::Object>().Get("draft").IsUndefined()) {
      if (batch) return range_error(env, "generateConstrainedAsync: a draft (speculative decoding) takes one prompt, not a batch");
      if (opt.temperature > 0) return range_error(env, "generateConstrainedAsync: speculative decoding (a draft) is greedy: temperature must be 0");
      spec = std::make_unique<vlatext::SpecOptions>();
      if (!get_i32_array(env, o.As<Napi::Object>(), "draft", -1, &spec->draft, false) || !get_int(env, o.As<Napi::Object>(), "maxDraft", 0, &spec->max_draft)) return false;
    }
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
  auto* w = new GenerateWorker(env, d, self, a, aobj, std::move(prompts), std::move(opts), on_tokens, batch, keep, std::move(spec));
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
    decoder_ = unwrap_decoder(env, d);
    if (!decoder_) return;
    if (!decoder_->model_) {
      state_error(env, "KvCache: the decoder was disposed");
      return;
    }
    const double cap = info[1].As<Napi::Number>().DoubleValue();
    if (cap < 1 || cap > 1 << 20 || cap != (int)cap) {
      range_error(env, "KvCache: capacity must be an integer in [1, 1048576]");
      return;
    }
    decoder_ref_ = Napi::Persistent(d);
    std::string err;
    const Status st = decoder_->model_->init_cache(&cache_, (int)cap, &err);
    if (st != Status::Ok) {
      fail(env, st, "KvCache: " + err);
      return;
    }
    decoder_->caches.push_back(&cache_);
  }
  ~KvCacheWrap() {
    if (!decoder_) return;
    auto& cs = decoder_->caches;
    cs.erase(std::remove(cs.begin(), cs.end(), &cache_), cs.end());
  }

 private:
  Napi::Value Feed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!decoder_->model_) return state_error(env, "KvCache: the decoder was disposed"), env.Undefined();
    if (decoder_->in_flight.load() > 0) return state_error(env, "KvCache: the decoder is busy with an async call"), env.Undefined();
    if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      return type_error(env, "feed(tokens): tokens must be an Int32Array"), env.Undefined();
    auto t = info[0].As<Napi::Int32Array>();
    const int n = (int)t.ElementLength();
    const vlatext::DecoderConfig& c = decoder_->model_->config();
    const int S = c.rope_sections.empty() ? 1 : (int)c.rope_sections.size();
    std::vector<int32_t> positions, rows;
    std::vector<float> inject, deepstack;
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
        if (o.Has("deepstack") && !o.Get("deepstack").IsUndefined()) {
          if (!get_f32_array(env, o, "deepstack", -1, &deepstack)) return env.Undefined();
          if (inject.empty() || deepstack.size() % inject.size() != 0) return range_error(env, "feed: 'deepstack' must hold K layers of inject's (M, C) values"), env.Undefined();
        }
      }
    }
    auto out = Napi::Float32Array::New(env, (size_t)c.V);
    std::string err;
    const Status st = decoder_->model_->infer(&cache_, t.Data(), n, has_pos ? positions.data() : nullptr, (int)rows.size(), rows.data(), inject.data(), out.Data(), &err,
                                                  inject.empty() ? 0 : (int)(deepstack.size() / inject.size()), deepstack.empty() ? nullptr : deepstack.data());
    if (st != Status::Ok) return fail(env, st, "feed: " + err), env.Undefined();
    return out;
  }
  Napi::Value Reset(const Napi::CallbackInfo& info) {
    cache_.length = 0;
    cache_.next_pos = 0;
    return info.Env().Undefined();
  }
  Napi::Value Length(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cache_.length); }
  Napi::Value Capacity(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cache_.capacity); }

  DecoderState* decoder_ = nullptr;
  Napi::ObjectReference decoder_ref_;
  vlatext::KvCache cache_;
};

void RegisterGeneration(Napi::Env env, Napi::Object exports) {
  exports.Set("KvCache", KvCacheWrap::Define(env));
  exports.Set("ActionAutomaton", AutomatonWrap::Define(env));
}

}  // namespace vlatext_napi
