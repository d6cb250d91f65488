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

Status SiglipEncoder::set_trainable(bool on, std::string* error) {
  if (on) {
    *error = "training the SigLIP vision encoder is not supported yet; train the language model with the encoder frozen (vision.train: false)";
    return Status::InvalidArgument;
  }
  return store_->set_trainable(0, false, error);
}

Status SiglipEncoder::encode_backward(const float*, std::string* error) {
  *error = "the SigLIP vision encoder is inference only (it cannot be trained yet)";
  return Status::InvalidArgument;
}

Status SiglipEncoder::encode(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, bool train, std::string* error) {
  const SiglipConfig& c = cfg_;
  Backend& be = *be_;
  if (train) {
    *error = "the SigLIP vision encoder is inference only (it cannot be trained yet)";
    return Status::InvalidArgument;
  }
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
  const int64_t C = c.C, F = c.F, P = patch_values(), U = N / (s * s);
  const int hd = c.C / c.NH;
  Buf<float> px(&be), x(&be, N * C), ln(&be, N * C), mean(&be, N), rstd(&be, N), q(&be, N * C), k(&be, N * C), v(&be, N * C), att(&be, N * C), o(&be, N * C), h(&be, N * F), g(&be, N * F),
      shuffled(&be, N * C), feat(&be, U * c.Cout);
  Buf<int32_t> order(&be);
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
  const bool ok = px.upload(pixels, N * P) && order.upload(ord.data(), N) && x.size() == N * C && h.size() == N * F && g.size() == N * F && shuffled.size() == N * C && feat.size() == U * c.Cout &&
                  att.size() == N * C && o.size() == N * C;
  if (!ok) {
    *error = "out of memory for the vision encoder's activations (" + std::to_string(N) + " patches) on " + be.describe();
    return Status::OutOfMemory;
  }
  be.matmul_forward(x.data(), px.data(), W("vision_model.embeddings.patch_embedding.weight"), f32("vision_model.embeddings.patch_embedding.bias"), N, (int)P, (int)C);
  const float* pos = f32("vision_model.embeddings.position_embedding.weight");
  for (int t = 0; t < n_img; t++) be.add(x.data() + t * S * C, x.data() + t * S * C, pos, S * C);
  std::vector<int32_t> cu((size_t)n_img + 1);
  for (int t = 0; t <= n_img; t++) cu[(size_t)t] = (int32_t)(t * S);
  for (int b = 0; b < c.depth; b++) {
    const std::string pre = "vision_model.encoder.layers." + std::to_string(b) + ".";
    auto lin = [&](float* dst, const float* src, const std::string& n, int in, int outc) { be.matmul_forward(dst, src, W(pre + n + ".weight"), f32(pre + n + ".bias"), N, in, outc); };
    be.layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), f32(pre + "layer_norm1.weight"), f32(pre + "layer_norm1.bias"), N, (int)C, c.eps);
    lin(q.data(), ln.data(), "self_attn.q_proj", (int)C, (int)C);
    lin(k.data(), ln.data(), "self_attn.k_proj", (int)C, (int)C);
    lin(v.data(), ln.data(), "self_attn.v_proj", (int)C, (int)C);
    be.attention_segments(att.data(), nullptr, q.data(), k.data(), v.data(), cu.data(), n_img, c.NH, hd);
    lin(o.data(), att.data(), "self_attn.out_proj", (int)C, (int)C);
    be.add(x.data(), x.data(), o.data(), N * C);
    be.layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), f32(pre + "layer_norm2.weight"), f32(pre + "layer_norm2.bias"), N, (int)C, c.eps);
    lin(g.data(), ln.data(), "mlp.fc1", (int)C, (int)F);
    be.gelu_tanh_forward(h.data(), g.data(), N * F);
    lin(o.data(), h.data(), "mlp.fc2", (int)F, (int)C);
    be.add(x.data(), x.data(), o.data(), N * C);
  }
  be.layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), f32("vision_model.post_layernorm.weight"), f32("vision_model.post_layernorm.bias"), N, (int)C, c.eps);
  be.gather_rows(shuffled.data(), ln.data(), order.data(), N, (int)C);
  be.matmul_forward(feat.data(), shuffled.data(), W("connector.modality_projection.proj.weight"), nullptr, U, (int)(C * s * s), c.Cout);
  be.download(out, feat.data(), sizeof(float) * (size_t)(U * c.Cout));
  return be.sync(error);
}

}  // namespace vlatext
