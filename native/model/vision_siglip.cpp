#include "vision_siglip.h"

#include <vector>

namespace vlatext {

Status SiglipEncoder::create(const SiglipConfig& cfg, const BackendOptions& bo, std::unique_ptr<SiglipEncoder>* out, std::string* error) {
  if (cfg.depth < 1 || cfg.C < 1 || cfg.F < 1 || cfg.NH < 1 || cfg.Cout < 1 || cfg.C % cfg.NH != 0) {
    *error = "vision_config needs positive num_hidden_layers, hidden_size, intermediate_size, num_attention_heads, and hidden_size divisible by num_attention_heads";
    return Status::InvalidArgument;
  }
  if (cfg.patch < 1 || cfg.image % cfg.patch != 0 || cfg.scale < 1 || (cfg.image / cfg.patch) % cfg.scale != 0) {
    *error = "vision_config.image_size must be a multiple of patch_size, and image_size / patch_size a multiple of scale_factor";
    return Status::InvalidArgument;
  }
  std::unique_ptr<Backend> be;
  const Status bs = create_backend(bo, &be, error);
  if (bs != Status::Ok) return bs;
  std::unique_ptr<SiglipEncoder> v(new SiglipEncoder(cfg, std::move(be)));
  v->store_ = std::make_unique<ParamStore>(v->be_.get());
  ParamStore& st = *v->store_;
  const DType Mt = cfg.dtype, S = DType::F32;
  const int64_t C = cfg.C, F = cfg.F, P = 3LL * cfg.patch * cfg.patch, side = cfg.image / cfg.patch;
  st.add("vision_model.embeddings.patch_embedding.weight", {C, P}, Mt);
  st.add("vision_model.embeddings.patch_embedding.bias", {C}, S);
  st.add("vision_model.embeddings.position_embedding.weight", {side * side, C}, S);
  for (int b = 0; b < cfg.depth; b++) {
    const std::string pre = "vision_model.encoder.layers." + std::to_string(b) + ".";
    for (const char* n : {"layer_norm1", "layer_norm2"}) {
      st.add(pre + n + ".weight", {C}, S);
      st.add(pre + n + ".bias", {C}, S);
    }
    for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      st.add(pre + "self_attn." + n + ".weight", {C, C}, Mt);
      st.add(pre + "self_attn." + n + ".bias", {C}, S);
    }
    st.add(pre + "mlp.fc1.weight", {F, C}, Mt);
    st.add(pre + "mlp.fc1.bias", {F}, S);
    st.add(pre + "mlp.fc2.weight", {C, F}, Mt);
    st.add(pre + "mlp.fc2.bias", {C}, S);
  }
  st.add("vision_model.post_layernorm.weight", {C}, S);
  st.add("vision_model.post_layernorm.bias", {C}, S);
  st.add("connector.modality_projection.proj.weight", {cfg.Cout, C * cfg.scale * cfg.scale}, Mt);
  const Status as = st.end_segment(error);
  if (as != Status::Ok) return as;
  *out = std::move(v);
  return Status::Ok;
}

Status SiglipEncoder::set_trainable(bool on, std::string* error) { return store_->set_trainable(0, on, error); }

namespace {
// One block's activations: slices of the stacked training buffers, or (inference) one shared
// set where x_in, xmid and x_out alias one buffer and the residual adds run in place.
struct SiglipBlock {
  float *x_in, *x_out, *ln1, *mean1, *rstd1, *q, *k, *v, *att, *lse, *xmid, *ln2, *mean2, *rstd2, *g, *h;
};
}  // namespace

Status SiglipEncoder::encode(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, bool train, std::string* error) {
  const SiglipConfig& c = cfg_;
  Backend& be = *be_;
  const int side = c.image / c.patch, s = c.scale;
  const int64_t S = (int64_t)side * side;
  for (int i = 0; i < n_img; i++) {
    if (grids[3 * i] != 1 || grids[3 * i + 1] != side || grids[3 * i + 2] != side) {
      *error = "tile " + std::to_string(i) + " has grid (" + std::to_string(grids[3 * i]) + ", " + std::to_string(grids[3 * i + 1]) + ", " + std::to_string(grids[3 * i + 2]) + ") but every tile must be (1, " +
               std::to_string(side) + ", " + std::to_string(side) + "): image_size / patch_size patches a side";
      return Status::InvalidArgument;
    }
  }
  if (N != S * n_img) {
    *error = "the grids describe " + std::to_string(S * n_img) + " patches but " + std::to_string(N) + " were given";
    return Status::InvalidArgument;
  }
  if (train && store_->trainable_size() == 0) {
    *error = "the vision encoder is frozen: make it trainable (vision.train) before a training forward";
    return Status::InvalidArgument;
  }
  const int64_t C = c.C, F = c.F, P = patch_values(), U = N / (s * s), D = train ? c.depth : 1;
  const int hd = c.C / c.NH;
  std::unique_ptr<SiglipActs> keep(new SiglipActs(&be));
  SiglipActs& a = *keep;
  a.N = N;
  a.n_img = n_img;
  // pixel shuffle as a gather: output row u = (tile, hq, wq) takes, for r2, r < s, patch
  // (hq*s + r2, wq*s + r) of its tile, in that order (transformers' view/permute sequence)
  std::vector<int32_t> ord((size_t)N);
  {
    const int q_side = side / s;
    int64_t dst = 0;
    for (int t = 0; t < n_img; t++)
      for (int hq = 0; hq < q_side; hq++)
        for (int wq = 0; wq < q_side; wq++)
          for (int r2 = 0; r2 < s; r2++)
            for (int r = 0; r < s; r++) ord[(size_t)dst++] = (int32_t)(t * S + (int64_t)(hq * s + r2) * side + wq * s + r);
  }
  bool ok = a.px.upload(pixels, N * P) && a.order.upload(ord.data(), N) && a.x.resize((train ? D + 1 : 1) * N * C);
  for (Buf<float>* t : {&a.ln1, &a.q, &a.k, &a.v, &a.att, &a.xmid, &a.ln2}) ok = ok && t->resize(D * N * C);
  for (Buf<float>* t : {&a.mean1, &a.rstd1, &a.mean2, &a.rstd2}) ok = ok && t->resize(D * N);
  ok = ok && a.lse.resize(D * N * c.NH) && a.g.resize(D * N * F) && a.h.resize(D * N * F) && a.lnf.resize(N * C) && a.meanf.resize(N) && a.rstdf.resize(N) && a.shuffled.resize(N * C);
  Buf<float> o(&be, N * C), feat(&be, U * c.Cout);
  if (!ok || o.size() != N * C || feat.size() != U * c.Cout) {
    *error = "out of memory for the vision encoder's activations (" + std::to_string(N) + " patches) on " + be.describe();
    return Status::OutOfMemory;
  }
  auto block = [&](int b) {
    const int64_t i = train ? b : 0, nc = N * C, nf = N * F;
    float* xin = a.x.data() + (train ? b * nc : 0);
    float* xout = a.x.data() + (train ? (b + 1) * nc : 0);
    return SiglipBlock{xin, xout, a.ln1.data() + i * nc, a.mean1.data() + i * N, a.rstd1.data() + i * N, a.q.data() + i * nc, a.k.data() + i * nc, a.v.data() + i * nc, a.att.data() + i * nc,
                       a.lse.data() + i * N * c.NH, train ? a.xmid.data() + i * nc : xin, a.ln2.data() + i * nc, a.mean2.data() + i * N, a.rstd2.data() + i * N, a.g.data() + i * nf, a.h.data() + i * nf};
  };
  float* x0 = a.x.data();
  be.matmul_forward(x0, a.px.data(), W("vision_model.embeddings.patch_embedding.weight"), f32("vision_model.embeddings.patch_embedding.bias"), N, (int)P, (int)C);
  const float* pos = f32("vision_model.embeddings.position_embedding.weight");
  for (int t = 0; t < n_img; t++) be.add(x0 + t * S * C, x0 + t * S * C, pos, S * C);
  a.cu.assign((size_t)n_img + 1, 0);
  for (int t = 0; t <= n_img; t++) a.cu[(size_t)t] = (int32_t)(t * S);
  for (int b = 0; b < c.depth; b++) {
    const std::string pre = "vision_model.encoder.layers." + std::to_string(b) + ".";
    const SiglipBlock k = block(b);
    auto lin = [&](float* dst, const float* src, const std::string& n, int in, int outc) { be.matmul_forward(dst, src, W(pre + n + ".weight"), f32(pre + n + ".bias"), N, in, outc); };
    be.layernorm_forward(k.ln1, k.mean1, k.rstd1, k.x_in, f32(pre + "layer_norm1.weight"), f32(pre + "layer_norm1.bias"), N, (int)C, c.eps);
    lin(k.q, k.ln1, "self_attn.q_proj", (int)C, (int)C);
    lin(k.k, k.ln1, "self_attn.k_proj", (int)C, (int)C);
    lin(k.v, k.ln1, "self_attn.v_proj", (int)C, (int)C);
    be.attention_segments(k.att, train ? k.lse : nullptr, k.q, k.k, k.v, a.cu.data(), n_img, c.NH, hd);
    lin(o.data(), k.att, "self_attn.out_proj", (int)C, (int)C);
    be.add(k.xmid, k.x_in, o.data(), N * C);
    be.layernorm_forward(k.ln2, k.mean2, k.rstd2, k.xmid, f32(pre + "layer_norm2.weight"), f32(pre + "layer_norm2.bias"), N, (int)C, c.eps);
    lin(k.g, k.ln2, "mlp.fc1", (int)C, (int)F);
    be.gelu_tanh_forward(k.h, k.g, N * F);
    lin(o.data(), k.h, "mlp.fc2", (int)F, (int)C);
    be.add(k.x_out, k.xmid, o.data(), N * C);
  }
  const float* xf = a.x.data() + (train ? (int64_t)c.depth * N * C : 0);
  be.layernorm_forward(a.lnf.data(), a.meanf.data(), a.rstdf.data(), xf, f32("vision_model.post_layernorm.weight"), f32("vision_model.post_layernorm.bias"), N, (int)C, c.eps);
  be.gather_rows(a.shuffled.data(), a.lnf.data(), a.order.data(), N, (int)C);
  be.matmul_forward(feat.data(), a.shuffled.data(), W("connector.modality_projection.proj.weight"), nullptr, U, (int)(C * s * s), c.Cout);
  be.download(out, feat.data(), sizeof(float) * (size_t)(U * c.Cout));
  const Status st = be.sync(error);
  if (st == Status::Ok && train) last_ = std::move(keep);
  return st;
}

// The forward in reverse. Gradients ACCUMULATE (+=) into the store's gradients.
Status SiglipEncoder::encode_backward(const float* dout, std::string* error) {
  if (!last_) {
    *error = "no training forward to go back through; encode with train = true first";
    return Status::InvalidState;
  }
  if (store_->trainable_size() == 0) {
    *error = "the vision encoder is frozen: make it trainable (vision.train) before a backward";
    return Status::InvalidArgument;
  }
  const SiglipConfig& c = cfg_;
  Backend& be = *be_;
  SiglipActs& a = *last_;
  const int64_t N = a.N, C = c.C, F = c.F, P = patch_values(), s2 = (int64_t)c.scale * c.scale, U = N / s2, S = N / a.n_img;
  const int hd = c.C / c.NH;
  Buf<float> dfeat(&be), dshuf(&be, N * C), dln(&be, N * C), dx(&be, N * C), dh(&be, N * F), dg(&be, N * F), datt(&be, N * C), dq(&be, N * C), dk(&be, N * C), dv(&be, N * C);
  if (!dfeat.upload(dout, U * c.Cout) || dshuf.size() != N * C || dv.size() != N * C || dg.size() != N * F) {
    *error = "out of memory for the vision encoder's gradients";
    return Status::OutOfMemory;
  }
  auto zero = [&](Buf<float>& t) { be.zero(t.data(), sizeof(float) * (size_t)t.size()); };
  auto G = [&](const std::string& n) { return store_->grad(p(n)); };
  be.matmul_backward(dshuf.data(), G("connector.modality_projection.proj.weight"), nullptr, dfeat.data(), a.shuffled.data(), W("connector.modality_projection.proj.weight"), U, (int)(C * s2), c.Cout);
  be.scatter_rows(dln.data(), a.order.data(), dshuf.data(), N, (int)C);  // the shuffle is a permutation
  be.layernorm_backward(dx.data(), G("vision_model.post_layernorm.weight"), G("vision_model.post_layernorm.bias"), dln.data(), a.x.data() + (int64_t)c.depth * N * C, f32("vision_model.post_layernorm.weight"),
                        a.meanf.data(), a.rstdf.data(), N, (int)C);
  const int64_t nc = N * C, nf = N * F;
  for (int b = c.depth - 1; b >= 0; b--) {
    const std::string pre = "vision_model.encoder.layers." + std::to_string(b) + ".";
    const float *x_in = a.x.data() + b * nc, *ln1 = a.ln1.data() + b * nc, *q = a.q.data() + b * nc, *k = a.k.data() + b * nc, *v = a.v.data() + b * nc, *att = a.att.data() + b * nc,
                *lse = a.lse.data() + b * N * c.NH, *xmid = a.xmid.data() + b * nc, *ln2 = a.ln2.data() + b * nc, *g = a.g.data() + b * nf, *h = a.h.data() + b * nf;
    auto lin_back = [&](float* dinp, const float* d, const float* inp, const std::string& n, int in, int outc) {
      be.matmul_backward(dinp, G(pre + n + ".weight"), G(pre + n + ".bias"), d, inp, W(pre + n + ".weight"), N, in, outc);
    };
    // x_out = xmid + fc2(gelu_tanh(fc1(ln2(xmid)))): dx is d x_out, and becomes d xmid
    zero(dh), zero(dg), zero(dln);
    lin_back(dh.data(), dx.data(), h, "mlp.fc2", (int)F, (int)C);
    be.gelu_tanh_backward(dg.data(), dh.data(), g, N * F);
    lin_back(dln.data(), dg.data(), ln2, "mlp.fc1", (int)C, (int)F);
    be.layernorm_backward(dx.data(), G(pre + "layer_norm2.weight"), G(pre + "layer_norm2.bias"), dln.data(), xmid, f32(pre + "layer_norm2.weight"), a.mean2.data() + b * N, a.rstd2.data() + b * N, N, (int)C);
    // xmid = x_in + out_proj(attention(q, k, v)), q/k/v = proj(ln1(x_in)): dx becomes d x_in
    zero(datt), zero(dq), zero(dk), zero(dv), zero(dln);
    lin_back(datt.data(), dx.data(), att, "self_attn.out_proj", (int)C, (int)C);
    be.attention_segments_backward(dq.data(), dk.data(), dv.data(), datt.data(), att, lse, q, k, v, a.cu.data(), a.n_img, c.NH, hd);
    lin_back(dln.data(), dq.data(), ln1, "self_attn.q_proj", (int)C, (int)C);
    lin_back(dln.data(), dk.data(), ln1, "self_attn.k_proj", (int)C, (int)C);
    lin_back(dln.data(), dv.data(), ln1, "self_attn.v_proj", (int)C, (int)C);
    be.layernorm_backward(dx.data(), G(pre + "layer_norm1.weight"), G(pre + "layer_norm1.bias"), dln.data(), x_in, f32(pre + "layer_norm1.weight"), a.mean1.data() + b * N, a.rstd1.data() + b * N, N, (int)C);
  }
  // x0 = patch_embedding(pixels) + position table (per tile)
  if (float* gpos = G("vision_model.embeddings.position_embedding.weight"))
    for (int t = 0; t < a.n_img; t++) be.axpy(gpos, dx.data() + t * S * C, 1.0f, S * C);
  be.matmul_backward(nullptr, G("vision_model.embeddings.patch_embedding.weight"), G("vision_model.embeddings.patch_embedding.bias"), dx.data(), a.px.data(), W("vision_model.embeddings.patch_embedding.weight"), N,
                     (int)P, (int)C);
  return be.sync(error);
}

}  // namespace vlatext
