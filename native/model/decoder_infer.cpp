// Inference with KV caches (no activations saved, no gradients): one sequence or
// several in one forward pass. In a batch, every linear layer runs once over the rows
// of all sequences; attention runs per sequence against its own cache.
#include <algorithm>
#include <cstring>

#include "../kernels/attention.h"
#include "../kernels/rope.h"
#include "decoder.h"

namespace vlatext {

Status Decoder::init_cache(KvCache* cache, int capacity, std::string* error) {
  cache->capacity = capacity;
  cache->length = 0;
  cache->next_pos = 0;
  cache->k.clear();
  cache->v.clear();
  const int64_t n = (int64_t)capacity * cfg_.KV * cfg_.hd;
  for (int l = 0; l < cfg_.L; l++) {
    cache->k.emplace_back(be_.get());
    cache->v.emplace_back(be_.get());
    if (!cache->k.back().resize(n) || !cache->v.back().resize(n)) {
      *error = "out of memory for a KV cache of " + std::to_string(capacity) + " tokens";
      cache->k.clear();
      cache->v.clear();
      cache->capacity = 0;
      return Status::OutOfMemory;
    }
  }
  return Status::Ok;
}

Status Decoder::infer(KvCache* cache, const int32_t* tokens, int n, const int32_t* positions, int M, const int32_t* inject_rows, const float* inject, float* logits_last, std::string* error, int K,
                      const float* deepstack) {
  std::vector<float> hidden((size_t)cfg_.C);
  const SeqInput in{cache, tokens, n, positions, M, inject_rows, inject, 1, K, deepstack};
  const Status st = infer_hidden_batch(&in, 1, hidden.data(), error);
  if (st == Status::Ok) head_logits(hidden.data(), nullptr, 0, logits_last);
  return st;
}

void Decoder::head_logits(const float* hidden, const int32_t* ids, int n_ids, float* out) {
  const DecoderConfig& c = cfg_;
  Backend& be = *be_;
  Buf<float> h(&be), o(&be, ids ? n_ids : c.V);
  h.upload(hidden, c.C);
  if (ids) be.matmul_rows(o.data(), h.data(), W(head_index()), ids, n_ids, c.C);
  else be.matmul_forward(o.data(), h.data(), W(head_index()), nullptr, 1, c.C, c.V);
  be.download(out, o.data(), sizeof(float) * (size_t)(ids ? n_ids : c.V));
}

Status Decoder::infer_hidden_batch(const SeqInput* seqs, int n_seqs, float* hidden_last, std::string* error) {
  const DecoderConfig& c = cfg_;
  Backend& be = *be_;
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
    if (q.n_hidden < 1 || q.n_hidden > q.n) {
      *error = "n_hidden (" + std::to_string(q.n_hidden) + ") must be within 1 .. the " + std::to_string(q.n) + " new tokens";
      return Status::InvalidArgument;
    }
    for (int m = 0; m < q.M; m++)
      if (q.inject_rows[m] < 0 || q.inject_rows[m] >= q.n) {
        *error = "injected row " + std::to_string(q.inject_rows[m]) + " is outside the " + std::to_string(q.n) + " new tokens";
        return Status::InvalidArgument;
      }
    if (q.K < 0 || q.K > c.L || (q.K > 0 && q.M > 0 && !q.deepstack)) {
      *error = "DeepStack needs 0 <= K <= " + std::to_string(c.L) + " layers of (M, C) features, got K = " + std::to_string(q.K);
      return Status::InvalidArgument;
    }
    row0[(size_t)i + 1] = row0[(size_t)i] + q.n;
  }
  const int64_t N = row0[(size_t)n_seqs];
  const int64_t C = c.C, qd = (int64_t)c.NH * c.hd, kd = (int64_t)c.KV * c.hd;
  // positions (S, N): explicit, or each cache's next position onwards; injected rows (batch rows)
  std::vector<int32_t> pos((size_t)(S * N)), tokens((size_t)N), irows;
  std::vector<float> inject;
  for (int i = 0; i < n_seqs; i++) {
    const SeqInput& q = seqs[i];
    std::memcpy(tokens.data() + row0[(size_t)i], q.tokens, sizeof(int32_t) * q.n);
    for (int s = 0; s < S; s++)
      for (int j = 0; j < q.n; j++) pos[(size_t)(s * N + row0[(size_t)i] + j)] = q.positions ? q.positions[s * q.n + j] : q.cache->next_pos + j;
    for (int m = 0; m < q.M; m++) irows.push_back((int32_t)(row0[(size_t)i] + q.inject_rows[m]));
    inject.insert(inject.end(), q.inject, q.inject + (int64_t)q.M * C);
  }
  std::vector<int> sec = c.rope_sections.empty() ? std::vector<int>{c.hd / 2} : c.rope_sections;
  const RopeSpec rope{c.hd, c.theta, S, sec.data()};
  Buf<int32_t> dtok(&be), dpos(&be), drows(&be);
  Buf<float> x(&be, N * C), ln(&be, N * C), rstd(&be, N), q(&be, N * qd), k(&be, N * kd), v(&be, N * kd), att(&be, N * qd), o(&be, N * C), g(&be, N * c.F), u(&be, N * c.F), h(&be, N * c.F),
      rq(&be, N * c.NH), rk(&be, N * c.KV), qp(&be), kp(&be), dinj(&be);
  Buf<float> ax(&be, has_lora() ? N * lora_.rank : 0);
  if (!dtok.upload(tokens.data(), N) || !dpos.upload(pos.data(), S * N) || !drows.upload(irows.data(), (int64_t)irows.size()) || !dinj.upload(inject.data(), (int64_t)inject.size()) || h.size() != N * c.F ||
      x.size() != N * C) {
    *error = "out of memory for an inference batch of " + std::to_string(N) + " tokens";
    return Status::OutOfMemory;
  }
  be.embedding_forward(x.data(), dtok.data(), W(embed_), N, (int)C);
  if (!irows.empty()) be.scatter_rows(x.data(), drows.data(), dinj.data(), (int64_t)irows.size(), (int)C);
  // DeepStack: per layer l, the rows (batch rows) and features of the sequences with K > l
  int kmax = 0;
  for (int i = 0; i < n_seqs; i++)
    if (seqs[i].M > 0) kmax = std::max(kmax, seqs[i].K);
  std::vector<Buf<int32_t>> ds_rows;
  std::vector<Buf<float>> ds_vals;
  for (int l = 0; l < kmax; l++) {
    std::vector<int32_t> r;
    std::vector<float> val;
    for (int i = 0; i < n_seqs; i++) {
      const SeqInput& sq = seqs[i];
      if (sq.M == 0 || sq.K <= l) continue;
      for (int m = 0; m < sq.M; m++) r.push_back((int32_t)(row0[(size_t)i] + sq.inject_rows[m]));
      val.insert(val.end(), sq.deepstack + (int64_t)l * sq.M * C, sq.deepstack + (int64_t)(l + 1) * sq.M * C);
    }
    ds_rows.emplace_back(&be);
    ds_vals.emplace_back(&be);
    if (!ds_rows.back().upload(r.data(), (int64_t)r.size()) || !ds_vals.back().upload(val.data(), (int64_t)val.size())) {
      *error = "out of memory for the DeepStack features";
      return Status::OutOfMemory;
    }
  }
  Buf<float> dstmp(&be);
  for (int l = 0; l < c.L; l++) {
    const LayerW& w = layers_[(size_t)l];
    be.rmsnorm_forward(ln.data(), rstd.data(), x.data(), F32(w.ln1), N, (int)C, c.eps);
    linear_forward(q.data(), ax.data(), ln.data(), W(w.w[kQ]), F32(w.bq), lora(l, kQ), N, (int)C, (int)qd);
    linear_forward(k.data(), ax.data(), ln.data(), W(w.w[kK]), F32(w.bk), lora(l, kK), N, (int)C, (int)kd);
    linear_forward(v.data(), ax.data(), ln.data(), W(w.w[kV]), F32(w.bv), lora(l, kV), N, (int)C, (int)kd);
    if (c.arch == Arch::Qwen3) {
      qp.assign(q);
      kp.assign(k);
      be.rmsnorm_forward(q.data(), rq.data(), qp.data(), F32(w.qn), N * c.NH, c.hd, c.eps);
      be.rmsnorm_forward(k.data(), rk.data(), kp.data(), F32(w.kn), N * c.KV, c.hd, c.eps);
    }
    be.rope_forward(q.data(), dpos.data(), rope, N, c.NH);
    be.rope_forward(k.data(), dpos.data(), rope, N, c.KV);
    for (int i = 0; i < n_seqs; i++) {  // each sequence attends to its own cache
      KvCache* cache = seqs[i].cache;
      const int64_t r = row0[(size_t)i];
      const int n = seqs[i].n, start = cache->length;
      be.copy(cache->k[(size_t)l].data() + (int64_t)start * kd, k.data() + r * kd, sizeof(float) * (size_t)(n * kd));
      be.copy(cache->v[(size_t)l].data() + (int64_t)start * kd, v.data() + r * kd, sizeof(float) * (size_t)(n * kd));
      be.attention_forward_cached(att.data() + r * qd, q.data() + r * qd, cache->k[(size_t)l].data(), cache->v[(size_t)l].data(), start, n, c.NH, c.KV, c.hd);
    }
    linear_forward(o.data(), ax.data(), att.data(), W(w.w[kO]), nullptr, lora(l, kO), N, (int)qd, (int)C);
    be.axpy(x.data(), o.data(), 1.0f, N * C);
    be.rmsnorm_forward(ln.data(), rstd.data(), x.data(), F32(w.ln2), N, (int)C, c.eps);
    linear_forward(g.data(), ax.data(), ln.data(), W(w.w[kGate]), nullptr, lora(l, kGate), N, (int)C, c.F);
    linear_forward(u.data(), ax.data(), ln.data(), W(w.w[kUp]), nullptr, lora(l, kUp), N, (int)C, c.F);
    be.swiglu_forward(h.data(), g.data(), u.data(), N * c.F);
    linear_forward(o.data(), ax.data(), h.data(), W(w.w[kDown]), nullptr, lora(l, kDown), N, c.F, (int)C);
    be.axpy(x.data(), o.data(), 1.0f, N * C);
    if (l < kmax) {  // DeepStack: x[rows] += features of layer l
      const int64_t nr = ds_rows[(size_t)l].size();
      if (!dstmp.resize(nr * C)) {
        *error = "out of memory for the DeepStack features";
        return Status::OutOfMemory;
      }
      be.gather_rows(dstmp.data(), x.data(), ds_rows[(size_t)l].data(), nr, (int)C);
      be.add(dstmp.data(), dstmp.data(), ds_vals[(size_t)l].data(), nr * C);
      be.scatter_rows(x.data(), ds_rows[(size_t)l].data(), dstmp.data(), nr, (int)C);
    }
  }
  // each sequence's last n_hidden rows, final-normed
  std::vector<int32_t> out_rows;
  for (int i = 0; i < n_seqs; i++)
    for (int j = seqs[i].n - seqs[i].n_hidden; j < seqs[i].n; j++) out_rows.push_back((int32_t)(row0[(size_t)i] + j));
  const int64_t n_out = (int64_t)out_rows.size();
  Buf<int32_t> dlast(&be);
  if (scratch_failed_) {
    scratch_failed_ = false;
    *error = "out of memory for the LoRA temporaries of " + std::to_string(N) + " tokens";
    return Status::OutOfMemory;
  }
  Buf<float> xl(&be, n_out * C), hl(&be, n_out * C), rl(&be, n_out);
  dlast.upload(out_rows.data(), n_out);
  be.gather_rows(xl.data(), x.data(), dlast.data(), n_out, (int)C);
  be.rmsnorm_forward(hl.data(), rl.data(), xl.data(), F32(norm_), n_out, (int)C, c.eps);
  be.download(hidden_last, hl.data(), sizeof(float) * (size_t)(n_out * C));
  for (int i = 0; i < n_seqs; i++) {
    KvCache* cache = seqs[i].cache;
    cache->length += seqs[i].n;
    const int64_t lr = row0[(size_t)i] + seqs[i].n - 1;
    for (int s = 0; s < S; s++) cache->next_pos = std::max(s == 0 ? 0 : cache->next_pos, 1 + pos[(size_t)(s * N + lr)]);  // continue after the last position
  }
  return be.sync(error);
}

}  // namespace vlatext
