// Whole models on the CUDA backend against the same models on the CPU backend, same random
// weights: the decoder's forward (loss, every logit) in f32 and with bf16 weights, a full
// fine-tuning backward (every gradient), LoRA steps (loss, adapter gradients, the optimizer
// step with clipping), cached decoding (logits at each step), constrained greedy generation
// (the same tokens), and the vision tower's forward and backward.
// Tolerances: max |gpu - cpu| <= atol * max|cpu| + rtol |cpu| per tensor, atol 1e-4, rtol 1e-3
// in f32 (sums of products in another order through a few layers); 3e-2 with bf16 weights (the
// GPU rounds activations to bf16 before every large bf16 product, the CPU's paths may not).
#include <algorithm>
#include <cmath>
#include <memory>

#include "../decode/automaton.h"
#include "../decode/generate.h"
#include "../model/decoder.h"
#include "../model/vision.h"
#include "cuda_test_util.h"

namespace vlatext {
namespace cudatest {

namespace {

void compare_scaled(Report& r, const std::string& name, const std::vector<float>& a, const std::vector<float>& b, double atol, double rtol) {
  double mx = 0;
  for (float v : b) mx = std::max(mx, (double)std::fabs(v));
  r.compare(name, a, b, atol * std::max(mx, 1e-30), rtol);
}

void fill_random(ParamStore& st, std::mt19937& rng) {
  for (size_t i = 0; i < st.tensors().size(); i++) {
    const ParamTensor& t = st.tensors()[i];
    const bool norm = t.name.find("norm") != std::string::npos || t.name.find("ln_q") != std::string::npos;
    auto v = randn(rng, (size_t)t.size, norm ? 0.1f : 0.08f);
    if (norm)
      for (auto& x : v) x += 1.0f;
    st.set((int)i, v.data());
  }
}

DecoderConfig tiny(DType dt) {
  DecoderConfig c;
  c.arch = Arch::Qwen2;
  c.V = 300, c.C = 64, c.L = 2, c.NH = 4, c.KV = 2, c.hd = 16, c.F = 128;
  c.theta = 1000000.0f;
  c.rope_sections = {2, 3, 3};
  c.dtype = dt;
  return c;
}

void decoder_checks(Report& r, uint32_t seed, const BackendOptions& gpu_opt, DType dt) {
  const std::string tag = std::string("cuda decoder ") + dtype_name(dt);
  const double atol = dt == DType::BF16 ? 3e-2 : 1e-4, rtol = dt == DType::BF16 ? 3e-2 : 1e-3;
  std::unique_ptr<Decoder> m[2];
  std::string err;
  BackendOptions opts[2] = {BackendOptions{}, gpu_opt};
  for (int b = 0; b < 2; b++) {
    if (Decoder::create(tiny(dt), opts[b], &m[b], &err) != Status::Ok) return r.line(false, tag + " create", err);
    std::mt19937 rng(seed);
    fill_random(m[b]->params(), rng);
  }
  const DecoderConfig c = tiny(dt);
  std::mt19937 rng(seed + 1);
  const int B = 2, T = 12, N = B * T;
  std::vector<int32_t> tokens(N), targets(N);
  std::uniform_int_distribution<int> tok(0, c.V - 1);
  for (int i = 0; i < N; i++) tokens[i] = tok(rng), targets[i] = i % T < 4 ? -100 : tok(rng);
  Batch batch;
  batch.B = B, batch.T = T, batch.tokens = tokens.data(), batch.targets = targets.data();
  // forward: loss and every logit
  ForwardResult fr[2];
  std::vector<float> logits[2];
  for (int b = 0; b < 2; b++) {
    logits[b].resize((size_t)N * c.V);
    if (m[b]->forward(batch, &fr[b], logits[b].data(), &err) != Status::Ok) return r.line(false, tag + " forward", err);
  }
  r.compare_scalar(tag + " forward loss", fr[1].loss_sum, fr[0].loss_sum, dt == DType::BF16 ? 1e-2 : 1e-5);
  compare_scaled(r, tag + " forward logits", logits[1], logits[0], atol, rtol);
  // full fine-tuning: every gradient (f32 weights only)
  if (dt == DType::F32) {
    for (int b = 0; b < 2; b++) {
      if (m[b]->set_train_base(true, &err) != Status::Ok || m[b]->forward_backward(batch, -1.0f, &fr[b], nullptr, &err) != Status::Ok) return r.line(false, tag + " full backward", err);
    }
    r.compare_scalar(tag + " full loss", fr[1].loss_sum, fr[0].loss_sum, 1e-5);
    ParamStore &s0 = m[0]->params(), &s1 = m[1]->params();
    int bad = 0;
    for (size_t i = 0; i < s0.tensors().size(); i++) {
      std::vector<float> g0((size_t)s0.tensors()[i].size), g1(g0.size());
      s0.get_grad((int)i, g0.data());
      s1.get_grad((int)i, g1.data());
      Report sub;
      compare_scaled(sub, s0.tensors()[i].name, g1, g0, 1e-4, 1e-3);
      if (sub.failures) bad++, r.line(false, tag + " gradient " + s0.tensors()[i].name, "");
    }
    r.line(bad == 0, tag + " full fine-tuning: every gradient", std::to_string(s0.tensors().size()) + " tensors (atol 1e-4 max|g|, rtol 1e-3)");
    for (int b = 0; b < 2; b++) m[b]->set_train_base(false, &err), m[b]->zero_grad();
  }
  // LoRA: two steps with the optimizer between them (the second gives A its gradient)
  LoraConfig lc;
  lc.rank = 4, lc.alpha = 8, lc.seed = 7;
  lc.targets.fill(true);
  for (int b = 0; b < 2; b++)
    if (m[b]->enable_lora(lc, &err) != Status::Ok) return r.line(false, tag + " enable_lora", err);
  const AdamWConfig opt{1e-2f, 0.9f, 0.999f, 1e-8f, 0.0f};
  for (int step = 0; step < 2; step++) {
    double norms[2];
    for (int b = 0; b < 2; b++) {
      if (m[b]->forward_backward(batch, -1.0f, &fr[b], nullptr, &err) != Status::Ok) return r.line(false, tag + " lora backward", err);
    }
    const std::string st = tag + " lora step " + std::to_string(step);
    r.compare_scalar(st + " loss", fr[1].loss_sum, fr[0].loss_sum, dt == DType::BF16 ? 1e-2 : 1e-5);
    std::vector<float> g[2];
    for (int b = 0; b < 2; b++) {
      ParamStore& s = m[b]->params();
      for (size_t i = 0; i < s.tensors().size(); i++) {
        if (s.tensors()[i].segment != 1) continue;
        std::vector<float> gi((size_t)s.tensors()[i].size);
        s.get_grad((int)i, gi.data());
        g[b].insert(g[b].end(), gi.begin(), gi.end());
      }
      ParamStore* stores[1] = {&s};
      norms[b] = optimizer_step(stores, 1, opt, 0.5f);
    }
    compare_scaled(r, st + " adapter gradients", g[1], g[0], dt == DType::BF16 ? 3e-2 : 1e-4, dt == DType::BF16 ? 3e-2 : 1e-3);
    r.compare_scalar(st + " global norm", norms[1], norms[0], dt == DType::BF16 ? 3e-2 : 1e-4);
    // AdamW's first step moves every weight by about lr whatever its gradient's size, so where a
    // gradient is at rounding level the two sides step apart by up to 2 lr: the next step starts
    // from the CPU's adapters on both sides, so it compares the kernels, not that amplification
    ParamStore &s0 = m[0]->params(), &s1 = m[1]->params();
    for (size_t i = 0; i < s0.tensors().size(); i++) {
      if (s0.tensors()[i].segment != 1) continue;
      std::vector<float> w((size_t)s0.tensors()[i].size);
      s0.get((int)i, w.data());
      s1.set((int)i, w.data());
    }
  }
  // cached decoding: a prompt, then one token at a time
  KvCache cache[2];
  std::vector<float> lg[2];
  bool ok = true;
  double worst = 0;
  for (int b = 0; b < 2; b++) {
    if (m[b]->init_cache(&cache[b], 32, &err) != Status::Ok) return r.line(false, tag + " cache", err);
  }
  for (int step = 0; step < 6; step++) {
    const int n = step == 0 ? 10 : 1;
    for (int b = 0; b < 2; b++) {
      lg[b].assign((size_t)c.V, 0.0f);
      if (m[b]->infer(&cache[b], tokens.data() + (step == 0 ? 0 : 9 + step), n, nullptr, 0, nullptr, nullptr, lg[b].data(), &err) != Status::Ok) return r.line(false, tag + " infer", err);
    }
    Report sub;
    compare_scaled(sub, "step", lg[1], lg[0], atol, rtol);
    ok = ok && sub.failures == 0;
    for (int v = 0; v < c.V; v++) worst = std::max(worst, (double)std::fabs(lg[1][v] - lg[0][v]));
  }
  r.line(ok, tag + " cached decoding logits", "prompt of 10, then 5 single tokens; max_abs_err " + std::to_string(worst));
  // constrained greedy generation over a digit vocabulary (tokens 0..9 digits, 10 a space, 11 eos)
  if (dt == DType::F32) {
    std::vector<int32_t> ids;
    std::vector<std::string> texts;
    for (int d = 0; d < 10; d++) ids.push_back(d), texts.push_back(std::string(1, (char)('0' + d)));
    ids.push_back(10), texts.push_back(" ");
    GrammarSpec gs;
    gs.count = 14, gs.dims = 7, gs.bins = 255;
    GenResult res[2];
    for (int b = 0; b < 2; b++) {
      TokenAutomaton automaton(gs, ids, texts, 11);
      GenOptions go;
      std::vector<int32_t> prompt(tokens.begin(), tokens.begin() + 8);
      if (generate_constrained(*m[b], prompt, automaton, go, &res[b], &err) != Status::Ok) return r.line(false, tag + " generate", err);
    }
    size_t same = 0;
    while (same < res[0].tokens.size() && same < res[1].tokens.size() && res[0].tokens[same] == res[1].tokens[same]) same++;
    r.line(res[0].tokens == res[1].tokens && res[1].finished, tag + " constrained greedy generation: the same tokens",
           std::to_string(res[1].tokens.size()) + " tokens, first " + std::to_string(same) + " equal, " + std::to_string(res[1].model_calls) + " model calls");
  }
}

void vision_checks(Report& r, uint32_t seed, const BackendOptions& gpu_opt) {
  VisionConfig vc;
  vc.depth = 2, vc.C = 32, vc.F = 64, vc.NH = 2, vc.Cout = 48, vc.fullatt = {1};
  std::unique_ptr<VisionTower> t[2];
  std::string err;
  BackendOptions opts[2] = {BackendOptions{}, gpu_opt};
  for (int b = 0; b < 2; b++) {
    if (VisionTower::create(vc, opts[b], &t[b], &err) != Status::Ok) return r.line(false, "cuda vision create", err);
    std::mt19937 rng(seed + 5);
    fill_random(t[b]->params(), rng);
    t[b]->set_trainable(true, &err);
  }
  const std::vector<int32_t> grids = {1, 8, 12, 1, 4, 4};  // two images: 96 + 16 patches
  const int64_t N = 8 * 12 + 4 * 4, P = 3 * vc.temporal * vc.patch * vc.patch, U = N / (vc.merge * vc.merge);
  std::mt19937 rng(seed + 6);
  auto pixels = randn(rng, (size_t)(N * P)), dout = randn(rng, (size_t)(U * vc.Cout));
  std::vector<float> out[2], grads[2];
  for (int b = 0; b < 2; b++) {
    VisionActs acts(&t[b]->backend());
    out[b].resize((size_t)(U * vc.Cout));
    if (t[b]->forward(pixels.data(), N, grids.data(), 2, out[b].data(), &err, &acts) != Status::Ok || t[b]->backward(dout.data(), acts, &err) != Status::Ok) return r.line(false, "cuda vision", err);
    ParamStore& s = t[b]->params();
    for (size_t i = 0; i < s.tensors().size(); i++) {
      std::vector<float> g((size_t)s.tensors()[i].size);
      s.get_grad((int)i, g.data());
      grads[b].insert(grads[b].end(), g.begin(), g.end());
    }
  }
  compare_scaled(r, "cuda vision forward", out[1], out[0], 1e-4, 1e-3);
  compare_scaled(r, "cuda vision backward: every gradient", grads[1], grads[0], 1e-4, 1e-3);
}

}  // namespace

void model_checks(Report& r, uint32_t seed, const BackendOptions& gpu) {
  decoder_checks(r, seed, gpu, DType::F32);
  decoder_checks(r, seed, gpu, DType::BF16);
  vision_checks(r, seed, gpu);
}

}  // namespace cudatest
}  // namespace vlatext
