#include "vision.h"

#include <cmath>
#include <cstring>

#include "../kernels/attention.h"
#include "../kernels/elementwise.h"
#include "../kernels/matmul.h"
#include "../kernels/norm.h"
#include "../kernels/rope.h"

namespace vlatext {

namespace {
int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}
}  // namespace

void vision_window_index(const int32_t* grids, int n_img, int merge, int window_units, std::vector<int32_t>* window_index, std::vector<int32_t>* cu) {
  window_index->clear();
  cu->assign(1, 0);
  int32_t id = 0;
  for (int i = 0; i < n_img; i++) {
    const int t = grids[3 * i], gh = grids[3 * i + 1] / merge, gw = grids[3 * i + 2] / merge;
    const int nwh = (gh + window_units - gh % window_units) / window_units;  // as transformers pads: always a partial window's worth
    const int nww = (gw + window_units - gw % window_units) / window_units;
    for (int tt = 0; tt < t; tt++)
      for (int wh = 0; wh < nwh; wh++)
        for (int ww = 0; ww < nww; ww++) {
          int count = 0;
          for (int y = wh * window_units; y < (wh + 1) * window_units; y++)
            for (int x = ww * window_units; x < (ww + 1) * window_units; x++) {
              if (y >= gh || x >= gw) continue;
              window_index->push_back(id + (tt * gh + y) * gw + x);
              count++;
            }
          if (count > 0) cu->push_back(cu->back() + count * merge * merge);  // unique_consecutive
        }
    id += t * gh * gw;
  }
}

Status VisionTower::create(const VisionConfig& cfg, int threads, std::unique_ptr<VisionTower>* out, std::string* error) {
  if (cfg.depth < 1 || cfg.C < 1 || cfg.F < 1 || cfg.NH < 1 || cfg.Cout < 1 || cfg.C % cfg.NH != 0 || (cfg.C / cfg.NH) % 4 != 0) {
    *error = "vision_config needs positive depth, hidden_size, intermediate_size, num_heads, out_hidden_size, and hidden_size / num_heads divisible by 4";
    return Status::InvalidArgument;
  }
  if (cfg.window % (cfg.patch * cfg.merge) != 0) {
    *error = "vision_config.window_size must be a multiple of patch_size * spatial_merge_size";
    return Status::InvalidArgument;
  }
  std::unique_ptr<ThreadPool> pool;
  const Status ps = ThreadPool::create(threads, &pool);
  if (ps != Status::Ok) {
    *error = std::string("could not start the thread pool: ") + status_message(ps);
    return ps;
  }
  std::unique_ptr<VisionTower> v(new VisionTower(cfg, std::move(pool)));
  int64_t off = 0;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    v->params_.push_back({name, shape, off, numel(shape)});
    off += numel(shape);
  };
  const int64_t C = cfg.C, P = 3LL * cfg.temporal * cfg.patch * cfg.patch, M = C * cfg.merge * cfg.merge;
  add("visual.patch_embed.proj.weight", {C, P});
  for (int b = 0; b < cfg.depth; b++) {
    const std::string p = "visual.blocks." + std::to_string(b) + ".";
    add(p + "norm1.weight", {C});
    add(p + "attn.qkv.weight", {3 * C, C});
    add(p + "attn.qkv.bias", {3 * C});
    add(p + "attn.proj.weight", {C, C});
    add(p + "attn.proj.bias", {C});
    add(p + "norm2.weight", {C});
    add(p + "mlp.gate_proj.weight", {cfg.F, C});
    add(p + "mlp.gate_proj.bias", {cfg.F});
    add(p + "mlp.up_proj.weight", {cfg.F, C});
    add(p + "mlp.up_proj.bias", {cfg.F});
    add(p + "mlp.down_proj.weight", {C, cfg.F});
    add(p + "mlp.down_proj.bias", {C});
  }
  add("visual.merger.ln_q.weight", {C});
  add("visual.merger.mlp.0.weight", {M, M});
  add("visual.merger.mlp.0.bias", {M});
  add("visual.merger.mlp.2.weight", {cfg.Cout, M});
  add("visual.merger.mlp.2.bias", {cfg.Cout});
  v->mem_.assign((size_t)off, 0.0f);
  v->grad_.assign((size_t)off, 0.0f);
  *out = std::move(v);
  return Status::Ok;
}

const TensorInfo* VisionTower::find_param(const std::string& name) const {
  for (auto& t : params_)
    if (t.name == name) return &t;
  return nullptr;
}

float* VisionTower::p(const std::string& name) { return mem_.data() + find_param(name)->offset; }

namespace {

// One block's activations: slices of VisionActs when training, shared scratch when not
// (then x_in, x_mid and x_out alias one buffer and the residual adds run in place).
struct BlockBufs {
  float *x_in, *x_out, *ln1, *rstd1, *q, *k, *v, *att, *lse, *xmid, *ln2, *rstd2, *g, *u, *h;
};

BlockBufs block_bufs(VisionActs* a, std::vector<float>* scratch, int b, int64_t N, int64_t C, int64_t F, int NH) {
  if (a) {
    const int64_t nc = N * C, nf = N * F;
    return {a->x.data() + b * nc, a->x.data() + (b + 1) * nc, a->ln1.data() + b * nc, a->rstd1.data() + b * N, a->q.data() + b * nc, a->k.data() + b * nc, a->v.data() + b * nc,
            a->att.data() + b * nc, a->lse.data() + b * N * NH, a->xmid.data() + b * nc, a->ln2.data() + b * nc, a->rstd2.data() + b * N, a->g.data() + b * nf, a->u.data() + b * nf,
            a->h.data() + b * nf};
  }
  // scratch: x | ln | rstd | q | k | v | att | g | u | h (ln and rstd shared by both norms)
  scratch->resize((size_t)(6 * N * C + N + 3 * N * F));
  float* s = scratch->data();
  float *x = s, *ln = x + N * C, *rstd = ln + N * C, *q = rstd + N, *k = q + N * C, *v = k + N * C, *att = v + N * C, *g = att + N * C, *u = g + N * F, *h = u + N * F;
  return {x, x, ln, rstd, q, k, v, att, nullptr, x, ln, rstd, g, u, h};
}

}  // namespace

Status VisionTower::forward(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, std::string* error, VisionActs* acts) {
  const VisionConfig& c = cfg_;
  const int m2 = c.merge * c.merge;
  int64_t total = 0;
  for (int i = 0; i < n_img; i++) {
    const int t = grids[3 * i], h = grids[3 * i + 1], w = grids[3 * i + 2];
    if (t < 1 || h < 1 || w < 1 || h % c.merge || w % c.merge) {
      *error = "image " + std::to_string(i) + " grid (" + std::to_string(t) + ", " + std::to_string(h) + ", " + std::to_string(w) + ") is not a multiple of the merge size";
      return Status::InvalidArgument;
    }
    total += (int64_t)t * h * w;
  }
  if (total != N) {
    *error = "the grids describe " + std::to_string(total) + " patches but " + std::to_string(N) + " were given";
    return Status::InvalidArgument;
  }
  const int64_t C = c.C, P = 3LL * c.temporal * c.patch * c.patch, F = c.F;
  const int hd = c.C / c.NH;
  VisionActs local;
  VisionActs& a = acts ? *acts : local;  // index lists and merger tensors live here either way
  a.N = N;
  a.grids.assign(grids, grids + 3 * n_img);
  if (acts) {
    const size_t nc = (size_t)(N * C), nf = (size_t)(N * F), d = (size_t)c.depth;
    a.pixels.assign(pixels, pixels + N * P);
    a.x.assign((d + 1) * nc, 0.0f);
    for (auto* t : {&a.ln1, &a.q, &a.k, &a.v, &a.att, &a.xmid, &a.ln2}) t->assign(d * nc, 0.0f);
    for (auto* t : {&a.rstd1, &a.rstd2}) t->assign(d * (size_t)N, 0.0f);
    a.lse.assign(d * (size_t)(N * c.NH), 0.0f);
    for (auto* t : {&a.g, &a.u, &a.h}) t->assign(d * nf, 0.0f);
  }
  std::vector<float> scratch;
  // patch embedding, then regroup merged units window by window
  std::vector<float> emb((size_t)(N * C));
  matmul_forward(*pool_, emb.data(), pixels, p("visual.patch_embed.proj.weight"), nullptr, N, (int)P, (int)C);
  vision_window_index(grids, n_img, c.merge, c.window / c.patch / c.merge, &a.widx, &a.cu_win);
  // positions (2, N): row (h) and column (w) of every patch, in the processor's order
  std::vector<int32_t> pos_raw((size_t)(2 * N));
  {
    int64_t r = 0;
    for (int i = 0; i < n_img; i++) {
      const int t = grids[3 * i], h = grids[3 * i + 1], w = grids[3 * i + 2];
      for (int tt = 0; tt < t; tt++)
        for (int bh = 0; bh < h / c.merge; bh++)
          for (int bw = 0; bw < w / c.merge; bw++)
            for (int mh = 0; mh < c.merge; mh++)
              for (int mw = 0; mw < c.merge; mw++, r++) {
                pos_raw[(size_t)r] = bh * c.merge + mh;
                pos_raw[(size_t)(N + r)] = bw * c.merge + mw;
              }
    }
  }
  float* x0 = block_bufs(acts, &scratch, 0, N, C, F, c.NH).x_in;
  a.pos.assign((size_t)(2 * N), 0);
  for (size_t u = 0; u < a.widx.size(); u++)
    for (int k = 0; k < m2; k++) {
      const int64_t dst = (int64_t)u * m2 + k, src = (int64_t)a.widx[u] * m2 + k;
      std::memcpy(x0 + dst * C, emb.data() + src * C, sizeof(float) * C);
      a.pos[(size_t)dst] = pos_raw[(size_t)src];
      a.pos[(size_t)(N + dst)] = pos_raw[(size_t)(N + src)];
    }
  a.cu_full.assign(1, 0);
  for (int i = 0; i < n_img; i++)
    for (int tt = 0; tt < grids[3 * i]; tt++) a.cu_full.push_back(a.cu_full.back() + grids[3 * i + 1] * grids[3 * i + 2]);
  const int sec[2] = {hd / 4, hd / 4};
  const RopeSpec rope{hd, c.theta, 2, sec, true};
  std::vector<float> qkv((size_t)(N * 3 * C)), o((size_t)(N * C));
  for (int b = 0; b < c.depth; b++) {
    const std::string bp = "visual.blocks." + std::to_string(b) + ".";
    const BlockBufs k = block_bufs(acts, &scratch, b, N, C, F, c.NH);
    const std::vector<int32_t>& cu = uses_full_attention(b) ? a.cu_full : a.cu_win;
    rmsnorm_forward(*pool_, k.ln1, k.rstd1, k.x_in, p(bp + "norm1.weight"), N, (int)C, c.eps);
    matmul_forward(*pool_, qkv.data(), k.ln1, p(bp + "attn.qkv.weight"), p(bp + "attn.qkv.bias"), N, (int)C, (int)(3 * C));
    for (int64_t n = 0; n < N; n++) {  // (N, 3, NH, hd) -> q, k, v (N, NH, hd)
      std::memcpy(k.q + n * C, qkv.data() + n * 3 * C, sizeof(float) * C);
      std::memcpy(k.k + n * C, qkv.data() + n * 3 * C + C, sizeof(float) * C);
      std::memcpy(k.v + n * C, qkv.data() + n * 3 * C + 2 * C, sizeof(float) * C);
    }
    rope_forward(*pool_, k.q, a.pos.data(), rope, N, c.NH);
    rope_forward(*pool_, k.k, a.pos.data(), rope, N, c.NH);
    attention_segments(*pool_, k.att, k.lse, k.q, k.k, k.v, cu.data(), (int)cu.size() - 1, c.NH, hd);
    matmul_forward(*pool_, o.data(), k.att, p(bp + "attn.proj.weight"), p(bp + "attn.proj.bias"), N, (int)C, (int)C);
    for (int64_t i = 0; i < N * C; i++) k.xmid[i] = k.x_in[i] + o[(size_t)i];
    rmsnorm_forward(*pool_, k.ln2, k.rstd2, k.xmid, p(bp + "norm2.weight"), N, (int)C, c.eps);
    matmul_forward(*pool_, k.g, k.ln2, p(bp + "mlp.gate_proj.weight"), p(bp + "mlp.gate_proj.bias"), N, (int)C, (int)F);
    matmul_forward(*pool_, k.u, k.ln2, p(bp + "mlp.up_proj.weight"), p(bp + "mlp.up_proj.bias"), N, (int)C, (int)F);
    swiglu_forward(*pool_, k.h, k.g, k.u, N * F);
    matmul_forward(*pool_, o.data(), k.h, p(bp + "mlp.down_proj.weight"), p(bp + "mlp.down_proj.bias"), N, (int)F, (int)C);
    for (int64_t i = 0; i < N * C; i++) k.x_out[i] = k.xmid[i] + o[(size_t)i];
  }
  // merger: RMSNorm per patch, then each group of merge^2 consecutive patches is one row
  const float* xf = acts ? a.x.data() + (int64_t)c.depth * N * C : x0;  // inference: the blocks ran in place on x0
  const int64_t U = N / m2, M = C * m2;
  a.lnq.assign((size_t)(N * C), 0.0f);
  a.rstdq.assign((size_t)N, 0.0f);
  a.pre.assign((size_t)(U * M), 0.0f);
  a.hid.assign((size_t)(U * M), 0.0f);
  rmsnorm_forward(*pool_, a.lnq.data(), a.rstdq.data(), xf, p("visual.merger.ln_q.weight"), N, (int)C, c.eps);
  matmul_forward(*pool_, a.pre.data(), a.lnq.data(), p("visual.merger.mlp.0.weight"), p("visual.merger.mlp.0.bias"), U, (int)M, (int)M);
  gelu_forward(*pool_, a.hid.data(), a.pre.data(), U * M);
  std::vector<float> merged((size_t)(U * c.Cout));
  matmul_forward(*pool_, merged.data(), a.hid.data(), p("visual.merger.mlp.2.weight"), p("visual.merger.mlp.2.bias"), U, (int)M, c.Cout);
  // undo the window order
  for (size_t uu = 0; uu < a.widx.size(); uu++) std::memcpy(out + (int64_t)a.widx[uu] * c.Cout, merged.data() + (int64_t)uu * c.Cout, sizeof(float) * c.Cout);
  return Status::Ok;
}

bool VisionTower::uses_full_attention(int block) const {
  for (int f : cfg_.fullatt)
    if (f == block) return true;
  return false;
}

// The forward in reverse. Gradients ACCUMULATE (+=) into grad_ (same layout as mem_).
Status VisionTower::backward(const float* dout, const VisionActs& a, std::string* error) {
  const VisionConfig& c = cfg_;
  const int64_t N = a.N, C = c.C, P = 3LL * c.temporal * c.patch * c.patch, F = c.F, m2 = c.merge * c.merge, U = N / m2, M = C * m2;
  if (a.x.size() != (size_t)((c.depth + 1) * N * C) || a.pixels.size() != (size_t)(N * P)) {
    *error = "backward() needs the activations of a training forward (forward with VisionActs)";
    return Status::InvalidArgument;
  }
  const int hd = c.C / c.NH;
  auto g = [&](const std::string& name) { return grad_.data() + find_param(name)->offset; };
  // merger, from the output's image order back to window order
  std::vector<float> dmerged((size_t)(U * c.Cout));
  for (size_t uu = 0; uu < a.widx.size(); uu++) std::memcpy(dmerged.data() + (int64_t)uu * c.Cout, dout + (int64_t)a.widx[uu] * c.Cout, sizeof(float) * c.Cout);
  std::vector<float> dhid((size_t)(U * M), 0.0f), dpre((size_t)(U * M), 0.0f), dlnq((size_t)(N * C), 0.0f);
  matmul_backward(*pool_, dhid.data(), g("visual.merger.mlp.2.weight"), g("visual.merger.mlp.2.bias"), dmerged.data(), a.hid.data(), p("visual.merger.mlp.2.weight"), U, (int)M, c.Cout);
  gelu_backward(*pool_, dpre.data(), dhid.data(), a.pre.data(), U * M);
  matmul_backward(*pool_, dlnq.data(), g("visual.merger.mlp.0.weight"), g("visual.merger.mlp.0.bias"), dpre.data(), a.lnq.data(), p("visual.merger.mlp.0.weight"), U, (int)M, (int)M);
  std::vector<float> dx((size_t)(N * C), 0.0f);  // gradient of the residual stream, walked down the blocks
  rmsnorm_backward(*pool_, dx.data(), g("visual.merger.ln_q.weight"), dlnq.data(), a.x.data() + (int64_t)c.depth * N * C, p("visual.merger.ln_q.weight"), a.rstdq.data(), N, (int)C);
  const int sec[2] = {hd / 4, hd / 4};
  const RopeSpec rope{hd, c.theta, 2, sec, true};
  std::vector<float> dh((size_t)(N * F)), dg((size_t)(N * F)), du((size_t)(N * F)), dln((size_t)(N * C)), datt((size_t)(N * C)), dq((size_t)(N * C)), dk((size_t)(N * C)),
      dv((size_t)(N * C)), dqkv((size_t)(N * 3 * C));
  for (int b = c.depth - 1; b >= 0; b--) {
    const std::string bp = "visual.blocks." + std::to_string(b) + ".";
    const BlockBufs k = block_bufs(const_cast<VisionActs*>(&a), nullptr, b, N, C, F, c.NH);
    const std::vector<int32_t>& cu = uses_full_attention(b) ? a.cu_full : a.cu_win;
    // x_out = xmid + down(swiglu(gate(ln2), up(ln2))), ln2 = norm2(xmid): dx is d x_out, and becomes d xmid
    std::fill(dh.begin(), dh.end(), 0.0f);
    std::fill(dg.begin(), dg.end(), 0.0f);
    std::fill(du.begin(), du.end(), 0.0f);
    std::fill(dln.begin(), dln.end(), 0.0f);
    matmul_backward(*pool_, dh.data(), g(bp + "mlp.down_proj.weight"), g(bp + "mlp.down_proj.bias"), dx.data(), k.h, p(bp + "mlp.down_proj.weight"), N, (int)F, (int)C);
    swiglu_backward(*pool_, dg.data(), du.data(), dh.data(), k.g, k.u, N * F);
    matmul_backward(*pool_, dln.data(), g(bp + "mlp.gate_proj.weight"), g(bp + "mlp.gate_proj.bias"), dg.data(), k.ln2, p(bp + "mlp.gate_proj.weight"), N, (int)C, (int)F);
    matmul_backward(*pool_, dln.data(), g(bp + "mlp.up_proj.weight"), g(bp + "mlp.up_proj.bias"), du.data(), k.ln2, p(bp + "mlp.up_proj.weight"), N, (int)C, (int)F);
    rmsnorm_backward(*pool_, dx.data(), g(bp + "norm2.weight"), dln.data(), k.xmid, p(bp + "norm2.weight"), k.rstd2, N, (int)C);
    // xmid = x_in + proj(attention(rope(q), rope(k), v)), qkv = qkv(norm1(x_in)): dx becomes d x_in
    std::fill(datt.begin(), datt.end(), 0.0f);
    std::fill(dq.begin(), dq.end(), 0.0f);
    std::fill(dk.begin(), dk.end(), 0.0f);
    std::fill(dv.begin(), dv.end(), 0.0f);
    std::fill(dln.begin(), dln.end(), 0.0f);
    matmul_backward(*pool_, datt.data(), g(bp + "attn.proj.weight"), g(bp + "attn.proj.bias"), dx.data(), k.att, p(bp + "attn.proj.weight"), N, (int)C, (int)C);
    attention_segments_backward(*pool_, dq.data(), dk.data(), dv.data(), datt.data(), k.att, k.lse, k.q, k.k, k.v, cu.data(), (int)cu.size() - 1, c.NH, hd);
    rope_backward(*pool_, dq.data(), a.pos.data(), rope, N, c.NH);
    rope_backward(*pool_, dk.data(), a.pos.data(), rope, N, c.NH);
    for (int64_t n = 0; n < N; n++) {
      std::memcpy(dqkv.data() + n * 3 * C, dq.data() + n * C, sizeof(float) * C);
      std::memcpy(dqkv.data() + n * 3 * C + C, dk.data() + n * C, sizeof(float) * C);
      std::memcpy(dqkv.data() + n * 3 * C + 2 * C, dv.data() + n * C, sizeof(float) * C);
    }
    matmul_backward(*pool_, dln.data(), g(bp + "attn.qkv.weight"), g(bp + "attn.qkv.bias"), dqkv.data(), k.ln1, p(bp + "attn.qkv.weight"), N, (int)C, (int)(3 * C));
    rmsnorm_backward(*pool_, dx.data(), g(bp + "norm1.weight"), dln.data(), k.x_in, p(bp + "norm1.weight"), k.rstd1, N, (int)C);
  }
  // patch embedding: undo the window regrouping, then the weight's gradient (the pixels need none)
  std::vector<float> demb((size_t)(N * C));
  for (size_t u = 0; u < a.widx.size(); u++)
    for (int64_t k = 0; k < m2; k++) std::memcpy(demb.data() + ((int64_t)a.widx[u] * m2 + k) * C, dx.data() + ((int64_t)u * m2 + k) * C, sizeof(float) * C);
  matmul_backward(*pool_, nullptr, g("visual.patch_embed.proj.weight"), nullptr, demb.data(), a.pixels.data(), p("visual.patch_embed.proj.weight"), N, (int)P, (int)C);
  return Status::Ok;
}

void VisionTower::zero_grad() { std::fill(grad_.begin(), grad_.end(), 0.0f); }

double VisionTower::grad_sq_norm() const { return vlatext::grad_sq_norm(*pool_, grad_.data(), (int64_t)grad_.size()); }

double VisionTower::optimizer_step(const AdamWConfig& opt, float max_norm, double extra_sq) {
  if (m_.size() != mem_.size()) {
    m_.assign(mem_.size(), 0.0f);
    v_.assign(mem_.size(), 0.0f);
    t_ = 0;
  }
  const double sq = grad_sq_norm() + extra_sq;
  t_++;
  adamw_update(*pool_, mem_.data(), m_.data(), v_.data(), grad_.data(), (int64_t)mem_.size(), opt, t_, clip_scale(sq, max_norm));
  zero_grad();
  return std::sqrt(sq);
}

Status VisionTower::set_optimizer_state(int step, std::vector<float> m, std::vector<float> v, std::string* error) {
  if (m.size() != mem_.size() || v.size() != mem_.size()) {
    *error = "vision optimizer state has " + std::to_string(m.size()) + " values but the tower has " + std::to_string(mem_.size()) + " parameters";
    return Status::InvalidArgument;
  }
  m_ = std::move(m);
  v_ = std::move(v);
  t_ = step;
  return Status::Ok;
}

}  // namespace vlatext
