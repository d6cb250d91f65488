#include "vision.h"

#include <cmath>
#include <cstring>

#include "../kernels/attention.h"
#include "../kernels/rope.h"

namespace vlatext {

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

Status VisionTower::create(const VisionConfig& cfg, const BackendOptions& bo, std::unique_ptr<VisionTower>* out, std::string* error) {
  if (cfg.depth < 1 || cfg.C < 1 || cfg.F < 1 || cfg.NH < 1 || cfg.Cout < 1 || cfg.C % cfg.NH != 0 || (cfg.C / cfg.NH) % 4 != 0) {
    *error = "vision_config needs positive depth, hidden_size, intermediate_size, num_heads, out_hidden_size, and hidden_size / num_heads divisible by 4";
    return Status::InvalidArgument;
  }
  if (cfg.window % (cfg.patch * cfg.merge) != 0) {
    *error = "vision_config.window_size must be a multiple of patch_size * spatial_merge_size";
    return Status::InvalidArgument;
  }
  std::unique_ptr<Backend> be;
  const Status bs = create_backend(bo, &be, error);
  if (bs != Status::Ok) return bs;
  std::unique_ptr<VisionTower> v(new VisionTower(cfg, std::move(be)));
  v->store_ = std::make_unique<ParamStore>(v->be_.get());
  ParamStore& st = *v->store_;
  const DType Mt = cfg.dtype, S = DType::F32;
  const int64_t C = cfg.C, P = 3LL * cfg.temporal * cfg.patch * cfg.patch, M = C * cfg.merge * cfg.merge;
  st.add("visual.patch_embed.proj.weight", {C, P}, Mt);
  for (int b = 0; b < cfg.depth; b++) {
    const std::string p = "visual.blocks." + std::to_string(b) + ".";
    st.add(p + "norm1.weight", {C}, S);
    st.add(p + "attn.qkv.weight", {3 * C, C}, Mt);
    st.add(p + "attn.qkv.bias", {3 * C}, S);
    st.add(p + "attn.proj.weight", {C, C}, Mt);
    st.add(p + "attn.proj.bias", {C}, S);
    st.add(p + "norm2.weight", {C}, S);
    st.add(p + "mlp.gate_proj.weight", {cfg.F, C}, Mt);
    st.add(p + "mlp.gate_proj.bias", {cfg.F}, S);
    st.add(p + "mlp.up_proj.weight", {cfg.F, C}, Mt);
    st.add(p + "mlp.up_proj.bias", {cfg.F}, S);
    st.add(p + "mlp.down_proj.weight", {C, cfg.F}, Mt);
    st.add(p + "mlp.down_proj.bias", {C}, S);
  }
  st.add("visual.merger.ln_q.weight", {C}, S);
  st.add("visual.merger.mlp.0.weight", {M, M}, Mt);
  st.add("visual.merger.mlp.0.bias", {M}, S);
  st.add("visual.merger.mlp.2.weight", {cfg.Cout, M}, Mt);
  st.add("visual.merger.mlp.2.bias", {cfg.Cout}, S);
  const Status as = st.end_segment(error);
  if (as != Status::Ok) return as;
  *out = std::move(v);
  return Status::Ok;
}

namespace {

// One block's activations: slices of VisionActs when training, shared scratch when not
// (then x_in, x_mid and x_out alias one buffer and the residual adds run in place).
struct BlockBufs {
  float *x_in, *x_out, *ln1, *rstd1, *q, *k, *v, *att, *lse, *xmid, *ln2, *rstd2, *g, *u, *h;
};

BlockBufs block_bufs(VisionActs* a, Buf<float>* scratch, int b, int64_t N, int64_t C, int64_t F, int NH) {
  if (a) {
    const int64_t nc = N * C, nf = N * F;
    return {a->x.data() + b * nc, a->x.data() + (b + 1) * nc, a->ln1.data() + b * nc, a->rstd1.data() + b * N, a->q.data() + b * nc, a->k.data() + b * nc, a->v.data() + b * nc,
            a->att.data() + b * nc, a->lse.data() + b * N * NH, a->xmid.data() + b * nc, a->ln2.data() + b * nc, a->rstd2.data() + b * N, a->g.data() + b * nf, a->u.data() + b * nf,
            a->h.data() + b * nf};
  }
  // scratch: x | ln | rstd | q | k | v | att | g | u | h (ln and rstd shared by both norms)
  float* s = scratch->data();
  float *x = s, *ln = x + N * C, *rstd = ln + N * C, *q = rstd + N, *k = q + N * C, *v = k + N * C, *att = v + N * C, *g = att + N * C, *u = g + N * F, *h = u + N * F;
  return {x, x, ln, rstd, q, k, v, att, nullptr, x, ln, rstd, g, u, h};
}

}  // namespace

Status VisionTower::forward(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, std::string* error, VisionActs* acts) {
  const VisionConfig& c = cfg_;
  Backend& be = *be_;
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
  VisionActs local(&be);
  VisionActs& a = acts ? *acts : local;  // index lists and merger tensors live here either way
  a.N = N;
  a.grids.assign(grids, grids + 3 * n_img);
  bool ok = a.pixels.upload(pixels, N * P);
  const int64_t d = c.depth;
  if (acts) {
    ok = ok && a.x.resize((d + 1) * N * C);
    for (Buf<float>* t : {&a.ln1, &a.q, &a.k, &a.v, &a.att, &a.xmid, &a.ln2}) ok = ok && t->resize(d * N * C);
    for (Buf<float>* t : {&a.rstd1, &a.rstd2}) ok = ok && t->resize(d * N);
    ok = ok && a.lse.resize(d * N * c.NH);
    for (Buf<float>* t : {&a.g, &a.u, &a.h}) ok = ok && t->resize(d * N * F);
  }
  Buf<float> scratch(&be, acts ? 0 : 6 * N * C + N + 3 * N * F);
  // patch embedding, then regroup merged units window by window
  Buf<float> emb(&be, N * C), o(&be, N * C);
  ok = ok && emb.size() == N * C && o.size() == N * C && (acts || !scratch.empty());
  vision_window_index(grids, n_img, c.merge, c.window / c.patch / c.merge, &a.widx, &a.cu_win);
  // positions (2, N): row (h) and column (w) of every patch, in the processor's order
  std::vector<int32_t> pos_raw((size_t)(2 * N)), pos((size_t)(2 * N)), order((size_t)N);
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
  // order[dst] = the processor-order patch at window-order row dst
  for (size_t u = 0; u < a.widx.size(); u++)
    for (int k = 0; k < m2; k++) {
      const int64_t dst = (int64_t)u * m2 + k, src = (int64_t)a.widx[u] * m2 + k;
      order[(size_t)dst] = (int32_t)src;
      pos[(size_t)dst] = pos_raw[(size_t)src];
      pos[(size_t)(N + dst)] = pos_raw[(size_t)(N + src)];
    }
  Buf<int32_t> dorder(&be);
  ok = ok && a.pos.upload(pos.data(), 2 * N) && dorder.upload(order.data(), N);
  if (!ok) {
    *error = "out of memory for the vision tower's activations (" + std::to_string(N) + " patches) on " + be.describe();
    return Status::OutOfMemory;
  }
  be.matmul_forward(emb.data(), a.pixels.data(), W("visual.patch_embed.proj.weight"), nullptr, N, (int)P, (int)C);
  float* x0 = block_bufs(acts, &scratch, 0, N, C, F, c.NH).x_in;
  be.gather_rows(x0, emb.data(), dorder.data(), N, (int)C);
  a.cu_full.assign(1, 0);
  for (int i = 0; i < n_img; i++)
    for (int tt = 0; tt < grids[3 * i]; tt++) a.cu_full.push_back(a.cu_full.back() + grids[3 * i + 1] * grids[3 * i + 2]);
  const int sec[2] = {hd / 4, hd / 4};
  const RopeSpec rope{hd, c.theta, 2, sec, true};
  for (int b = 0; b < c.depth; b++) {
    const std::string bp = "visual.blocks." + std::to_string(b) + ".";
    const BlockBufs k = block_bufs(acts, &scratch, b, N, C, F, c.NH);
    const std::vector<int32_t>& cu = uses_full_attention(b) ? a.cu_full : a.cu_win;
    be.rmsnorm_forward(k.ln1, k.rstd1, k.x_in, f32(bp + "norm1.weight"), N, (int)C, c.eps);
    // qkv (3C, C) as three C-row blocks of one weight: q, k, v (N, NH, hd) without a split copy
    const ConstTensorRef qkv = W(bp + "attn.qkv.weight");
    const float* qkv_b = f32(bp + "attn.qkv.bias");
    be.matmul_forward(k.q, k.ln1, qkv, qkv_b, N, (int)C, (int)C);
    be.matmul_forward(k.k, k.ln1, qkv.at(C * C), qkv_b + C, N, (int)C, (int)C);
    be.matmul_forward(k.v, k.ln1, qkv.at(2 * C * C), qkv_b + 2 * C, N, (int)C, (int)C);
    be.rope_forward(k.q, a.pos.data(), rope, N, c.NH);
    be.rope_forward(k.k, a.pos.data(), rope, N, c.NH);
    be.attention_segments(k.att, k.lse, k.q, k.k, k.v, cu.data(), (int)cu.size() - 1, c.NH, hd);
    be.matmul_forward(o.data(), k.att, W(bp + "attn.proj.weight"), f32(bp + "attn.proj.bias"), N, (int)C, (int)C);
    be.add(k.xmid, k.x_in, o.data(), N * C);
    be.rmsnorm_forward(k.ln2, k.rstd2, k.xmid, f32(bp + "norm2.weight"), N, (int)C, c.eps);
    be.matmul_forward(k.g, k.ln2, W(bp + "mlp.gate_proj.weight"), f32(bp + "mlp.gate_proj.bias"), N, (int)C, (int)F);
    be.matmul_forward(k.u, k.ln2, W(bp + "mlp.up_proj.weight"), f32(bp + "mlp.up_proj.bias"), N, (int)C, (int)F);
    be.swiglu_forward(k.h, k.g, k.u, N * F);
    be.matmul_forward(o.data(), k.h, W(bp + "mlp.down_proj.weight"), f32(bp + "mlp.down_proj.bias"), N, (int)F, (int)C);
    be.add(k.x_out, k.xmid, o.data(), N * C);
  }
  // merger: RMSNorm per patch, then each group of merge^2 consecutive patches is one row
  const float* xf = acts ? a.x.data() + (int64_t)c.depth * N * C : x0;  // inference: the blocks ran in place on x0
  const int64_t U = N / m2, M = C * m2;
  Buf<float> merged(&be, U * c.Cout), res(&be, U * c.Cout);
  Buf<int32_t> widx(&be);
  ok = a.lnq.resize(N * C) && a.rstdq.resize(N) && a.pre.resize(U * M) && a.hid.resize(U * M) && merged.size() == U * c.Cout && res.size() == U * c.Cout && widx.upload(a.widx.data(), (int64_t)a.widx.size());
  if (!ok) {
    *error = "out of memory for the vision merger";
    return Status::OutOfMemory;
  }
  be.rmsnorm_forward(a.lnq.data(), a.rstdq.data(), xf, f32("visual.merger.ln_q.weight"), N, (int)C, c.eps);
  be.matmul_forward(a.pre.data(), a.lnq.data(), W("visual.merger.mlp.0.weight"), f32("visual.merger.mlp.0.bias"), U, (int)M, (int)M);
  be.gelu_forward(a.hid.data(), a.pre.data(), U * M);
  be.matmul_forward(merged.data(), a.hid.data(), W("visual.merger.mlp.2.weight"), f32("visual.merger.mlp.2.bias"), U, (int)M, c.Cout);
  // undo the window order
  be.scatter_rows(res.data(), widx.data(), merged.data(), U, c.Cout);
  be.download(out, res.data(), sizeof(float) * (size_t)(U * c.Cout));
  return be.sync(error);
}

Status VisionTower::encode(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, bool train, std::string* error) {
  if (!train) return forward(pixels, N, grids, n_img, out, error, nullptr);
  std::unique_ptr<VisionActs> acts(new VisionActs(be_.get()));
  const Status st = forward(pixels, N, grids, n_img, out, error, acts.get());
  if (st == Status::Ok) last_ = std::move(acts);
  return st;
}

Status VisionTower::encode_backward(const float* dout, std::string* error) {
  if (!last_) {
    *error = "no training forward to go back through; encode with train = true first";
    return Status::InvalidState;
  }
  return backward(dout, *last_, error);
}

bool VisionTower::uses_full_attention(int block) const {
  for (int f : cfg_.fullatt)
    if (f == block) return true;
  return false;
}

// The forward in reverse. Gradients ACCUMULATE (+=) into the store's gradients.
Status VisionTower::backward(const float* dout, const VisionActs& a_in, std::string* error) {
  const VisionConfig& c = cfg_;
  Backend& be = *be_;
  VisionActs& a = const_cast<VisionActs&>(a_in);  // read only; block_bufs hands out mutable pointers
  const int64_t N = a.N, C = c.C, P = 3LL * c.temporal * c.patch * c.patch, F = c.F, m2 = c.merge * c.merge, U = N / m2, M = C * m2;
  if (a.x.size() != (c.depth + 1) * N * C || a.pixels.size() != N * P) {
    *error = "backward() needs the activations of a training forward (forward with VisionActs)";
    return Status::InvalidArgument;
  }
  if (store_->trainable_size() == 0) {
    *error = "the vision tower is frozen: make it trainable (vision.train) before a backward";
    return Status::InvalidArgument;
  }
  const int hd = c.C / c.NH;
  // merger, from the output's image order back to window order
  Buf<float> dres(&be), dmerged(&be, U * c.Cout), dhid(&be, U * M), dpre(&be, U * M), dlnq(&be, N * C), dx(&be, N * C);
  Buf<int32_t> widx(&be), dorder(&be);
  std::vector<int32_t> order((size_t)N);
  for (size_t u = 0; u < a.widx.size(); u++)
    for (int64_t k = 0; k < m2; k++) order[(size_t)((int64_t)u * m2 + k)] = (int32_t)((int64_t)a.widx[u] * m2 + k);
  Buf<float> dh(&be, N * F), dg(&be, N * F), du(&be, N * F), dln(&be, N * C), datt(&be, N * C), dq(&be, N * C), dk(&be, N * C), dv(&be, N * C), demb(&be, N * C);
  if (!dres.upload(dout, U * c.Cout) || !widx.upload(a.widx.data(), (int64_t)a.widx.size()) || !dorder.upload(order.data(), N) || demb.size() != N * C || dh.size() != N * F) {
    *error = "out of memory for the vision tower's gradients";
    return Status::OutOfMemory;
  }
  be.gather_rows(dmerged.data(), dres.data(), widx.data(), U, c.Cout);
  be.matmul_backward(dhid.data(), G("visual.merger.mlp.2.weight"), G("visual.merger.mlp.2.bias"), dmerged.data(), a.hid.data(), W("visual.merger.mlp.2.weight"), U, (int)M, c.Cout);
  be.gelu_backward(dpre.data(), dhid.data(), a.pre.data(), U * M);
  be.matmul_backward(dlnq.data(), G("visual.merger.mlp.0.weight"), G("visual.merger.mlp.0.bias"), dpre.data(), a.lnq.data(), W("visual.merger.mlp.0.weight"), U, (int)M, (int)M);
  be.rmsnorm_backward(dx.data(), G("visual.merger.ln_q.weight"), dlnq.data(), a.x.data() + (int64_t)c.depth * N * C, f32("visual.merger.ln_q.weight"), a.rstdq.data(), N, (int)C);
  const int sec[2] = {hd / 4, hd / 4};
  const RopeSpec rope{hd, c.theta, 2, sec, true};
  auto zero = [&](Buf<float>& t) { be.zero(t.data(), sizeof(float) * (size_t)t.size()); };
  for (int b = c.depth - 1; b >= 0; b--) {
    const std::string bp = "visual.blocks." + std::to_string(b) + ".";
    const BlockBufs k = block_bufs(&a, nullptr, b, N, C, F, c.NH);
    const std::vector<int32_t>& cu = uses_full_attention(b) ? a.cu_full : a.cu_win;
    // x_out = xmid + down(swiglu(gate(ln2), up(ln2))), ln2 = norm2(xmid): dx is d x_out, and becomes d xmid
    zero(dh), zero(dg), zero(du), zero(dln);
    be.matmul_backward(dh.data(), G(bp + "mlp.down_proj.weight"), G(bp + "mlp.down_proj.bias"), dx.data(), k.h, W(bp + "mlp.down_proj.weight"), N, (int)F, (int)C);
    be.swiglu_backward(dg.data(), du.data(), dh.data(), k.g, k.u, N * F);
    be.matmul_backward(dln.data(), G(bp + "mlp.gate_proj.weight"), G(bp + "mlp.gate_proj.bias"), dg.data(), k.ln2, W(bp + "mlp.gate_proj.weight"), N, (int)C, (int)F);
    be.matmul_backward(dln.data(), G(bp + "mlp.up_proj.weight"), G(bp + "mlp.up_proj.bias"), du.data(), k.ln2, W(bp + "mlp.up_proj.weight"), N, (int)C, (int)F);
    be.rmsnorm_backward(dx.data(), G(bp + "norm2.weight"), dln.data(), k.xmid, f32(bp + "norm2.weight"), k.rstd2, N, (int)C);
    // xmid = x_in + proj(attention(rope(q), rope(k), v)), qkv = qkv(norm1(x_in)): dx becomes d x_in
    zero(datt), zero(dq), zero(dk), zero(dv), zero(dln);
    be.matmul_backward(datt.data(), G(bp + "attn.proj.weight"), G(bp + "attn.proj.bias"), dx.data(), k.att, W(bp + "attn.proj.weight"), N, (int)C, (int)C);
    be.attention_segments_backward(dq.data(), dk.data(), dv.data(), datt.data(), k.att, k.lse, k.q, k.k, k.v, cu.data(), (int)cu.size() - 1, c.NH, hd);
    be.rope_backward(dq.data(), a.pos.data(), rope, N, c.NH);
    be.rope_backward(dk.data(), a.pos.data(), rope, N, c.NH);
    // the three C-row blocks of qkv, each with its slice of the gradient
    const ConstTensorRef qkv = W(bp + "attn.qkv.weight");
    float* gw = G(bp + "attn.qkv.weight");
    float* gb = G(bp + "attn.qkv.bias");
    const float* dparts[3] = {dq.data(), dk.data(), dv.data()};
    for (int j = 0; j < 3; j++)
      be.matmul_backward(dln.data(), gw ? gw + j * C * C : nullptr, gb ? gb + j * C : nullptr, dparts[j], k.ln1, qkv.at(j * C * C), N, (int)C, (int)C);
    be.rmsnorm_backward(dx.data(), G(bp + "norm1.weight"), dln.data(), k.x_in, f32(bp + "norm1.weight"), k.rstd1, N, (int)C);
  }
  // patch embedding: undo the window regrouping, then the weight's gradient (the pixels need none)
  be.scatter_rows(demb.data(), dorder.data(), dx.data(), N, (int)C);
  be.matmul_backward(nullptr, G("visual.patch_embed.proj.weight"), nullptr, demb.data(), a.pixels.data(), W("visual.patch_embed.proj.weight"), N, (int)P, (int)C);
  return be.sync(error);
}

}  // namespace vlatext
