#include "decoder.h"

#include <cmath>
#include <cstring>
#include <random>

#include "../kernels/attention.h"
#include "../kernels/elementwise.h"
#include "../kernels/loss.h"
#include "../kernels/matmul.h"
#include "../kernels/norm.h"
#include "../kernels/rope.h"

namespace vlatext {

const char* const kProjNames[kNumProj] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};

struct Decoder::Acts {
  int B = 0, T = 0;
  int64_t N = 0;
  std::vector<int32_t> tokens, targets, positions;
  std::vector<int32_t> inject_rows;
  struct Layer {
    std::vector<float> x, ln1, rstd1, q, k, v, qpre, kpre, rstdq, rstdk, att, lse, xmid, ln2, rstd2, g, u, h;
    std::vector<float> ax[kNumProj];    // LoRA A x, (N, R)
    std::vector<float> mask[kNumProj];  // LoRA dropout masks, (N, in), empty when off
  };
  std::vector<Layer> layers;
  std::vector<float> xf, lnf, rstdf;
  // The LM head runs on K rows only: those with a target (all N when the caller wants logits).
  std::vector<int64_t> head_rows;    // (K) row of each head row in the batch
  std::vector<int32_t> head_targets; // (K)
  std::vector<float> head_in, logits, lse_ce;  // (K, C), (K, V), (K)
};

namespace {

int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

void resize(std::vector<float>& v, int64_t n) { v.assign((size_t)n, 0.0f); }

}  // namespace

Decoder::Decoder(const DecoderConfig& cfg, std::unique_ptr<ThreadPool> pool) : cfg_(cfg), pool_(std::move(pool)) {}
Decoder::~Decoder() = default;

Status Decoder::create(const DecoderConfig& cfg, int threads, std::unique_ptr<Decoder>* out, std::string* error) {
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
  std::unique_ptr<ThreadPool> pool;
  const Status ps = ThreadPool::create(threads, &pool);
  if (ps != Status::Ok) {
    *error = std::string("could not start the thread pool: ") + status_message(ps);
    return ps;
  }
  std::unique_ptr<Decoder> d(new Decoder(cfg, std::move(pool)));
  const int64_t C = cfg.C, qd = (int64_t)cfg.NH * cfg.hd, kd = (int64_t)cfg.KV * cfg.hd;
  int64_t off = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    TensorInfo t{name, shape, off, numel(shape)};
    off += t.size;
    d->params_.push_back(t);
  };
  add("model.embed_tokens.weight", {cfg.V, C});
  for (int l = 0; l < cfg.L; l++) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {C});
    add(p + "self_attn.q_proj.weight", {qd, C});
    add(p + "self_attn.k_proj.weight", {kd, C});
    add(p + "self_attn.v_proj.weight", {kd, C});
    if (cfg.arch == Arch::Qwen2) {
      add(p + "self_attn.q_proj.bias", {qd});
      add(p + "self_attn.k_proj.bias", {kd});
      add(p + "self_attn.v_proj.bias", {kd});
    }
    if (cfg.arch == Arch::Qwen3) {
      add(p + "self_attn.q_norm.weight", {cfg.hd});
      add(p + "self_attn.k_norm.weight", {cfg.hd});
    }
    add(p + "self_attn.o_proj.weight", {C, qd});
    add(p + "post_attention_layernorm.weight", {C});
    add(p + "mlp.gate_proj.weight", {cfg.F, C});
    add(p + "mlp.up_proj.weight", {cfg.F, C});
    add(p + "mlp.down_proj.weight", {C, cfg.F});
  }
  add("model.norm.weight", {C});
  if (!cfg.tie) add("lm_head.weight", {cfg.V, C});
  d->param_mem_.assign((size_t)off, 0.0f);
  d->param_grad_.assign((size_t)off, 0.0f);
  d->acts_ = std::make_unique<Acts>();
  *out = std::move(d);
  return Status::Ok;
}

const TensorInfo* Decoder::find_param(const std::string& name) const {
  for (auto& t : params_)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorInfo* Decoder::find_lora(const std::string& name) const {
  for (auto& t : lora_params_)
    if (t.name == name) return &t;
  return nullptr;
}

Decoder::LayerW Decoder::layer(int l) {
  const std::string p = "model.layers." + std::to_string(l) + ".";
  auto ptr = [&](const std::string& n) -> float* {
    const TensorInfo* t = find_param(p + n);
    return t ? param_mem_.data() + t->offset : nullptr;
  };
  LayerW w{};
  w.ln1 = ptr("input_layernorm.weight");
  for (int j = 0; j < kNumProj; j++) w.w[j] = ptr(std::string(j < 4 ? "self_attn." : "mlp.") + kProjNames[j] + ".weight");
  w.bq = ptr("self_attn.q_proj.bias");
  w.bk = ptr("self_attn.k_proj.bias");
  w.bv = ptr("self_attn.v_proj.bias");
  w.qn = ptr("self_attn.q_norm.weight");
  w.kn = ptr("self_attn.k_norm.weight");
  w.ln2 = ptr("post_attention_layernorm.weight");
  return w;
}

Decoder::Lora Decoder::lora(int l, Proj p) {
  if (!has_lora() || !lora_.targets[p]) return {};
  const std::string base = "model.layers." + std::to_string(l) + "." + (p < 4 ? "self_attn." : "mlp.") + kProjNames[p];
  const TensorInfo* a = find_lora(base + ".lora_A.weight");
  const TensorInfo* b = find_lora(base + ".lora_B.weight");
  return {lora_mem_.data() + a->offset, lora_mem_.data() + b->offset, lora_grad_.data() + a->offset, lora_grad_.data() + b->offset};
}

Status Decoder::enable_lora(const LoraConfig& lc, std::string* error) {
  if (lc.rank < 1) {
    *error = "LoRA rank must be >= 1";
    return Status::InvalidArgument;
  }
  lora_ = lc;
  lora_params_.clear();
  const int64_t C = cfg_.C, qd = (int64_t)cfg_.NH * cfg_.hd, kd = (int64_t)cfg_.KV * cfg_.hd;
  const int64_t in[kNumProj] = {C, C, C, qd, C, C, cfg_.F};
  const int64_t outd[kNumProj] = {qd, kd, kd, C, cfg_.F, cfg_.F, C};
  int64_t off = 0;
  for (int l = 0; l < cfg_.L; l++)
    for (int p = 0; p < kNumProj; p++) {
      if (!lc.targets[p]) continue;
      const std::string base = "model.layers." + std::to_string(l) + "." + (p < 4 ? "self_attn." : "mlp.") + kProjNames[p];
      lora_params_.push_back({base + ".lora_A.weight", {lc.rank, in[p]}, off, lc.rank * in[p]});
      off += lc.rank * in[p];
      lora_params_.push_back({base + ".lora_B.weight", {outd[p], lc.rank}, off, outd[p] * lc.rank});
      off += outd[p] * lc.rank;
    }
  lora_mem_.assign((size_t)off, 0.0f);
  lora_grad_.assign((size_t)off, 0.0f);
  std::mt19937_64 rng(lc.seed);
  for (auto& t : lora_params_) {
    if (t.name.find("lora_A") == std::string::npos) continue;
    const float bound = 1.0f / std::sqrt((float)t.shape[1]);
    std::uniform_real_distribution<float> u(-bound, bound);
    for (int64_t i = 0; i < t.size; i++) lora_mem_[(size_t)(t.offset + i)] = u(rng);
  }
  train_base_ = false;
  m_.clear();
  v_.clear();
  t_ = 0;
  return Status::Ok;
}

// The LoRA choke point: out (N, outd) = inp W^T + bias + (alpha/R) (inp A^T) B^T; saves ax = inp A^T.
void Decoder::linear_forward(float* out, float* ax, const float* inp, const float* W, const float* bias, const Lora& lo, int64_t N, int in, int outd) {
  matmul_forward(*pool_, out, inp, W, bias, N, in, outd);
  if (!lo.A) return;
  const int R = lora_.rank;
  const float scale = lora_.alpha / R;
  std::vector<float> xd;
  if (lo.mask) {  // dropout on the adapter's input
    xd.resize((size_t)(N * in));
    for (int64_t i = 0; i < N * in; i++) xd[(size_t)i] = inp[i] * lo.mask[i];
    inp = xd.data();
  }
  matmul_forward(*pool_, ax, inp, lo.A, nullptr, N, in, R);
  std::vector<float> tmp((size_t)(N * outd));
  matmul_forward(*pool_, tmp.data(), ax, lo.B, nullptr, N, R, outd);
  for (int64_t i = 0; i < N * outd; i++) out[i] += scale * tmp[(size_t)i];
}

void Decoder::linear_backward(float* dinp, float* dW, float* dbias, const float* dout, const float* inp, const float* ax, const float* W, const Lora& lo, int64_t N, int in, int outd) {
  matmul_backward(*pool_, dinp, train_base_ ? dW : nullptr, train_base_ ? dbias : nullptr, dout, inp, W, N, in, outd);
  if (!lo.A) return;
  const int R = lora_.rank;
  const float scale = lora_.alpha / R;
  std::vector<float> sd((size_t)(N * outd)), dax((size_t)(N * R), 0.0f);
  for (int64_t i = 0; i < N * outd; i++) sd[(size_t)i] = scale * dout[i];
  matmul_backward(*pool_, dax.data(), lo.dB, nullptr, sd.data(), ax, lo.B, N, R, outd);
  if (!lo.mask) {
    matmul_backward(*pool_, dinp, lo.dA, nullptr, dax.data(), inp, lo.A, N, in, R);
    return;
  }
  std::vector<float> xd((size_t)(N * in)), dxd((size_t)(N * in), 0.0f);
  for (int64_t i = 0; i < N * in; i++) xd[(size_t)i] = inp[i] * lo.mask[i];
  matmul_backward(*pool_, dxd.data(), lo.dA, nullptr, dax.data(), xd.data(), lo.A, N, in, R);
  for (int64_t i = 0; i < N * in; i++) dinp[i] += dxd[(size_t)i] * lo.mask[i];
}

Status Decoder::forward(const Batch& b, ForwardResult* result, float* logits_out, std::string* error) {
  const DecoderConfig& c = cfg_;
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
  for (int m = 0; m < b.M; m++)
    if (b.inject_rows[m] < 0 || b.inject_rows[m] >= N) {
      *error = "injected embedding " + std::to_string(m) + " targets row " + std::to_string(b.inject_rows[m]) + ", outside [0, " + std::to_string(N) + ")";
      return Status::InvalidArgument;
    }
  Acts& a = *acts_;
  a.B = b.B;
  a.T = b.T;
  a.N = N;
  a.tokens.assign(b.tokens, b.tokens + N);
  a.targets.assign((size_t)N, -100);
  if (b.targets) a.targets.assign(b.targets, b.targets + N);
  const int S = c.rope_sections.empty() ? 1 : (int)c.rope_sections.size();
  a.positions.resize((size_t)(S * N));
  for (int s = 0; s < S; s++)
    for (int64_t n = 0; n < N; n++) a.positions[(size_t)(s * N + n)] = b.positions ? b.positions[s * N + n] : (int32_t)(n % b.T);
  a.inject_rows.assign(b.inject_rows, b.inject_rows + b.M);
  std::vector<int> sec = c.rope_sections.empty() ? std::vector<int>{c.hd / 2} : c.rope_sections;
  const RopeSpec rope{c.hd, c.theta, S, sec.data()};
  const AttnShape as{b.B, b.T, c.NH, c.KV, c.hd};
  const int64_t qd = (int64_t)c.NH * c.hd, kd = (int64_t)c.KV * c.hd;

  a.layers.resize((size_t)c.L);
  const bool drop = has_lora() && lora_.dropout > 0 && b.dropout_seed >= 0;
  std::mt19937_64 drop_rng((uint64_t)b.dropout_seed);
  std::uniform_real_distribution<float> unif(0.0f, 1.0f);
  const int64_t in_dim[kNumProj] = {C, C, C, qd, C, C, c.F};
  for (int l = 0; l < c.L; l++)
    for (int p = 0; p < kNumProj; p++) {
      std::vector<float>& m = a.layers[(size_t)l].mask[p];
      if (!drop || !lora_.targets[p]) {
        m.clear();
        continue;
      }
      m.resize((size_t)(N * in_dim[p]));
      const float keep = 1.0f - lora_.dropout;
      for (auto& v : m) v = unif(drop_rng) < keep ? 1.0f / keep : 0.0f;
    }
  // a layer's LoRA view with its dropout mask attached (if any)
  auto lora_at = [&](int l, Proj p) {
    Lora lo = lora(l, p);
    if (!a.layers[(size_t)l].mask[p].empty()) lo.mask = a.layers[(size_t)l].mask[p].data();
    return lo;
  };
  std::vector<float> x((size_t)(N * C));
  embedding_forward(*pool_, x.data(), b.tokens, param_mem_.data() + params_[0].offset, N, (int)C);
  for (int m = 0; m < b.M; m++) std::memcpy(x.data() + (int64_t)b.inject_rows[m] * C, b.inject + (int64_t)m * C, sizeof(float) * C);

  for (int l = 0; l < c.L; l++) {
    LayerW w = layer(l);
    Acts::Layer& s = a.layers[(size_t)l];
    s.x = x;
    resize(s.ln1, N * C); resize(s.rstd1, N);
    rmsnorm_forward(*pool_, s.ln1.data(), s.rstd1.data(), s.x.data(), w.ln1, N, (int)C, c.eps);
    resize(s.q, N * qd); resize(s.k, N * kd); resize(s.v, N * kd);
    for (int p = 0; p < kNumProj; p++) resize(s.ax[p], has_lora() && lora_.targets[p] ? N * lora_.rank : 0);
    linear_forward(s.q.data(), s.ax[kQ].data(), s.ln1.data(), w.w[kQ], w.bq, lora_at(l, kQ), N, (int)C, (int)qd);
    linear_forward(s.k.data(), s.ax[kK].data(), s.ln1.data(), w.w[kK], w.bk, lora_at(l, kK), N, (int)C, (int)kd);
    linear_forward(s.v.data(), s.ax[kV].data(), s.ln1.data(), w.w[kV], w.bv, lora_at(l, kV), N, (int)C, (int)kd);
    if (c.arch == Arch::Qwen3) {
      s.qpre = s.q; s.kpre = s.k;
      resize(s.rstdq, N * c.NH); resize(s.rstdk, N * c.KV);
      rmsnorm_forward(*pool_, s.q.data(), s.rstdq.data(), s.qpre.data(), w.qn, N * c.NH, c.hd, c.eps);
      rmsnorm_forward(*pool_, s.k.data(), s.rstdk.data(), s.kpre.data(), w.kn, N * c.KV, c.hd, c.eps);
    }
    rope_forward(*pool_, s.q.data(), a.positions.data(), rope, N, c.NH);
    rope_forward(*pool_, s.k.data(), a.positions.data(), rope, N, c.KV);
    resize(s.att, N * qd); resize(s.lse, (int64_t)b.B * c.NH * b.T);
    attention_forward(*pool_, s.att.data(), s.lse.data(), s.q.data(), s.k.data(), s.v.data(), as);
    std::vector<float> o((size_t)(N * C));
    linear_forward(o.data(), s.ax[kO].data(), s.att.data(), w.w[kO], nullptr, lora_at(l, kO), N, (int)qd, (int)C);
    resize(s.xmid, N * C);
    add_forward(*pool_, s.xmid.data(), s.x.data(), o.data(), N * C);
    resize(s.ln2, N * C); resize(s.rstd2, N);
    rmsnorm_forward(*pool_, s.ln2.data(), s.rstd2.data(), s.xmid.data(), w.ln2, N, (int)C, c.eps);
    resize(s.g, N * c.F); resize(s.u, N * c.F); resize(s.h, N * c.F);
    linear_forward(s.g.data(), s.ax[kGate].data(), s.ln2.data(), w.w[kGate], nullptr, lora_at(l, kGate), N, (int)C, c.F);
    linear_forward(s.u.data(), s.ax[kUp].data(), s.ln2.data(), w.w[kUp], nullptr, lora_at(l, kUp), N, (int)C, c.F);
    swiglu_forward(*pool_, s.h.data(), s.g.data(), s.u.data(), N * c.F);
    std::vector<float> dn((size_t)(N * C));
    linear_forward(dn.data(), s.ax[kDown].data(), s.h.data(), w.w[kDown], nullptr, lora_at(l, kDown), N, c.F, (int)C);
    add_forward(*pool_, x.data(), s.xmid.data(), dn.data(), N * C);
  }
  a.xf = x;
  resize(a.lnf, N * C); resize(a.rstdf, N);
  const TensorInfo* normf = find_param("model.norm.weight");
  rmsnorm_forward(*pool_, a.lnf.data(), a.rstdf.data(), a.xf.data(), param_mem_.data() + normf->offset, N, (int)C, c.eps);
  // Rows without a target (the prompt, padding) add nothing to the loss or its gradient, so the
  // head and the softmax skip them unless the caller asks for every row's logits. In a policy
  // batch most rows are prompt: this is most of the head's cost.
  a.head_rows.clear();
  a.head_targets.clear();
  for (int64_t n = 0; n < N; n++)
    if (logits_out || a.targets[(size_t)n] >= 0) {
      a.head_rows.push_back(n);
      a.head_targets.push_back(a.targets[(size_t)n]);
    }
  const int64_t K = (int64_t)a.head_rows.size();
  resize(a.head_in, K * C);
  for (int64_t k = 0; k < K; k++) std::memcpy(a.head_in.data() + k * C, a.lnf.data() + a.head_rows[(size_t)k] * C, sizeof(float) * C);
  const float* head = param_mem_.data() + (c.tie ? params_[0].offset : find_param("lm_head.weight")->offset);
  resize(a.logits, K * c.V);
  resize(a.lse_ce, K);
  result->loss_sum = 0;
  result->kept = 0;
  if (K == 0) return Status::Ok;
  matmul_forward(*pool_, a.logits.data(), a.head_in.data(), head, nullptr, K, (int)C, c.V);
  if (logits_out) std::memcpy(logits_out, a.logits.data(), sizeof(float) * (size_t)(N * c.V));  // K == N here
  result->loss_sum = cross_entropy_forward(*pool_, a.lse_ce.data(), &result->kept, a.logits.data(), a.head_targets.data(), K, c.V);
  return Status::Ok;
}

Status Decoder::backward(float loss_scale, float* d_inject) {
  const DecoderConfig& c = cfg_;
  Acts& a = *acts_;
  if (a.N == 0) return Status::InvalidArgument;
  const int64_t N = a.N, C = c.C, qd = (int64_t)c.NH * c.hd, kd = (int64_t)c.KV * c.hd;
  const int S = c.rope_sections.empty() ? 1 : (int)c.rope_sections.size();
  std::vector<int> sec = c.rope_sections.empty() ? std::vector<int>{c.hd / 2} : c.rope_sections;
  const RopeSpec rope{c.hd, c.theta, S, sec.data()};
  const AttnShape as{a.B, a.T, c.NH, c.KV, c.hd};
  float* G = param_grad_.data();
  auto grad_of = [&](const float* p) -> float* { return p ? G + (p - param_mem_.data()) : nullptr; };
  auto lora_at = [&](int l, Proj p) {
    Lora lo = lora(l, p);
    if (!a.layers[(size_t)l].mask[p].empty()) lo.mask = a.layers[(size_t)l].mask[p].data();
    return lo;
  };

  // the head ran on the K rows forward() kept; the other rows' dlnf is 0
  const int64_t K = (int64_t)a.head_rows.size();
  std::vector<float> dlnf((size_t)(N * C), 0.0f), dx((size_t)(N * C), 0.0f);
  if (K > 0) {
    std::vector<float> dlogits((size_t)(K * c.V)), dhead((size_t)(K * C), 0.0f);
    cross_entropy_backward(*pool_, dlogits.data(), a.logits.data(), a.lse_ce.data(), a.head_targets.data(), loss_scale, K, c.V);
    const float* head = param_mem_.data() + (c.tie ? params_[0].offset : find_param("lm_head.weight")->offset);
    matmul_backward(*pool_, dhead.data(), train_base_ ? grad_of(head) : nullptr, nullptr, dlogits.data(), a.head_in.data(), head, K, (int)C, c.V);
    for (int64_t k = 0; k < K; k++) std::memcpy(dlnf.data() + a.head_rows[(size_t)k] * C, dhead.data() + k * C, sizeof(float) * C);
  }
  const float* normf = param_mem_.data() + find_param("model.norm.weight")->offset;
  rmsnorm_backward(*pool_, dx.data(), train_base_ ? grad_of(normf) : nullptr, dlnf.data(), a.xf.data(), normf, a.rstdf.data(), N, (int)C);

  for (int l = c.L - 1; l >= 0; l--) {
    LayerW w = layer(l);
    Acts::Layer& s = a.layers[(size_t)l];
    auto dW = [&](int p) { return train_base_ ? grad_of(w.w[p]) : nullptr; };
    // MLP: x = xmid + down(swiglu(gate(ln2), up(ln2)))
    std::vector<float> dh((size_t)(N * c.F), 0.0f), dg((size_t)(N * c.F), 0.0f), du((size_t)(N * c.F), 0.0f), dln2((size_t)(N * C), 0.0f);
    linear_backward(dh.data(), dW(kDown), nullptr, dx.data(), s.h.data(), s.ax[kDown].data(), w.w[kDown], lora_at(l, kDown), N, c.F, (int)C);
    swiglu_backward(*pool_, dg.data(), du.data(), dh.data(), s.g.data(), s.u.data(), N * c.F);
    linear_backward(dln2.data(), dW(kGate), nullptr, dg.data(), s.ln2.data(), s.ax[kGate].data(), w.w[kGate], lora_at(l, kGate), N, (int)C, c.F);
    linear_backward(dln2.data(), dW(kUp), nullptr, du.data(), s.ln2.data(), s.ax[kUp].data(), w.w[kUp], lora_at(l, kUp), N, (int)C, c.F);
    rmsnorm_backward(*pool_, dx.data(), train_base_ ? grad_of(w.ln2) : nullptr, dln2.data(), s.xmid.data(), w.ln2, s.rstd2.data(), N, (int)C);
    // attention: xmid = x + o(attn(rope(q), rope(k), v))
    std::vector<float> datt((size_t)(N * qd), 0.0f), dq((size_t)(N * qd), 0.0f), dk((size_t)(N * kd), 0.0f), dv((size_t)(N * kd), 0.0f), dln1((size_t)(N * C), 0.0f);
    linear_backward(datt.data(), dW(kO), nullptr, dx.data(), s.att.data(), s.ax[kO].data(), w.w[kO], lora_at(l, kO), N, (int)qd, (int)C);
    attention_backward(*pool_, dq.data(), dk.data(), dv.data(), datt.data(), s.att.data(), s.lse.data(), s.q.data(), s.k.data(), s.v.data(), as);
    rope_backward(*pool_, dq.data(), a.positions.data(), rope, N, c.NH);
    rope_backward(*pool_, dk.data(), a.positions.data(), rope, N, c.KV);
    if (c.arch == Arch::Qwen3) {
      std::vector<float> dqp((size_t)(N * qd), 0.0f), dkp((size_t)(N * kd), 0.0f);
      rmsnorm_backward(*pool_, dqp.data(), train_base_ ? grad_of(w.qn) : nullptr, dq.data(), s.qpre.data(), w.qn, s.rstdq.data(), N * c.NH, c.hd);
      rmsnorm_backward(*pool_, dkp.data(), train_base_ ? grad_of(w.kn) : nullptr, dk.data(), s.kpre.data(), w.kn, s.rstdk.data(), N * c.KV, c.hd);
      dq.swap(dqp);
      dk.swap(dkp);
    }
    linear_backward(dln1.data(), dW(kQ), grad_of(w.bq), dq.data(), s.ln1.data(), s.ax[kQ].data(), w.w[kQ], lora_at(l, kQ), N, (int)C, (int)qd);
    linear_backward(dln1.data(), dW(kK), grad_of(w.bk), dk.data(), s.ln1.data(), s.ax[kK].data(), w.w[kK], lora_at(l, kK), N, (int)C, (int)kd);
    linear_backward(dln1.data(), dW(kV), grad_of(w.bv), dv.data(), s.ln1.data(), s.ax[kV].data(), w.w[kV], lora_at(l, kV), N, (int)C, (int)kd);
    rmsnorm_backward(*pool_, dx.data(), train_base_ ? grad_of(w.ln1) : nullptr, dln1.data(), s.x.data(), w.ln1, s.rstd1.data(), N, (int)C);
  }
  // dx is now the gradient w.r.t. the input embeddings
  if (d_inject)
    for (size_t m = 0; m < a.inject_rows.size(); m++) std::memcpy(d_inject + (int64_t)m * C, dx.data() + (int64_t)a.inject_rows[m] * C, sizeof(float) * C);
  if (train_base_) {
    for (int32_t r : a.inject_rows) std::memset(dx.data() + (int64_t)r * C, 0, sizeof(float) * C);  // injected rows are not token embeddings
    embedding_backward(*pool_, G + params_[0].offset, dx.data(), a.tokens.data(), N, (int)C);
  }
  return Status::Ok;
}

void Decoder::zero_grad() {
  std::fill(param_grad_.begin(), param_grad_.end(), 0.0f);
  std::fill(lora_grad_.begin(), lora_grad_.end(), 0.0f);
}

int64_t Decoder::trainable_size() const { return (train_base_ ? (int64_t)param_mem_.size() : 0) + (int64_t)lora_mem_.size(); }

Status Decoder::set_optimizer_state(int step, std::vector<float> m, std::vector<float> v, std::string* error) {
  if (m.size() != (size_t)trainable_size() || v.size() != m.size()) {
    *error = "optimizer state has " + std::to_string(m.size()) + " values but the trainable tensors have " + std::to_string(trainable_size()) + " (different LoRA or full/LoRA setting?)";
    return Status::InvalidArgument;
  }
  m_ = std::move(m);
  v_ = std::move(v);
  m_for_base_ = train_base_;
  t_ = step;
  return Status::Ok;
}

double Decoder::optimizer_step(const AdamWConfig& opt, float max_norm, double extra_sq) {
  if (m_.size() != (size_t)trainable_size() || m_for_base_ != train_base_) {
    m_.assign((size_t)trainable_size(), 0.0f);
    v_.assign((size_t)trainable_size(), 0.0f);
    m_for_base_ = train_base_;
    t_ = 0;
  }
  double sq = 0;
  if (train_base_) sq += grad_sq_norm(*pool_, param_grad_.data(), (int64_t)param_grad_.size());
  sq += grad_sq_norm(*pool_, lora_grad_.data(), (int64_t)lora_grad_.size());
  const float scale = clip_scale(sq + extra_sq, max_norm);
  t_++;
  int64_t off = 0;
  if (train_base_) {
    adamw_update(*pool_, param_mem_.data(), m_.data(), v_.data(), param_grad_.data(), (int64_t)param_mem_.size(), opt, t_, scale);
    off = (int64_t)param_mem_.size();
  }
  if (!lora_mem_.empty()) adamw_update(*pool_, lora_mem_.data(), m_.data() + off, v_.data() + off, lora_grad_.data(), (int64_t)lora_mem_.size(), opt, t_, scale);
  zero_grad();
  return std::sqrt(sq + extra_sq);
}

}  // namespace vlatext
