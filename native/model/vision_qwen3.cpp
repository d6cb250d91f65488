#include "vision_qwen3.h"

#include <cmath>
#include <vector>

#include "../kernels/rope.h"

namespace vlatext {

Status Qwen3VisionEncoder::create(const Qwen3VisionConfig& cfg, const BackendOptions& bo, std::unique_ptr<Qwen3VisionEncoder>* out, std::string* error) {
  const int side = (int)std::lround(std::sqrt((double)cfg.npos));
  if (cfg.depth < 1 || cfg.C < 1 || cfg.F < 1 || cfg.NH < 1 || cfg.Cout < 1 || cfg.C % cfg.NH != 0 || (cfg.C / cfg.NH) % 4 != 0) {
    *error = "vision_config needs positive depth, hidden_size, intermediate_size, num_heads, out_hidden_size, and hidden_size / num_heads divisible by 4";
    return Status::InvalidArgument;
  }
  if (cfg.npos < 1 || side * side != cfg.npos) {
    *error = "vision_config.num_position_embeddings must be a square number, got " + std::to_string(cfg.npos);
    return Status::InvalidArgument;
  }
  for (int d : cfg.deepstack)
    if (d < 0 || d >= cfg.depth) {
      *error = "vision_config.deepstack_visual_indexes names block " + std::to_string(d) + " but depth is " + std::to_string(cfg.depth);
      return Status::InvalidArgument;
    }
  std::unique_ptr<Backend> be;
  const Status bs = create_backend(bo, &be, error);
  if (bs != Status::Ok) return bs;
  std::unique_ptr<Qwen3VisionEncoder> v(new Qwen3VisionEncoder(cfg, std::move(be)));
  v->store_ = std::make_unique<ParamStore>(v->be_.get());
  ParamStore& st = *v->store_;
  const DType Mt = cfg.dtype, S = DType::F32;
  const int64_t C = cfg.C, F = cfg.F, P = 3LL * cfg.temporal * cfg.patch * cfg.patch, M = C * cfg.merge * cfg.merge;
  st.add("visual.patch_embed.proj.weight", {C, P}, Mt);
  st.add("visual.patch_embed.proj.bias", {C}, S);
  st.add("visual.pos_embed.weight", {cfg.npos, C}, S);
  for (int b = 0; b < cfg.depth; b++) {
    const std::string pre = "visual.blocks." + std::to_string(b) + ".";
    for (const char* n : {"norm1", "norm2"}) st.add(pre + n + ".weight", {C}, S), st.add(pre + n + ".bias", {C}, S);
    st.add(pre + "attn.qkv.weight", {3 * C, C}, Mt);
    st.add(pre + "attn.qkv.bias", {3 * C}, S);
    st.add(pre + "attn.proj.weight", {C, C}, Mt);
    st.add(pre + "attn.proj.bias", {C}, S);
    st.add(pre + "mlp.linear_fc1.weight", {F, C}, Mt);
    st.add(pre + "mlp.linear_fc1.bias", {F}, S);
    st.add(pre + "mlp.linear_fc2.weight", {C, F}, Mt);
    st.add(pre + "mlp.linear_fc2.bias", {C}, S);
  }
  auto merger = [&](const std::string& pre, int64_t norm) {
    st.add(pre + "norm.weight", {norm}, S);
    st.add(pre + "norm.bias", {norm}, S);
    st.add(pre + "linear_fc1.weight", {M, M}, Mt);
    st.add(pre + "linear_fc1.bias", {M}, S);
    st.add(pre + "linear_fc2.weight", {cfg.Cout, M}, Mt);
    st.add(pre + "linear_fc2.bias", {cfg.Cout}, S);
  };
  merger("visual.merger.", C);
  for (size_t j = 0; j < cfg.deepstack.size(); j++) merger("visual.deepstack_merger_list." + std::to_string(j) + ".", M);
  const Status as = st.end_segment(error);
  if (as != Status::Ok) return as;
  *out = std::move(v);
  return Status::Ok;
}

Status Qwen3VisionEncoder::set_trainable(bool on, std::string* error) {
  if (on) {
    *error = "training Qwen3-VL's vision tower is not supported yet; train the language model with the tower frozen (vision.train: false)";
    return Status::InvalidArgument;
  }
  return store_->set_trainable(0, false, error);
}

Status Qwen3VisionEncoder::encode_backward(const float*, std::string* error) {
  *error = "Qwen3-VL's vision tower is inference only (it cannot be trained yet)";
  return Status::InvalidArgument;
}

namespace {
// transformers' _interpolation_axis_taps_weights (bilinear, align_corners): the two taps of
// target index i on an axis of `size` into a `side` table, in float32 as torch computes them.
void axis_taps(int i, int size, int side, int tap[2], float w[2]) {
  const float src = (float)i * (float)(side - 1) / (float)(size - 1 > 1 ? size - 1 : 1);
  const float fl = std::floor(src);
  for (int k = 0; k < 2; k++) {
    const int raw = (int)fl + k;
    tap[k] = raw < 0 ? 0 : raw > side - 1 ? side - 1 : raw;
    const float d = std::fabs(src - fl - (float)k);
    w[k] = 1.0f - d > 0.0f ? 1.0f - d : 0.0f;
  }
}
}  // namespace

Status Qwen3VisionEncoder::encode(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, bool train, std::string* error) {
  const Qwen3VisionConfig& c = cfg_;
  Backend& be = *be_;
  if (train) {
    *error = "Qwen3-VL's vision tower is inference only (it cannot be trained yet)";
    return Status::InvalidArgument;
  }
  const int m = c.merge, m2 = m * m;
  int64_t total = 0;
  for (int i = 0; i < n_img; i++) {
    const int t = grids[3 * i], h = grids[3 * i + 1], w = grids[3 * i + 2];
    if (t < 1 || h < 1 || w < 1 || h % m || w % m) {
      *error = "image " + std::to_string(i) + " grid (" + std::to_string(t) + ", " + std::to_string(h) + ", " + std::to_string(w) + ") is not a multiple of the merge size";
      return Status::InvalidArgument;
    }
    total += (int64_t)t * h * w;
  }
  if (total != N) {
    *error = "the grids describe " + std::to_string(total) + " patches but " + std::to_string(N) + " were given";
    return Status::InvalidArgument;
  }
  const int64_t C = c.C, F = c.F, P = patch_values(), U = N / m2, M = C * m2;
  const int hd = c.C / c.NH, side = (int)std::lround(std::sqrt((double)c.npos)), K = (int)c.deepstack.size();
  // host: rotary positions (2, N), the resampled position embeddings (N, C), attention segments
  std::vector<int32_t> pos((size_t)(2 * N));
  std::vector<float> table((size_t)(c.npos * C)), pe((size_t)(N * C), 0.0f);
  be.download(table.data(), f32("visual.pos_embed.weight"), sizeof(float) * table.size());
  std::vector<int32_t> cu(1, 0);
  {
    int64_t r = 0;
    for (int i = 0; i < n_img; i++) {
      const int t = grids[3 * i], h = grids[3 * i + 1], w = grids[3 * i + 2];
      for (int tt = 0; tt < t; tt++) {
        cu.push_back(cu.back() + h * w);
        for (int bh = 0; bh < h / m; bh++)
          for (int bw = 0; bw < w / m; bw++)
            for (int mh = 0; mh < m; mh++)
              for (int mw = 0; mw < m; mw++, r++) {
                const int row = bh * m + mh, col = bw * m + mw;
                pos[(size_t)r] = row;
                pos[(size_t)(N + r)] = col;
                int th[2], tw[2];
                float wh[2], ww[2];
                axis_taps(row, h, side, th, wh);
                axis_taps(col, w, side, tw, ww);
                float* dst = pe.data() + r * C;
                for (int a = 0; a < 2; a++)
                  for (int b = 0; b < 2; b++) {
                    const float wt = wh[a] * ww[b];
                    const float* src = table.data() + (int64_t)(th[a] * side + tw[b]) * C;
                    for (int64_t ch = 0; ch < C; ch++) dst[ch] += src[ch] * wt;
                  }
              }
      }
    }
  }
  Buf<float> px(&be), x(&be, N * C), posemb(&be), ln(&be, N * C), mean(&be, N), rstd(&be, N), q(&be, N * C), k(&be, N * C), v(&be, N * C), att(&be, N * C), o(&be, N * C), g(&be, N * F), hbuf(&be, N * F),
      mln(&be, N * C), mmean(&be, N), mrstd(&be, N), hid(&be, U * M), act(&be, U * M), res(&be, U * c.Cout);
  Buf<int32_t> dpos(&be);
  const bool ok = px.upload(pixels, N * P) && posemb.upload(pe.data(), N * C) && dpos.upload(pos.data(), 2 * N) && x.size() == N * C && hbuf.size() == N * F && hid.size() == U * M && res.size() == U * c.Cout &&
                  att.size() == N * C && g.size() == N * F && mln.size() == N * C;
  if (!ok) {
    *error = "out of memory for the vision tower's activations (" + std::to_string(N) + " patches) on " + be.describe();
    return Status::OutOfMemory;
  }
  // the merger (pre: LayerNorm per patch; DeepStack: per merged row) into block `slot` of out
  auto merge_out = [&](const std::string& pre, bool post_shuffle, int slot) {
    if (post_shuffle) be.layernorm_forward(mln.data(), mmean.data(), mrstd.data(), x.data(), f32(pre + "norm.weight"), f32(pre + "norm.bias"), U, (int)M, 1e-6f);
    else be.layernorm_forward(mln.data(), mmean.data(), mrstd.data(), x.data(), f32(pre + "norm.weight"), f32(pre + "norm.bias"), N, (int)C, 1e-6f);
    be.matmul_forward(hid.data(), mln.data(), W(pre + "linear_fc1.weight"), f32(pre + "linear_fc1.bias"), U, (int)M, (int)M);
    be.gelu_forward(act.data(), hid.data(), U * M);
    be.matmul_forward(res.data(), act.data(), W(pre + "linear_fc2.weight"), f32(pre + "linear_fc2.bias"), U, (int)M, c.Cout);
    be.download(out + (int64_t)slot * U * c.Cout, res.data(), sizeof(float) * (size_t)(U * c.Cout));
  };
  be.matmul_forward(x.data(), px.data(), W("visual.patch_embed.proj.weight"), f32("visual.patch_embed.proj.bias"), N, (int)P, (int)C);
  be.add(x.data(), x.data(), posemb.data(), N * C);
  const int sec[2] = {hd / 4, hd / 4};
  const RopeSpec rope{hd, c.theta, 2, sec, true};
  for (int b = 0; b < c.depth; b++) {
    const std::string pre = "visual.blocks." + std::to_string(b) + ".";
    be.layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), f32(pre + "norm1.weight"), f32(pre + "norm1.bias"), N, (int)C, 1e-6f);
    const ConstTensorRef qkv = W(pre + "attn.qkv.weight");
    const float* qkv_b = f32(pre + "attn.qkv.bias");
    be.matmul_forward(q.data(), ln.data(), qkv, qkv_b, N, (int)C, (int)C);
    be.matmul_forward(k.data(), ln.data(), qkv.at(C * C), qkv_b + C, N, (int)C, (int)C);
    be.matmul_forward(v.data(), ln.data(), qkv.at(2 * C * C), qkv_b + 2 * C, N, (int)C, (int)C);
    be.rope_forward(q.data(), dpos.data(), rope, N, c.NH);
    be.rope_forward(k.data(), dpos.data(), rope, N, c.NH);
    be.attention_segments(att.data(), nullptr, q.data(), k.data(), v.data(), cu.data(), (int)cu.size() - 1, c.NH, hd);
    be.matmul_forward(o.data(), att.data(), W(pre + "attn.proj.weight"), f32(pre + "attn.proj.bias"), N, (int)C, (int)C);
    be.add(x.data(), x.data(), o.data(), N * C);
    be.layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), f32(pre + "norm2.weight"), f32(pre + "norm2.bias"), N, (int)C, 1e-6f);
    be.matmul_forward(g.data(), ln.data(), W(pre + "mlp.linear_fc1.weight"), f32(pre + "mlp.linear_fc1.bias"), N, (int)C, (int)F);
    be.gelu_tanh_forward(hbuf.data(), g.data(), N * F);
    be.matmul_forward(o.data(), hbuf.data(), W(pre + "mlp.linear_fc2.weight"), f32(pre + "mlp.linear_fc2.bias"), N, (int)F, (int)C);
    be.add(x.data(), x.data(), o.data(), N * C);
    for (int j = 0; j < K; j++)
      if (c.deepstack[(size_t)j] == b) merge_out("visual.deepstack_merger_list." + std::to_string(j) + ".", true, 1 + j);
  }
  merge_out("visual.merger.", false, 0);
  return be.sync(error);
}

}  // namespace vlatext
