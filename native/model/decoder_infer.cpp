// Inference with KV caches (no activations saved, no gradients): one sequence or
// several in one forward pass. In a batch, every linear layer runs once over the rows
// of all sequences; attention runs per sequence against its own cache.
#include <cmath>
#include <cstring>

#include "../kernels/attention.h"
#include "../kernels/elementwise.h"
#include "../kernels/matmul.h"
#include "../kernels/norm.h"
#include "../kernels/rope.h"
#include "decoder.h"

namespace vlatext {

void Decoder::init_cache(KvCache* cache, int capacity) const {
  cache->capacity = capacity;
  cache->length = 0;
  cache->next_pos = 0;
  cache->k.assign((size_t)cfg_.L, std::vector<float>((size_t)capacity * cfg_.KV * cfg_.hd, 0.0f));
  cache->v.assign((size_t)cfg_.L, std::vector<float>((size_t)capacity * cfg_.KV * cfg_.hd, 0.0f));
}

Status Decoder::infer(KvCache* cache, const int32_t* tokens, int n, const int32_t* positions, int M, const int32_t* inject_rows, const float* inject, float* logits_last, std::string* error) {
  std::vector<float> hidden((size_t)cfg_.C);
  const Status st = infer_hidden(cache, tokens, n, positions, M, inject_rows, inject, hidden.data(), error);
  if (st == Status::Ok) head_logits(hidden.data(), nullptr, 0, logits_last);
  return st;
}

void Decoder::head_logits(const float* hidden, const int32_t* ids, int n_ids, float* out) {
  const DecoderConfig& c = cfg_;
  const float* head = param_mem_.data() + (c.tie ? params_[0].offset : find_param("lm_head.weight")->offset);
  if (!ids) {
    matmul_forward(*pool_, out, hidden, head, nullptr, 1, c.C, c.V);
    return;
  }
  for (int i = 0; i < n_ids; i++) out[i] = dot(hidden, head + (int64_t)ids[i] * c.C, c.C);
}

Status Decoder::infer_hidden(KvCache* cache, const int32_t* tokens, int n, const int32_t* positions, int M, const int32_t* inject_rows, const float* inject, float* hidden_last, std::string* error) {
  const SeqInput in{cache, tokens, n, positions, M, inject_rows, inject};
  return infer_hidden_batch(&in, 1, hidden_last, error);
}

Status Decoder::infer_hidden_batch(const SeqInput* seqs, int n_seqs, float* hidden_last, std::string* error) {
  const DecoderConfig& c = cfg_;
  const int S = c.rope_sections.empty() ? 1 : (int)c.rope_sections.size();
  std::vector<int64_t> row0((size_t)n_seqs + 1, 0);  // first row of each sequence in the batch
  for (int i = 0; i < n_seqs; i++) {
    const SeqInput& q = seqs[i];
    if (q.n < 1) {
      *error = "infer needs at least one token per sequence";
      return Status::InvalidArgument;
    }
    if (q.cache->length + q.n > q.cache->capacity) {
      *error = "KV cache is full: " + std::to_string(q.cache->length) + " + " + std::to_string(q.n) + " tokens > capacity " + std::to_string(q.cache->capacity);
      return Status::InvalidArgument;
    }
    for (int j = 0; j < q.n; j++)
      if (q.tokens[j] < 0 || q.tokens[j] >= c.V) {
        *error = "token " + std::to_string(q.tokens[j]) + " is outside the vocabulary [0, " + std::to_string(c.V) + ")";
        return Status::InvalidArgument;
      }
    for (int m = 0; m < q.M; m++)
      if (q.inject_rows[m] < 0 || q.inject_rows[m] >= q.n) {
        *error = "injected row " + std::to_string(q.inject_rows[m]) + " is outside the " + std::to_string(q.n) + " new tokens";
        return Status::InvalidArgument;
      }
    row0[(size_t)i + 1] = row0[(size_t)i] + q.n;
  }
  const int64_t N = row0[(size_t)n_seqs];
  const int64_t C = c.C, qd = (int64_t)c.NH * c.hd, kd = (int64_t)c.KV * c.hd;
  // positions (S, N): explicit, or each cache's next position onwards
  std::vector<int32_t> pos((size_t)(S * N)), tokens((size_t)N);
  for (int i = 0; i < n_seqs; i++) {
    const SeqInput& q = seqs[i];
    std::memcpy(tokens.data() + row0[(size_t)i], q.tokens, sizeof(int32_t) * q.n);
    for (int s = 0; s < S; s++)
      for (int j = 0; j < q.n; j++) pos[(size_t)(s * N + row0[(size_t)i] + j)] = q.positions ? q.positions[s * q.n + j] : q.cache->next_pos + j;
  }
  std::vector<int> sec = c.rope_sections.empty() ? std::vector<int>{c.hd / 2} : c.rope_sections;
  const RopeSpec rope{c.hd, c.theta, S, sec.data()};
  std::vector<float> x((size_t)(N * C)), ln((size_t)(N * C)), rstd((size_t)N), q((size_t)(N * qd)), k((size_t)(N * kd)), v((size_t)(N * kd)),
      att((size_t)(N * qd)), o((size_t)(N * C)), g((size_t)N * c.F), u((size_t)N * c.F), h((size_t)N * c.F), rq((size_t)N * c.NH), rk((size_t)N * c.KV);
  std::vector<float> ax((size_t)(has_lora() ? N * lora_.rank : 0));
  embedding_forward(*pool_, x.data(), tokens.data(), param_mem_.data() + params_[0].offset, N, (int)C);
  for (int i = 0; i < n_seqs; i++)
    for (int m = 0; m < seqs[i].M; m++) std::memcpy(x.data() + (row0[(size_t)i] + seqs[i].inject_rows[m]) * C, seqs[i].inject + (int64_t)m * C, sizeof(float) * C);
  for (int l = 0; l < c.L; l++) {
    LayerW w = layer(l);
    rmsnorm_forward(*pool_, ln.data(), rstd.data(), x.data(), w.ln1, N, (int)C, c.eps);
    linear_forward(q.data(), ax.data(), ln.data(), w.w[kQ], w.bq, lora(l, kQ), N, (int)C, (int)qd);
    linear_forward(k.data(), ax.data(), ln.data(), w.w[kK], w.bk, lora(l, kK), N, (int)C, (int)kd);
    linear_forward(v.data(), ax.data(), ln.data(), w.w[kV], w.bv, lora(l, kV), N, (int)C, (int)kd);
    if (c.arch == Arch::Qwen3) {
      std::vector<float> qp = q, kp = k;
      rmsnorm_forward(*pool_, q.data(), rq.data(), qp.data(), w.qn, N * c.NH, c.hd, c.eps);
      rmsnorm_forward(*pool_, k.data(), rk.data(), kp.data(), w.kn, N * c.KV, c.hd, c.eps);
    }
    rope_forward(*pool_, q.data(), pos.data(), rope, N, c.NH);
    rope_forward(*pool_, k.data(), pos.data(), rope, N, c.KV);
    for (int i = 0; i < n_seqs; i++) {  // each sequence attends to its own cache
      KvCache* cache = seqs[i].cache;
      const int64_t r = row0[(size_t)i];
      const int n = seqs[i].n, start = cache->length;
      std::memcpy(cache->k[(size_t)l].data() + (int64_t)start * kd, k.data() + r * kd, sizeof(float) * n * kd);
      std::memcpy(cache->v[(size_t)l].data() + (int64_t)start * kd, v.data() + r * kd, sizeof(float) * n * kd);
      attention_forward_cached(*pool_, att.data() + r * qd, q.data() + r * qd, cache->k[(size_t)l].data(), cache->v[(size_t)l].data(), start, n, c.NH, c.KV, c.hd);
    }
    linear_forward(o.data(), ax.data(), att.data(), w.w[kO], nullptr, lora(l, kO), N, (int)qd, (int)C);
    for (int64_t i = 0; i < N * C; i++) x[(size_t)i] += o[(size_t)i];
    rmsnorm_forward(*pool_, ln.data(), rstd.data(), x.data(), w.ln2, N, (int)C, c.eps);
    linear_forward(g.data(), ax.data(), ln.data(), w.w[kGate], nullptr, lora(l, kGate), N, (int)C, c.F);
    linear_forward(u.data(), ax.data(), ln.data(), w.w[kUp], nullptr, lora(l, kUp), N, (int)C, c.F);
    swiglu_forward(*pool_, h.data(), g.data(), u.data(), N * c.F);
    linear_forward(o.data(), ax.data(), h.data(), w.w[kDown], nullptr, lora(l, kDown), N, c.F, (int)C);
    for (int64_t i = 0; i < N * C; i++) x[(size_t)i] += o[(size_t)i];
  }
  const float* normf = param_mem_.data() + find_param("model.norm.weight")->offset;
  for (int i = 0; i < n_seqs; i++) {
    KvCache* cache = seqs[i].cache;
    const int n = seqs[i].n;
    const int64_t last = row0[(size_t)i] + n - 1;
    cache->length += n;
    for (int s = 0; s < S; s++) cache->next_pos = std::max(s == 0 ? 0 : cache->next_pos, 1 + pos[(size_t)(s * N + last)]);  // continue after the last position
    float r;
    rmsnorm_forward(*pool_, hidden_last + (int64_t)i * C, &r, x.data() + last * C, normf, 1, (int)C, c.eps);
  }
  return Status::Ok;
}

}  // namespace vlatext
