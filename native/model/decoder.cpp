#include "decoder.h"

#include <cmath>
#include <cstring>
#include <random>

#include "../kernels/attention.h"
#include "../kernels/rope.h"

namespace vlatext {

const char* const kProjNames[kNumProj] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

// What a forward saves for its backward (device memory unless named host).
struct Decoder::Acts {
  explicit Acts(Backend* be)
      : be(be), tokens(be), positions(be), xf(be), lnf(be), rstdf(be), head_rows(be), head_targets(be), head_in(be), head_lse(be), dhead_in(be),
        dlnf(be), dx(be), dh(be), dg(be), du(be), dln(be), datt(be), dq(be), dk(be), dv(be), dqp(be), dkp(be) {}
  Backend* be;
  int B = 0, T = 0;
  int64_t N = 0;
  std::vector<int32_t> host_tokens, host_targets, host_inject_rows;
  Buf<int32_t> tokens, positions;  // (N), (S, N)
  struct Layer {
    explicit Layer(Backend* be)
        : x(be), ln1(be), rstd1(be), q(be), k(be), v(be), qpre(be), kpre(be), rstdq(be), rstdk(be), att(be), lse(be), xmid(be), ln2(be), rstd2(be), g(be), u(be), h(be) {
      for (int p = 0; p < kNumProj; p++) ax[p].bind(be), mask[p].bind(be);
    }
    Buf<float> x, ln1, rstd1, q, k, v, qpre, kpre, rstdq, rstdk, att, lse, xmid, ln2, rstd2, g, u, h;
    Buf<float> ax[kNumProj];    // LoRA A x, (N, R)
    Buf<float> mask[kNumProj];  // LoRA dropout masks, (N, in), empty when off
  };
  std::vector<Layer> layers;
  Buf<float> xf, lnf, rstdf;
  // The LM head runs on K rows only: those with a target (all N when the caller wants logits).
  std::vector<int32_t> host_head_rows;  // (K)
  Buf<int32_t> head_rows, head_targets;  // (K)
  Buf<float> head_in, head_lse, dhead_in;  // (K, C), (K), (K, C)
  // the backward's gradients, kept between steps (zeroed where they accumulate)
  Buf<float> dlnf, dx, dh, dg, du, dln, datt, dq, dk, dv, dqp, dkp;
};

namespace {

// Logits (K x V floats) kept between the head's forward and backward when a trained head is
// at most this large; past it they are recomputed chunk by chunk.
constexpr int64_t kKeepLogits = 1 << 24;

}  // namespace

Decoder::Decoder(const DecoderConfig& cfg, std::unique_ptr<Backend> be) : cfg_(cfg), be_(std::move(be)) {}
Decoder::~Decoder() = default;

Status Decoder::create(const DecoderConfig& cfg, const BackendOptions& bo, std::unique_ptr<Decoder>* out, std::string* error) {
  auto bad = [&](const std::string& m) {
    *error = m;
    return Status::InvalidArgument;
  };
  if (cfg.V < 1 || cfg.C < 1 || cfg.L < 1 || cfg.NH < 1 || cfg.KV < 1 || cfg.hd < 2 || cfg.F < 1) return bad("vocab_size, hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim and intermediate_size must all be positive");
  if (cfg.NH % cfg.KV != 0) return bad("num_attention_heads (" + std::to_string(cfg.NH) + ") must be a multiple of num_key_value_heads (" + std::to_string(cfg.KV) + ")");
  if (cfg.hd % 2 != 0) return bad("head_dim must be even for rotary embeddings");
  if (!cfg.rope_sections.empty()) {
    int sum = 0;
    for (int s : cfg.rope_sections) sum += s;
    if (sum != cfg.hd / 2) return bad("rope sections (mrope_section) must sum to head_dim / 2 = " + std::to_string(cfg.hd / 2) + ", got " + std::to_string(sum));
  }
  std::unique_ptr<Backend> be;
  const Status bs = create_backend(bo, &be, error);
  if (bs != Status::Ok) return bs;
  std::unique_ptr<Decoder> d(new Decoder(cfg, std::move(be)));
  d->store_ = std::make_unique<ParamStore>(d->be_.get());
  ParamStore& st = *d->store_;
  const int64_t C = cfg.C, qd = (int64_t)cfg.NH * cfg.hd, kd = (int64_t)cfg.KV * cfg.hd;
  const DType M = cfg.dtype;  // matrices and embeddings
  const DType S = DType::F32;  // norms and biases
  st.add("model.embed_tokens.weight", {cfg.V, C}, M);
  for (int l = 0; l < cfg.L; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    st.add(p + "input_layernorm.weight", {C}, S);
    st.add(p + "self_attn.q_proj.weight", {qd, C}, M);
    st.add(p + "self_attn.k_proj.weight", {kd, C}, M);
    st.add(p + "self_attn.v_proj.weight", {kd, C}, M);
    if (cfg.arch == Arch::Qwen2) {
      st.add(p + "self_attn.q_proj.bias", {qd}, S);
      st.add(p + "self_attn.k_proj.bias", {kd}, S);
      st.add(p + "self_attn.v_proj.bias", {kd}, S);
    }
    if (cfg.arch == Arch::Qwen3) {
      st.add(p + "self_attn.q_norm.weight", {cfg.hd}, S);
      st.add(p + "self_attn.k_norm.weight", {cfg.hd}, S);
    }
    st.add(p + "self_attn.o_proj.weight", {C, qd}, M);
    st.add(p + "post_attention_layernorm.weight", {C}, S);
    st.add(p + "mlp.gate_proj.weight", {cfg.F, C}, M);
    st.add(p + "mlp.up_proj.weight", {cfg.F, C}, M);
    st.add(p + "mlp.down_proj.weight", {C, cfg.F}, M);
  }
  st.add("model.norm.weight", {C}, S);
  if (!cfg.tie) st.add("lm_head.weight", {cfg.V, C}, M);
  const Status as = st.end_segment(error);
  if (as != Status::Ok) return as;
  // every layer's tensors by index, once (the forward looks them up per layer)
  d->embed_ = st.index_of("model.embed_tokens.weight");
  d->norm_ = st.index_of("model.norm.weight");
  d->lm_head_ = st.index_of("lm_head.weight");
  for (int l = 0; l < cfg.L; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerW w{};
    w.ln1 = st.index_of(p + "input_layernorm.weight");
    for (int j = 0; j < kNumProj; j++) w.w[j] = st.index_of(p + (j < 4 ? "self_attn." : "mlp.") + kProjNames[j] + ".weight");
    w.bq = st.index_of(p + "self_attn.q_proj.bias");
    w.bk = st.index_of(p + "self_attn.k_proj.bias");
    w.bv = st.index_of(p + "self_attn.v_proj.bias");
    w.qn = st.index_of(p + "self_attn.q_norm.weight");
    w.kn = st.index_of(p + "self_attn.k_norm.weight");
    w.ln2 = st.index_of(p + "post_attention_layernorm.weight");
    d->layers_.push_back(w);
  }
  // frozen until set_train_base(true) (full fine-tuning) or enable_lora(): inference keeps no gradients
  d->acts_ = std::make_unique<Acts>(d->be_.get());
  *out = std::move(d);
  return Status::Ok;
}

Status Decoder::set_train_base(bool on, std::string* error) { return store_->set_trainable(0, on, error); }

Decoder::Lora Decoder::lora(int l, Proj p) {
  const int a = has_lora() ? lora_a_[(size_t)(l * kNumProj + p)] : -1;
  if (a < 0) return {};
  const int b = lora_b_[(size_t)(l * kNumProj + p)];
  return {store_->f32(a), store_->f32(b), store_->grad(a), store_->grad(b)};
}

Status Decoder::enable_lora(const LoraConfig& lc, std::string* error) {
  if (lc.rank < 1) {
    *error = "LoRA rank must be >= 1";
    return Status::InvalidArgument;
  }
  ParamStore& st = *store_;
  st.truncate(1);
  const int64_t C = cfg_.C, qd = (int64_t)cfg_.NH * cfg_.hd, kd = (int64_t)cfg_.KV * cfg_.hd;
  const int64_t in[kNumProj] = {C, C, C, qd, C, C, cfg_.F};
  const int64_t outd[kNumProj] = {qd, kd, kd, C, cfg_.F, cfg_.F, C};
  for (int l = 0; l < cfg_.L; l++)
    for (int p = 0; p < kNumProj; p++) {
      if (!lc.targets[p]) continue;
      const std::string base = "model.layers." + std::to_string(l) + "." + (p < 4 ? "self_attn." : "mlp.") + kProjNames[p];
      st.add(base + ".lora_A.weight", {lc.rank, in[p]}, DType::F32);
      st.add(base + ".lora_B.weight", {outd[p], lc.rank}, DType::F32);
    }
  const Status s = st.end_segment(error);
  if (s != Status::Ok) return s;
  lora_ = lc;
  lora_a_.assign((size_t)(cfg_.L * kNumProj), -1);
  lora_b_.assign((size_t)(cfg_.L * kNumProj), -1);
  std::mt19937_64 rng(lc.seed);
  for (int l = 0; l < cfg_.L; l++)
    for (int p = 0; p < kNumProj; p++) {
      if (!lc.targets[p]) continue;
      const std::string base = "model.layers." + std::to_string(l) + "." + (p < 4 ? "self_attn." : "mlp.") + kProjNames[p];
      const int a = st.index_of(base + ".lora_A.weight");
      lora_a_[(size_t)(l * kNumProj + p)] = a;
      lora_b_[(size_t)(l * kNumProj + p)] = st.index_of(base + ".lora_B.weight");
      const ParamTensor& t = st.tensors()[(size_t)a];
      const float bound = 1.0f / std::sqrt((float)t.shape[1]);
      std::uniform_real_distribution<float> u(-bound, bound);
      std::vector<float> init((size_t)t.size);
      for (auto& x : init) x = u(rng);
      st.set(a, init.data());
    }
  st.set_trainable(0, false, error);
  return st.set_trainable(1, true, error);
}

// The LoRA choke point: out (N, outd) = inp W^T + bias + (alpha/R) (inp A^T) B^T; saves ax = inp A^T.
void Decoder::linear_forward(float* out, float* ax, const float* inp, ConstTensorRef w, const float* bias, const Lora& lo, int64_t N, int in, int outd) {
  Backend& be = *be_;
  be.matmul_forward(out, inp, w, bias, N, in, outd);
  if (!lo.A) return;
  const int R = lora_.rank;
  Buf<float>& xd = scratch_[0];
  Buf<float>& tmp = scratch_[1];
  tmp.bind(&be), xd.bind(&be);
  if (!tmp.reserve(N * outd) || (lo.mask && !xd.reserve(N * in))) {
    scratch_failed_ = true;
    return;
  }
  if (lo.mask) {  // dropout on the adapter's input
    be.copy(xd.data(), inp, sizeof(float) * (size_t)(N * in));
    be.mul_inplace(xd.data(), lo.mask, N * in);
    inp = xd.data();
  }
  be.matmul_forward(ax, inp, {lo.A, DType::F32}, nullptr, N, in, R);
  be.matmul_forward(tmp.data(), ax, {lo.B, DType::F32}, nullptr, N, R, outd);
  be.axpy(out, tmp.data(), lora_.alpha / R, N * outd);
}

void Decoder::linear_backward(float* dinp, float* dW, float* dbias, const float* dout, const float* inp, const float* ax, ConstTensorRef w, const Lora& lo, int64_t N, int in, int outd) {
  Backend& be = *be_;
  be.matmul_backward(dinp, dW, dbias, dout, inp, w, N, in, outd);
  if (!lo.A) return;
  const int R = lora_.rank;
  Buf<float>& sd = scratch_[1];
  Buf<float>& dax = scratch_[2];
  Buf<float>& xd = scratch_[0];
  Buf<float>& dxd = scratch_[3];
  for (Buf<float>* t : {&sd, &dax, &xd, &dxd}) t->bind(&be);
  if (!sd.reserve(N * outd) || !dax.reserve(N * R) || (lo.mask && (!xd.reserve(N * in) || !dxd.reserve(N * in)))) {
    scratch_failed_ = true;
    return;
  }
  be.zero(dax.data(), sizeof(float) * (size_t)(N * R));
  be.scale(sd.data(), dout, lora_.alpha / R, N * outd);
  be.matmul_backward(dax.data(), lo.dB, nullptr, sd.data(), ax, {lo.B, DType::F32}, N, R, outd);
  if (!lo.mask) {
    be.matmul_backward(dinp, lo.dA, nullptr, dax.data(), inp, {lo.A, DType::F32}, N, in, R);
    return;
  }
  be.zero(dxd.data(), sizeof(float) * (size_t)(N * in));
  be.copy(xd.data(), inp, sizeof(float) * (size_t)(N * in));
  be.mul_inplace(xd.data(), lo.mask, N * in);
  be.matmul_backward(dxd.data(), lo.dA, nullptr, dax.data(), xd.data(), {lo.A, DType::F32}, N, in, R);
  be.mul_inplace(dxd.data(), lo.mask, N * in);
  be.axpy(dinp, dxd.data(), 1.0f, N * in);
}

Status Decoder::forward_layers(const Batch& b, std::string* error) {
  const DecoderConfig& c = cfg_;
  Backend& be = *be_;
  if (b.B < 1 || b.T < 1 || !b.tokens) {
    *error = "batch needs B >= 1, T >= 1 and tokens";
    return Status::InvalidArgument;
  }
  const int64_t N = (int64_t)b.B * b.T, C = c.C;
  for (int64_t n = 0; n < N; n++)
    if (b.tokens[n] < 0 || b.tokens[n] >= c.V) {
      *error = "token " + std::to_string(b.tokens[n]) + " at row " + std::to_string(n) + " is outside the vocabulary [0, " + std::to_string(c.V) + ")";
      return Status::InvalidArgument;
    }
  if (b.targets)
    for (int64_t n = 0; n < N; n++)
      if (b.targets[n] >= c.V) {
        *error = "target " + std::to_string(b.targets[n]) + " at row " + std::to_string(n) + " is outside the vocabulary";
        return Status::InvalidArgument;
      }
  if (b.K < 0 || b.K > c.L || (b.K > 0 && b.M > 0 && !b.deepstack)) {
    *error = "DeepStack needs 0 <= K <= " + std::to_string(c.L) + " layers of (M, C) features, got K = " + std::to_string(b.K);
    return Status::InvalidArgument;
  }
  for (int m = 0; m < b.M; m++)
    if (b.inject_rows[m] < 0 || b.inject_rows[m] >= N) {
      *error = "injected embedding " + std::to_string(m) + " targets row " + std::to_string(b.inject_rows[m]) + ", outside [0, " + std::to_string(N) + ")";
      return Status::InvalidArgument;
    }
  Acts& a = *acts_;
  a.B = b.B;
  a.T = b.T;
  a.N = N;
  a.host_tokens.assign(b.tokens, b.tokens + N);
  a.host_targets.assign((size_t)N, -100);
  if (b.targets) a.host_targets.assign(b.targets, b.targets + N);
  a.host_inject_rows.assign(b.inject_rows, b.inject_rows + b.M);
  const int S = c.rope_sections.empty() ? 1 : (int)c.rope_sections.size();
  std::vector<int32_t> pos((size_t)(S * N));
  for (int s = 0; s < S; s++)
    for (int64_t n = 0; n < N; n++) pos[(size_t)(s * N + n)] = b.positions ? b.positions[s * N + n] : (int32_t)(n % b.T);
  bool ok = a.tokens.upload(b.tokens, N) && a.positions.upload(pos.data(), S * N);
  std::vector<int> sec = c.rope_sections.empty() ? std::vector<int>{c.hd / 2} : c.rope_sections;
  const RopeSpec rope{c.hd, c.theta, S, sec.data()};
  const AttnShape as{b.B, b.T, c.NH, c.KV, c.hd};
  const int64_t qd = (int64_t)c.NH * c.hd, kd = (int64_t)c.KV * c.hd;

  while ((int)a.layers.size() < c.L) a.layers.emplace_back(&be);
  const bool drop = has_lora() && lora_.dropout > 0 && b.dropout_seed >= 0;
  std::mt19937_64 drop_rng((uint64_t)b.dropout_seed);
  std::uniform_real_distribution<float> unif(0.0f, 1.0f);
  const int64_t in_dim[kNumProj] = {C, C, C, qd, C, C, c.F};
  for (int l = 0; l < c.L; l++)
    for (int p = 0; p < kNumProj; p++) {
      Buf<float>& m = a.layers[(size_t)l].mask[p];
      if (!drop || !lora_.targets[p]) {
        m.reset();
        continue;
      }
      std::vector<float> host((size_t)(N * in_dim[p]));
      const float keep = 1.0f - lora_.dropout;
      for (auto& v : host) v = unif(drop_rng) < keep ? 1.0f / keep : 0.0f;
      ok = ok && m.upload(host.data(), (int64_t)host.size());
    }
  // a layer's LoRA view with its dropout mask attached (if any)
  auto lora_at = [&](int l, Proj p) {
    Lora lo = lora(l, p);
    if (!a.layers[(size_t)l].mask[p].empty()) lo.mask = a.layers[(size_t)l].mask[p].data();
    return lo;
  };
  Buf<float> x(&be, N * C), o(&be, N * C), dn(&be, N * C);
  be.embedding_forward(x.data(), a.tokens.data(), W(embed_), N, (int)C);
  Buf<int32_t> rows(&be);
  Buf<float> ds(&be), dsrow(&be);
  const int K = b.M > 0 ? b.K : 0;
  if (b.M > 0) {
    Buf<float> inj(&be);
    ok = ok && rows.upload(b.inject_rows, b.M) && inj.upload(b.inject, (int64_t)b.M * C);
    if (ok) be.scatter_rows(x.data(), rows.data(), inj.data(), b.M, (int)C);
    ok = ok && (K == 0 || (ds.upload(b.deepstack, (int64_t)K * b.M * C) && dsrow.resize((int64_t)b.M * C)));
  }
  for (int l = 0; l < c.L && ok; l++) {
    const LayerW& w = layers_[(size_t)l];
    Acts::Layer& s = a.layers[(size_t)l];
    // every buffer below is written whole by its kernel: kept from the last step, not zeroed
    ok = s.x.assign(x) && s.ln1.ensure(N * C) && s.rstd1.ensure(N) && s.q.ensure(N * qd) && s.k.ensure(N * kd) && s.v.ensure(N * kd) && s.att.ensure(N * qd) &&
         s.lse.ensure((int64_t)b.B * c.NH * b.T) && s.xmid.ensure(N * C) && s.ln2.ensure(N * C) && s.rstd2.ensure(N) && s.g.ensure(N * c.F) && s.u.ensure(N * c.F) && s.h.ensure(N * c.F);
    for (int p = 0; p < kNumProj; p++) ok = ok && s.ax[p].ensure(has_lora() && lora_.targets[p] ? N * lora_.rank : 0);
    if (!ok) break;
    be.rmsnorm_forward(s.ln1.data(), s.rstd1.data(), s.x.data(), F32(w.ln1), N, (int)C, c.eps);
    linear_forward(s.q.data(), s.ax[kQ].data(), s.ln1.data(), W(w.w[kQ]), F32(w.bq), lora_at(l, kQ), N, (int)C, (int)qd);
    linear_forward(s.k.data(), s.ax[kK].data(), s.ln1.data(), W(w.w[kK]), F32(w.bk), lora_at(l, kK), N, (int)C, (int)kd);
    linear_forward(s.v.data(), s.ax[kV].data(), s.ln1.data(), W(w.w[kV]), F32(w.bv), lora_at(l, kV), N, (int)C, (int)kd);
    if (c.arch == Arch::Qwen3) {
      ok = s.qpre.assign(s.q) && s.kpre.assign(s.k) && s.rstdq.ensure(N * c.NH) && s.rstdk.ensure(N * c.KV);
      if (!ok) break;
      be.rmsnorm_forward(s.q.data(), s.rstdq.data(), s.qpre.data(), F32(w.qn), N * c.NH, c.hd, c.eps);
      be.rmsnorm_forward(s.k.data(), s.rstdk.data(), s.kpre.data(), F32(w.kn), N * c.KV, c.hd, c.eps);
    }
    be.rope_forward(s.q.data(), a.positions.data(), rope, N, c.NH);
    be.rope_forward(s.k.data(), a.positions.data(), rope, N, c.KV);
    be.attention_forward(s.att.data(), s.lse.data(), s.q.data(), s.k.data(), s.v.data(), as);
    linear_forward(o.data(), s.ax[kO].data(), s.att.data(), W(w.w[kO]), nullptr, lora_at(l, kO), N, (int)qd, (int)C);
    be.add(s.xmid.data(), s.x.data(), o.data(), N * C);
    be.rmsnorm_forward(s.ln2.data(), s.rstd2.data(), s.xmid.data(), F32(w.ln2), N, (int)C, c.eps);
    linear_forward(s.g.data(), s.ax[kGate].data(), s.ln2.data(), W(w.w[kGate]), nullptr, lora_at(l, kGate), N, (int)C, c.F);
    linear_forward(s.u.data(), s.ax[kUp].data(), s.ln2.data(), W(w.w[kUp]), nullptr, lora_at(l, kUp), N, (int)C, c.F);
    be.swiglu_forward(s.h.data(), s.g.data(), s.u.data(), N * c.F);
    linear_forward(dn.data(), s.ax[kDown].data(), s.h.data(), W(w.w[kDown]), nullptr, lora_at(l, kDown), N, c.F, (int)C);
    be.add(x.data(), s.xmid.data(), dn.data(), N * C);
    if (l < K) {  // DeepStack: x[rows] += deepstack[l] (the next layer saves the sum as its input)
      be.gather_rows(dsrow.data(), x.data(), rows.data(), b.M, (int)C);
      be.add(dsrow.data(), dsrow.data(), ds.data() + (int64_t)l * b.M * C, (int64_t)b.M * C);
      be.scatter_rows(x.data(), rows.data(), dsrow.data(), b.M, (int)C);
    }
  }
  ok = ok && !scratch_failed_ && a.xf.assign(x) && a.lnf.ensure(N * C) && a.rstdf.ensure(N);
  scratch_failed_ = false;
  if (!ok) {
    *error = "out of memory for the activations of a batch of " + std::to_string(N) + " tokens on " + be.describe() + "; use a smaller batch";
    return Status::OutOfMemory;
  }
  be.rmsnorm_forward(a.lnf.data(), a.rstdf.data(), a.xf.data(), F32(norm_), N, (int)C, c.eps);
  return be.sync(error);
}

Status Decoder::forward(const Batch& b, ForwardResult* result, float* logits_out, std::string* error) {
  Status st = forward_layers(b, error);
  if (st != Status::Ok) return st;
  Backend& be = *be_;
  Acts& a = *acts_;
  const int64_t N = a.N, C = cfg_.C;
  // rows without a target add nothing to the loss, so the head skips them unless every logit is wanted
  std::vector<int32_t> rows, targets;
  for (int64_t n = 0; n < N; n++)
    if (logits_out || a.host_targets[(size_t)n] >= 0) rows.push_back((int32_t)n), targets.push_back(a.host_targets[(size_t)n]);
  const int64_t K = (int64_t)rows.size();
  result->loss_sum = 0;
  result->kept = 0;
  if (K == 0) return Status::Ok;
  Buf<int32_t> drows(&be), dtargets(&be);
  Buf<float> hin(&be, K * C), lse(&be, K), logits(&be, logits_out ? K * cfg_.V : 0);
  if (!drows.upload(rows.data(), K) || !dtargets.upload(targets.data(), K) || hin.size() != K * C || lse.size() != K || (logits_out && logits.empty())) {
    *error = "out of memory for the LM head";
    return Status::OutOfMemory;
  }
  be.gather_rows(hin.data(), a.lnf.data(), drows.data(), K, (int)C);
  st = be.head_forward(&result->loss_sum, &result->kept, lse.data(), nullptr, logits_out ? logits.data() : nullptr, hin.data(), dtargets.data(), W(head_index()), 0.0f, K, (int)C, cfg_.V);
  if (st != Status::Ok) return st;
  if (logits_out) be.download(logits_out, logits.data(), sizeof(float) * (size_t)(N * cfg_.V));  // K == N here
  return be.sync(error);
}

Status Decoder::forward_backward(const Batch& b, float loss_scale, ForwardResult* result, float* d_inject, std::string* error) {
  if (!b.targets) {
    *error = "training needs targets";
    return Status::InvalidArgument;
  }
  Status st = forward_layers(b, error);
  if (st != Status::Ok) return st;
  Backend& be = *be_;
  Acts& a = *acts_;
  const int64_t N = a.N, C = cfg_.C;
  std::vector<int32_t> targets;
  a.host_head_rows.clear();
  for (int64_t n = 0; n < N; n++)
    if (a.host_targets[(size_t)n] >= 0) a.host_head_rows.push_back((int32_t)n), targets.push_back(a.host_targets[(size_t)n]);
  const int64_t K = (int64_t)targets.size();
  const float scale = loss_scale < 0 ? (K > 0 ? 1.0f / (float)K : 0.0f) : loss_scale;
  result->loss_sum = 0;
  result->kept = 0;
  bool ok = a.dhead_in.resize(K * C);
  if (K > 0) {
    const int h = head_index();
    const bool trained = store_->tensors()[(size_t)h].trainable;
    const bool keep = trained && K * (int64_t)cfg_.V <= kKeepLogits;
    Buf<float> logits(&be, keep ? K * cfg_.V : 0);
    ok = ok && a.head_rows.upload(a.host_head_rows.data(), K) && a.head_targets.upload(targets.data(), K) && a.head_in.resize(K * C) && a.head_lse.resize(K) && (!keep || !logits.empty());
    if (!ok) {
      *error = "out of memory for the LM head";
      return Status::OutOfMemory;
    }
    be.gather_rows(a.head_in.data(), a.lnf.data(), a.head_rows.data(), K, (int)C);
    // a frozen head: its input's gradient in the forward's pass over the vocabulary; a trained
    // one: the forward, then the backward with the weight gradient (from kept or recomputed logits)
    st = be.head_forward(&result->loss_sum, &result->kept, a.head_lse.data(), trained ? nullptr : a.dhead_in.data(), keep ? logits.data() : nullptr, a.head_in.data(), a.head_targets.data(), W(h), scale, K,
                         (int)C, cfg_.V);
    if (st != Status::Ok) return st;
    if (trained) be.head_backward(G(h), a.dhead_in.data(), a.head_in.data(), a.head_targets.data(), a.head_lse.data(), keep ? logits.data() : nullptr, store_->f32(h), scale, K, (int)C, cfg_.V);
  }
  return backward_layers(d_inject, error);
}

// The forward in reverse, from the head's input gradient in acts_->dhead_in.
Status Decoder::backward_layers(float* d_inject, std::string* error) {
  const DecoderConfig& c = cfg_;
  Backend& be = *be_;
  Acts& a = *acts_;
  const int64_t N = a.N, C = c.C, qd = (int64_t)c.NH * c.hd, kd = (int64_t)c.KV * c.hd;
  const int S = c.rope_sections.empty() ? 1 : (int)c.rope_sections.size();
  std::vector<int> sec = c.rope_sections.empty() ? std::vector<int>{c.hd / 2} : c.rope_sections;
  const RopeSpec rope{c.hd, c.theta, S, sec.data()};
  const AttnShape as{a.B, a.T, c.NH, c.KV, c.hd};
  auto lora_at = [&](int l, Proj p) {
    Lora lo = lora(l, p);
    if (!a.layers[(size_t)l].mask[p].empty()) lo.mask = a.layers[(size_t)l].mask[p].data();
    return lo;
  };
  const int64_t K = (int64_t)a.host_head_rows.size();
  Buf<float>&dlnf = a.dlnf, &dx = a.dx, &dh = a.dh, &dg = a.dg, &du = a.du, &dln = a.dln, &datt = a.datt, &dq = a.dq, &dk = a.dk, &dv = a.dv, &dqp = a.dqp, &dkp = a.dkp;
  const bool q3 = c.arch == Arch::Qwen3;
  // kept from the last step; each is zeroed below before it accumulates
  if (!dlnf.ensure(N * C) || !dx.ensure(N * C) || !dh.ensure(N * c.F) || !dg.ensure(N * c.F) || !du.ensure(N * c.F) || !dln.ensure(N * C) || !datt.ensure(N * qd) || !dq.ensure(N * qd) ||
      !dk.ensure(N * kd) || !dv.ensure(N * kd) || !dqp.ensure(q3 ? N * qd : 0) || !dkp.ensure(q3 ? N * kd : 0)) {
    *error = "out of memory for the gradients of a batch of " + std::to_string(N) + " tokens";
    return Status::OutOfMemory;
  }
  be.zero(dlnf.data(), sizeof(float) * (size_t)(N * C));
  be.zero(dx.data(), sizeof(float) * (size_t)(N * C));
  if (K > 0) be.scatter_rows(dlnf.data(), a.head_rows.data(), a.dhead_in.data(), K, (int)C);  // other rows' dlnf is 0
  be.rmsnorm_backward(dx.data(), G(norm_), dlnf.data(), a.xf.data(), F32(norm_), a.rstdf.data(), N, (int)C);

  for (int l = c.L - 1; l >= 0; l--) {
    const LayerW& w = layers_[(size_t)l];
    Acts::Layer& s = a.layers[(size_t)l];
    // MLP: x = xmid + down(swiglu(gate(ln2), up(ln2)))
    for (Buf<float>* t : {&dh, &dg, &du, &dln}) be.zero(t->data(), sizeof(float) * (size_t)t->size());
    linear_backward(dh.data(), G(w.w[kDown]), nullptr, dx.data(), s.h.data(), s.ax[kDown].data(), W(w.w[kDown]), lora_at(l, kDown), N, c.F, (int)C);
    be.swiglu_backward(dg.data(), du.data(), dh.data(), s.g.data(), s.u.data(), N * c.F);
    linear_backward(dln.data(), G(w.w[kGate]), nullptr, dg.data(), s.ln2.data(), s.ax[kGate].data(), W(w.w[kGate]), lora_at(l, kGate), N, (int)C, c.F);
    linear_backward(dln.data(), G(w.w[kUp]), nullptr, du.data(), s.ln2.data(), s.ax[kUp].data(), W(w.w[kUp]), lora_at(l, kUp), N, (int)C, c.F);
    be.rmsnorm_backward(dx.data(), G(w.ln2), dln.data(), s.xmid.data(), F32(w.ln2), s.rstd2.data(), N, (int)C);
    // attention: xmid = x + o(attn(rope(q), rope(k), v))
    for (Buf<float>* t : {&datt, &dq, &dk, &dv, &dln}) be.zero(t->data(), sizeof(float) * (size_t)t->size());
    linear_backward(datt.data(), G(w.w[kO]), nullptr, dx.data(), s.att.data(), s.ax[kO].data(), W(w.w[kO]), lora_at(l, kO), N, (int)qd, (int)C);
    be.attention_backward(dq.data(), dk.data(), dv.data(), datt.data(), s.att.data(), s.lse.data(), s.q.data(), s.k.data(), s.v.data(), as);
    be.rope_backward(dq.data(), a.positions.data(), rope, N, c.NH);
    be.rope_backward(dk.data(), a.positions.data(), rope, N, c.KV);
    float* dqq = dq.data();
    float* dkk = dk.data();
    if (c.arch == Arch::Qwen3) {
      be.zero(dqp.data(), sizeof(float) * (size_t)dqp.size());
      be.zero(dkp.data(), sizeof(float) * (size_t)dkp.size());
      be.rmsnorm_backward(dqp.data(), G(w.qn), dq.data(), s.qpre.data(), F32(w.qn), s.rstdq.data(), N * c.NH, c.hd);
      be.rmsnorm_backward(dkp.data(), G(w.kn), dk.data(), s.kpre.data(), F32(w.kn), s.rstdk.data(), N * c.KV, c.hd);
      dqq = dqp.data();
      dkk = dkp.data();
    }
    linear_backward(dln.data(), G(w.w[kQ]), G(w.bq), dqq, s.ln1.data(), s.ax[kQ].data(), W(w.w[kQ]), lora_at(l, kQ), N, (int)C, (int)qd);
    linear_backward(dln.data(), G(w.w[kK]), G(w.bk), dkk, s.ln1.data(), s.ax[kK].data(), W(w.w[kK]), lora_at(l, kK), N, (int)C, (int)kd);
    linear_backward(dln.data(), G(w.w[kV]), G(w.bv), dv.data(), s.ln1.data(), s.ax[kV].data(), W(w.w[kV]), lora_at(l, kV), N, (int)C, (int)kd);
    be.rmsnorm_backward(dx.data(), G(w.ln1), dln.data(), s.x.data(), F32(w.ln1), s.rstd1.data(), N, (int)C);
  }
  // dx is now the gradient w.r.t. the input embeddings
  const int64_t M = (int64_t)a.host_inject_rows.size();
  if (M > 0) {
    Buf<int32_t> rows(&be);
    Buf<float> dinj(&be, M * C);
    if (!rows.upload(a.host_inject_rows.data(), M) || dinj.size() != M * C) {
      *error = "out of memory for the injected embeddings' gradient";
      return Status::OutOfMemory;
    }
    if (d_inject) {
      be.gather_rows(dinj.data(), dx.data(), rows.data(), M, (int)C);
      be.download(d_inject, dinj.data(), sizeof(float) * (size_t)(M * C));
    }
    be.zero(dinj.data(), sizeof(float) * (size_t)(M * C));
    be.scatter_rows(dx.data(), rows.data(), dinj.data(), M, (int)C);  // injected rows are not token embeddings
  }
  if (scratch_failed_) {
    scratch_failed_ = false;
    *error = "out of memory for the LoRA gradients of a batch of " + std::to_string(N) + " tokens";
    return Status::OutOfMemory;
  }
  if (float* de = G(embed_)) be.embedding_backward(de, dx.data(), a.tokens.data(), N, (int)C);
  return be.sync(error);
}

}  // namespace vlatext
