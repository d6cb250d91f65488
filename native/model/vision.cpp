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
  *out = std::move(v);
  return Status::Ok;
}

const TensorInfo* VisionTower::find_param(const std::string& name) const {
  for (auto& t : params_)
    if (t.name == name) return &t;
  return nullptr;
}

float* VisionTower::p(const std::string& name) { return mem_.data() + find_param(name)->offset; }

Status VisionTower::forward(const float* pixels, int64_t N, const int32_t* grids, int n_img, float* out, std::string* error) {
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
  const int64_t C = c.C, P = 3LL * c.temporal * c.patch * c.patch;
  const int hd = c.C / c.NH;
  // patch embedding, then regroup merged units window by window
  std::vector<float> emb((size_t)(N * C));
  matmul_forward(*pool_, emb.data(), pixels, p("visual.patch_embed.proj.weight"), nullptr, N, (int)P, (int)C);
  std::vector<int32_t> widx, cu_win;
  vision_window_index(grids, n_img, c.merge, c.window / c.patch / c.merge, &widx, &cu_win);
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
  std::vector<float> x((size_t)(N * C));
  std::vector<int32_t> pos((size_t)(2 * N));
  for (size_t u = 0; u < widx.size(); u++)
    for (int k = 0; k < m2; k++) {
      const int64_t dst = (int64_t)u * m2 + k, src = (int64_t)widx[u] * m2 + k;
      std::memcpy(x.data() + dst * C, emb.data() + src * C, sizeof(float) * C);
      pos[(size_t)dst] = pos_raw[(size_t)src];
      pos[(size_t)(N + dst)] = pos_raw[(size_t)(N + src)];
    }
  std::vector<int32_t> cu_full(1, 0);
  for (int i = 0; i < n_img; i++)
    for (int tt = 0; tt < grids[3 * i]; tt++) cu_full.push_back(cu_full.back() + grids[3 * i + 1] * grids[3 * i + 2]);
  const int sec[2] = {hd / 4, hd / 4};
  const RopeSpec rope{hd, c.theta, 2, sec, true};
  std::vector<float> ln((size_t)(N * C)), rstd((size_t)N), qkv((size_t)(N * 3 * C)), q((size_t)(N * C)), k((size_t)(N * C)), v((size_t)(N * C)), att((size_t)(N * C)),
      o((size_t)(N * C)), g((size_t)(N * c.F)), u((size_t)(N * c.F)), hbuf((size_t)(N * c.F));
  for (int b = 0; b < c.depth; b++) {
    const std::string bp = "visual.blocks." + std::to_string(b) + ".";
    bool full = false;
    for (int f : c.fullatt) full = full || f == b;
    const std::vector<int32_t>& cu = full ? cu_full : cu_win;
    rmsnorm_forward(*pool_, ln.data(), rstd.data(), x.data(), p(bp + "norm1.weight"), N, (int)C, c.eps);
    matmul_forward(*pool_, qkv.data(), ln.data(), p(bp + "attn.qkv.weight"), p(bp + "attn.qkv.bias"), N, (int)C, (int)(3 * C));
    for (int64_t n = 0; n < N; n++) {  // (N, 3, NH, hd) -> q, k, v (N, NH, hd)
      std::memcpy(q.data() + n * C, qkv.data() + n * 3 * C, sizeof(float) * C);
      std::memcpy(k.data() + n * C, qkv.data() + n * 3 * C + C, sizeof(float) * C);
      std::memcpy(v.data() + n * C, qkv.data() + n * 3 * C + 2 * C, sizeof(float) * C);
    }
    rope_forward(*pool_, q.data(), pos.data(), rope, N, c.NH);
    rope_forward(*pool_, k.data(), pos.data(), rope, N, c.NH);
    attention_segments(*pool_, att.data(), q.data(), k.data(), v.data(), cu.data(), (int)cu.size() - 1, c.NH, hd);
    matmul_forward(*pool_, o.data(), att.data(), p(bp + "attn.proj.weight"), p(bp + "attn.proj.bias"), N, (int)C, (int)C);
    for (int64_t i = 0; i < N * C; i++) x[(size_t)i] += o[(size_t)i];
    rmsnorm_forward(*pool_, ln.data(), rstd.data(), x.data(), p(bp + "norm2.weight"), N, (int)C, c.eps);
    matmul_forward(*pool_, g.data(), ln.data(), p(bp + "mlp.gate_proj.weight"), p(bp + "mlp.gate_proj.bias"), N, (int)C, c.F);
    matmul_forward(*pool_, u.data(), ln.data(), p(bp + "mlp.up_proj.weight"), p(bp + "mlp.up_proj.bias"), N, (int)C, c.F);
    swiglu_forward(*pool_, hbuf.data(), g.data(), u.data(), N * c.F);
    matmul_forward(*pool_, o.data(), hbuf.data(), p(bp + "mlp.down_proj.weight"), p(bp + "mlp.down_proj.bias"), N, c.F, (int)C);
    for (int64_t i = 0; i < N * C; i++) x[(size_t)i] += o[(size_t)i];
  }
  // merger: RMSNorm per patch, then each group of merge^2 consecutive patches is one row
  const int64_t U = N / m2, M = C * m2;
  rmsnorm_forward(*pool_, ln.data(), rstd.data(), x.data(), p("visual.merger.ln_q.weight"), N, (int)C, c.eps);
  std::vector<float> hid((size_t)(U * M)), merged((size_t)(U * c.Cout));
  matmul_forward(*pool_, hid.data(), ln.data(), p("visual.merger.mlp.0.weight"), p("visual.merger.mlp.0.bias"), U, (int)M, (int)M);
  for (auto& e : hid) e = 0.5f * e * (1.0f + std::erf(e / std::sqrt(2.0f)));  // GELU (erf)
  matmul_forward(*pool_, merged.data(), hid.data(), p("visual.merger.mlp.2.weight"), p("visual.merger.mlp.2.bias"), U, (int)M, c.Cout);
  // undo the window order
  for (size_t uu = 0; uu < widx.size(); uu++) std::memcpy(out + (int64_t)widx[uu] * c.Cout, merged.data() + (int64_t)uu * c.Cout, sizeof(float) * c.Cout);
  return Status::Ok;
}

}  // namespace vlatext
