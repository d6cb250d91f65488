// The CUDA backend against the CPU backend (whose kernels are checked against their scalar
// references in test_kernels.cpp), on fresh random inputs: every call of the device seam, then
// whole models (test_cuda_model.cpp). Without a GPU only the host-side checks run (cuBLASLt's
// search list and loader errors, the backend's refusal) and the rest prints SKIP lines saying why.
// Prints PASS/FAIL/SKIP lines (read by test/native/cuda.test.ts); exits 1 on any FAIL.
//   vlatext_cuda_tests [seed] [--cpu-twin]   (--cpu-twin: the GPU's place taken by a portable CPU backend)
//
// Tolerances (max |gpu - cpu| <= atol + rtol |cpu|, inputs ~N(0, 1)):
//  - elementwise, norms, RoPE, embeddings: atol 1e-5, rtol 1e-5 (expf/erff/sinf vs libm: a few ulp;
//    row sums in double on both sides).
//  - products with f32 weights: atol 1e-3, rtol 1e-4 at C <= 1024 (f32 accumulation in another
//    order: ~sqrt(C) 2^-24 |x||w| per output, outputs ~sqrt(C)).
//  - products with bf16 weights: the same, on activations that are already bf16 values (the GPU
//    rounds activations to bf16 for a bf16 product, the CPU's portable path does not: rounding
//    the inputs first makes both exact products of the same bf16 numbers, f32-accumulated).
//  - attention: atol 1e-4 (online softmax in another order).
//  - LM head: loss sum rtol 1e-5, lse atol 1e-4, gradients atol 1e-4 (1e-3 for dhidden with a bf16
//    head: the GPU rounds the softmax gradient to bf16 for that product).
//  - AdamW: bit-identical (the same operations, correctly rounded, no contraction): atol 0.
//  - squared norm: rtol 1e-12 (double partials).
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>

#include "../cuda/cublaslt.h"
#include "../cuda/kernels.h"
#include "../kernels/adamw.h"
#include "../kernels/attention.h"
#include "../kernels/rope.h"
#include "cuda_test_util.h"

using namespace vlatext;
using namespace vlatext::cudatest;

namespace vlatext {
namespace cudatest {
void model_checks(Report& r, uint32_t seed, const BackendOptions& gpu);
}
}  // namespace vlatext

namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

void host_checks(Report& r) {
  lt::SearchEnv env;
  env.explicit_path = "/nonexistent/libcublasLt.so.13";
  env.home = "/nonexistent-home";
  auto c = lt::candidates(env);
  r.line(c.size() >= 3 && c[0] == env.explicit_path && c[1] == "libcublasLt.so.13" && c[2] == "libcublasLt.so.12", "cublaslt search order",
         "explicit file, then the sonames .so.13, .so.12 (" + std::to_string(c.size()) + " candidates)");
  env.explicit_path = "/tmp";  // a folder without the library: nothing from it is listed
  c = lt::candidates(env);
  r.line(!c.empty() && c[0] == "libcublasLt.so.13", "cublaslt search: a folder is searched, not listed", c.empty() ? "empty" : c[0]);
  lt::Api api;
  std::string err;
  Status st = lt::load({"/nonexistent/libcublasLt.so.13"}, &api, &err);
  r.line(st == Status::NoDevice && contains(err, "/nonexistent/libcublasLt.so.13") && contains(err, "pip install nvidia-cublas") && contains(err, "VLATEXT_CUBLASLT") && api.lib == nullptr,
         "cublaslt load: missing file named, install hint", "");
  err.clear();
  st = lt::load({"libm.so.6"}, &api, &err);
  r.line(st == Status::NoDevice && contains(err, "libm.so.6: opened, but it has no cublasLtGetVersion"), "cublaslt load: a library that is not cuBLASLt", "");
  r.line(lt::status_text(15) == "CUBLAS_STATUS_NOT_SUPPORTED (15)", "cublaslt status text", lt::status_text(15));
  // decoding's key splits: none for short caches or many rows; runs of 16 keys, doubled until <= 128 splits
  const auto a = cuk::cached_split(0, 1), b = cuk::cached_split(15, 1), c1 = cuk::cached_split(16, 1), d = cuk::cached_split(10000, 1), e = cuk::cached_split(500, 17);
  r.line(a.splits == 1 && b.splits == 1 && c1.split == 16 && c1.splits == 2 && d.split == 128 && d.splits == 79 && e.splits == 1 && cuk::cached_split_floats(16, 1, 16, 128) == 2 * 16 * 130 &&
             cuk::cached_split_floats(10, 1, 16, 128) == 0,
         "cuda decode key splits", "17 keys: " + std::to_string(c1.splits) + " x " + std::to_string(c1.split) + ", 10001 keys: " + std::to_string(d.splits) + " x " + std::to_string(d.split));
}

struct Ctx {
  Report& r;
  Backend& cpu;
  Backend& gpu;
  std::mt19937& rng;
  std::string tag;  // "lt" or "builtin"
};

// Runs fn(be, outs) on both backends from the same host inputs; outs are downloaded and compared.
using Outs = std::vector<std::vector<float>>;

void check_sync(Ctx& x, const std::string& name) {
  std::string err;
  const Status st = x.gpu.sync(&err);
  if (st != Status::Ok) x.r.line(false, name + " (device error)", err);
}

void check_matmul(Ctx& x) {
  for (DType wt : {DType::F32, DType::BF16}) {
    // N <= 8: the GEMV kernel (C % 8 == 0: 16-byte loads; C = 37: scalar loads); larger N: GEMM
    for (auto [N, C, OC] : {std::array<int, 3>{1, 64, 96}, {3, 200, 72}, {2, 37, 50}, {8, 256, 128}, {37, 96, 200}, {130, 512, 384}}) {
      const std::string name = std::string("matmul ") + x.tag + " " + dtype_name(wt) + " N=" + std::to_string(N) + " C=" + std::to_string(C) + " OC=" + std::to_string(OC);
      auto inp = randn(x.rng, (size_t)N * C), w = randn(x.rng, (size_t)OC * C, 0.1f), bias = randn(x.rng, OC), dout = randn(x.rng, (size_t)N * OC);
      if (wt == DType::BF16) inp = rounded_bf16(inp), dout = rounded_bf16(dout), w = rounded_bf16(w);
      Outs res[2];
      Backend* bes[2] = {&x.cpu, &x.gpu};
      for (int b = 0; b < 2; b++) {
        Backend& be = *bes[b];
        auto di = put(be, inp), db = put(be, bias), dd = put(be, dout);
        Buf<float> wf(&be);
        Buf<uint16_t> wh(&be);
        ConstTensorRef wr;
        if (wt == DType::BF16) wh = put_bf16(be, w), wr = {wh.data(), DType::BF16};
        else wf = put(be, w), wr = {wf.data(), DType::F32};
        Buf<float> out(&be, (int64_t)N * OC), dinp(&be, (int64_t)N * C), dw(&be, (int64_t)OC * C), dbias(&be, OC);
        be.matmul_forward(out.data(), di.data(), wr, db.data(), N, C, OC);
        be.matmul_backward(dinp.data(), wt == DType::F32 ? dw.data() : nullptr, dbias.data(), dd.data(), di.data(), wr, N, C, OC);
        std::vector<int32_t> rows = {OC - 1, 0, OC / 2};
        Buf<float> picked(&be, 3);
        be.matmul_rows(picked.data(), di.data(), wr, rows.data(), 3, C);
        res[b] = {get(be, out), get(be, dinp), get(be, dw), get(be, dbias), get(be, picked)};
      }
      check_sync(x, name);
      x.r.compare(name + " forward", res[1][0], res[0][0], 1e-3, 1e-4);
      x.r.compare(name + " dinp", res[1][1], res[0][1], 1e-3, 1e-4);
      if (wt == DType::F32) x.r.compare(name + " dweight", res[1][2], res[0][2], 1e-3, 1e-4);
      x.r.compare(name + " dbias", res[1][3], res[0][3], 1e-4, 1e-5);
      x.r.compare(name + " rows", res[1][4], res[0][4], 1e-3, 1e-4);
    }
  }
}

void check_elementwise(Ctx& x) {
  const int N = 37, C = 300;
  const int64_t n = (int64_t)N * C;
  auto a = randn(x.rng, n), b = randn(x.rng, n), c = randn(x.rng, n), w = randn(x.rng, C);
  std::uniform_int_distribution<int> tok(0, 49);
  std::vector<int32_t> tokens(N);
  for (auto& t : tokens) t = tok(x.rng);
  tokens[1] = tokens[0];  // a repeated token: its gradients add up
  auto table = randn(x.rng, (size_t)50 * C);
  std::vector<int32_t> rows = {5, 0, 36, 17};
  Outs res[2];
  Backend* bes[2] = {&x.cpu, &x.gpu};
  for (int k = 0; k < 2; k++) {
    Backend& be = *bes[k];
    auto da = put(be, a), db = put(be, b), dc = put(be, c), dw = put(be, w), dt = put(be, table);
    auto dtok = put(be, tokens), drows = put(be, rows);
    auto th = put_bf16(be, table);
    Buf<float> o1(&be, n), o2(&be, n), o3(&be, n), g1(&be, n), g2(&be, n), rstd(&be, N), dwn(&be, C), emb(&be, n), embh(&be, n), dtab(&be, 50 * C), gath(&be, 4 * C), scat(&be, n), conv(&be, n), y(&be, n);
    Buf<uint16_t> half(&be, n);
    Buf<float> ln(&be, n), lmean(&be, N), lrstd(&be, N), lg(&be, n), ldw(&be, C), ldb(&be, C), gt(&be, n), gtg(&be, n);
    be.layernorm_forward(ln.data(), lmean.data(), lrstd.data(), da.data(), dw.data(), db.data(), N, C, 1e-6f);
    be.layernorm_backward(lg.data(), ldw.data(), ldb.data(), dc.data(), da.data(), dw.data(), lmean.data(), lrstd.data(), N, C);
    be.gelu_tanh_forward(gt.data(), da.data(), n);
    be.gelu_tanh_backward(gtg.data(), dc.data(), da.data(), n);
    be.swiglu_forward(o1.data(), da.data(), db.data(), n);
    be.swiglu_backward(g1.data(), g2.data(), dc.data(), da.data(), db.data(), n);
    be.gelu_forward(o2.data(), da.data(), n);
    be.gelu_backward(g1.data(), dc.data(), db.data(), n);  // accumulates onto swiglu's dgate
    be.rmsnorm_forward(o3.data(), rstd.data(), da.data(), dw.data(), N, C, 1e-6f);
    be.rmsnorm_backward(g2.data(), dwn.data(), dc.data(), da.data(), dw.data(), rstd.data(), N, C);
    be.embedding_forward(emb.data(), dtok.data(), {dt.data(), DType::F32}, N, C);
    be.embedding_forward(embh.data(), dtok.data(), {th.data(), DType::BF16}, N, C);
    be.embedding_backward(dtab.data(), dc.data(), dtok.data(), N, C);
    be.gather_rows(gath.data(), da.data(), drows.data(), 4, C);
    be.scatter_rows(scat.data(), drows.data(), gath.data(), 4, C);
    be.convert(half.data(), DType::BF16, da.data(), DType::F32, n);
    be.convert(conv.data(), DType::F32, half.data(), DType::BF16, n);
    be.copy(y.data(), db.data(), sizeof(float) * n);
    be.axpy(y.data(), da.data(), 0.5f, n);
    be.mul_inplace(y.data(), dc.data(), n);
    be.add(o1.data(), o1.data(), y.data(), n);
    be.scale(o2.data(), o2.data(), -3.0f, n);
    res[k] = {get(be, o1), get(be, o2), get(be, o3), get(be, g1), get(be, g2), get(be, rstd), get(be, dwn), get(be, emb), get(be, embh), get(be, dtab), get(be, gath), get(be, scat), get(be, conv), get(be, ln), get(be, lmean), get(be, lrstd), get(be, lg), get(be, ldw), get(be, ldb), get(be, gt), get(be, gtg)};
  }
  check_sync(x, "elementwise");
  const char* names[] = {"swiglu+axpy+mul+add", "gelu+scale", "rmsnorm_forward", "swiglu_backward dgate + gelu_backward", "swiglu_backward dup + rmsnorm dinp", "rmsnorm rstd", "rmsnorm dweight",
                         "embedding_forward f32", "embedding_forward bf16", "embedding_backward", "gather_rows", "scatter_rows", "convert f32->bf16->f32",
                         "layernorm_forward", "layernorm mean", "layernorm rstd", "layernorm dinp", "layernorm dweight", "layernorm dbias", "gelu_tanh_forward", "gelu_tanh_backward"};
  for (int i = 0; i < 21; i++) x.r.compare(std::string("cuda ") + names[i], res[1][i], res[0][i], 1e-5, 1e-5);
}

void check_rope(Ctx& x) {
  struct Case {
    int hd;
    std::vector<int> sections;
    bool restart;
  };
  for (const Case& cs : {Case{16, {8}, false}, Case{32, {4, 6, 6}, false}, Case{24, {3, 3}, true}, Case{128, {16, 24, 24}, false}}) {
    const int N = 19, H = 3, S = (int)cs.sections.size();
    auto v = randn(x.rng, (size_t)N * H * cs.hd);
    std::vector<int32_t> pos((size_t)S * N);
    std::uniform_int_distribution<int> p(0, 500);
    for (auto& q : pos) q = p(x.rng);
    const RopeSpec spec{cs.hd, 1000000.0f, S, cs.sections.data(), cs.restart};
    Outs res[2];
    Backend* bes[2] = {&x.cpu, &x.gpu};
    for (int k = 0; k < 2; k++) {
      auto dv = put(*bes[k], v), dg = put(*bes[k], v);
      auto dp = put(*bes[k], pos);
      bes[k]->rope_forward(dv.data(), dp.data(), spec, N, H);
      bes[k]->rope_backward(dg.data(), dp.data(), spec, N, H);
      res[k] = {get(*bes[k], dv), get(*bes[k], dg)};
    }
    check_sync(x, "rope");
    const std::string name = "cuda rope hd=" + std::to_string(cs.hd) + " sections=" + std::to_string(S) + (cs.restart ? " restart" : "");
    x.r.compare(name + " forward", res[1][0], res[0][0], 1e-5, 1e-5);
    x.r.compare(name + " backward", res[1][1], res[0][1], 1e-5, 1e-5);
  }
}

void check_attention(Ctx& x) {
  for (auto sh : {AttnShape{2, 17, 4, 2, 16}, AttnShape{1, 40, 6, 1, 64}, AttnShape{2, 9, 2, 2, 128}, AttnShape{1, 33, 2, 1, 8}}) {
    const int64_t nq = (int64_t)sh.B * sh.T * sh.NH * sh.hd, nk = (int64_t)sh.B * sh.T * sh.KV * sh.hd;
    auto q = randn(x.rng, nq), k = randn(x.rng, nk), v = randn(x.rng, nk), dout = randn(x.rng, nq);
    Outs res[2];
    Backend* bes[2] = {&x.cpu, &x.gpu};
    const int start = sh.T - 3;  // cached: the last 3 rows of sequence 0 against its first start + i keys
    for (int b = 0; b < 2; b++) {
      Backend& be = *bes[b];
      auto dq = put(be, q), dk = put(be, k), dv = put(be, v), dd = put(be, dout);
      Buf<float> out(&be, nq), lse(&be, (int64_t)sh.B * sh.NH * sh.T), gq(&be, nq), gk(&be, nk), gv(&be, nk), cached(&be, 3LL * sh.NH * sh.hd);
      be.attention_forward(out.data(), lse.data(), dq.data(), dk.data(), dv.data(), sh);
      be.attention_backward(gq.data(), gk.data(), gv.data(), dd.data(), out.data(), lse.data(), dq.data(), dk.data(), dv.data(), sh);
      be.attention_forward_cached(cached.data(), dq.data() + (int64_t)start * sh.NH * sh.hd, dk.data(), dv.data(), start, 3, sh.NH, sh.KV, sh.hd);
      res[b] = {get(be, out), get(be, lse), get(be, gq), get(be, gk), get(be, gv), get(be, cached)};
    }
    char nm[96];
    std::snprintf(nm, sizeof nm, "cuda attention B=%d T=%d NH=%d KV=%d hd=%d", sh.B, sh.T, sh.NH, sh.KV, sh.hd);
    check_sync(x, nm);
    const char* parts[] = {"forward", "lse", "dq", "dk", "dv", "cached"};
    for (int i = 0; i < 6; i++) x.r.compare(std::string(nm) + " " + parts[i], res[1][i], res[0][i], 1e-4, 1e-4);
  }
  // cached decoding over long caches: the keys split across blocks and merged
  for (auto [start, n, hd] : {std::array<int, 3>{300, 1, 128}, {700, 5, 64}, {90, 16, 16}, {5000, 1, 128}}) {
    const int NH = 4, KV = 2, keys = start + n;
    auto q = randn(x.rng, (size_t)n * NH * hd), k = randn(x.rng, (size_t)keys * KV * hd), v = randn(x.rng, (size_t)keys * KV * hd);
    Outs res[2];
    Backend* bes[2] = {&x.cpu, &x.gpu};
    for (int b = 0; b < 2; b++) {
      auto dq = put(*bes[b], q), dk = put(*bes[b], k), dv = put(*bes[b], v);
      Buf<float> out(bes[b], (int64_t)n * NH * hd);
      bes[b]->attention_forward_cached(out.data(), dq.data(), dk.data(), dv.data(), start, n, NH, KV, hd);
      res[b] = {get(*bes[b], out)};
    }
    const std::string nm = "cuda attention cached split start=" + std::to_string(start) + " n=" + std::to_string(n) + " hd=" + std::to_string(hd);
    check_sync(x, nm);
    x.r.compare(nm, res[1][0], res[0][0], 1e-4, 1e-4);
  }
  // segments (the vision tower): windows of unequal sizes
  for (int hd : {16, 80}) {
    std::vector<int32_t> cu = {0, 7, 8, 30, 45};
    const int N = cu.back(), NH = 3, n_seg = 4;
    const int64_t n = (int64_t)N * NH * hd;
    auto q = randn(x.rng, n), k = randn(x.rng, n), v = randn(x.rng, n), dout = randn(x.rng, n);
    Outs res[2];
    Backend* bes[2] = {&x.cpu, &x.gpu};
    for (int b = 0; b < 2; b++) {
      Backend& be = *bes[b];
      auto dq = put(be, q), dk = put(be, k), dv = put(be, v), dd = put(be, dout);
      Buf<float> out(&be, n), lse(&be, (int64_t)N * NH), gq(&be, n), gk(&be, n), gv(&be, n);
      be.attention_segments(out.data(), lse.data(), dq.data(), dk.data(), dv.data(), cu.data(), n_seg, NH, hd);
      be.attention_segments_backward(gq.data(), gk.data(), gv.data(), dd.data(), out.data(), lse.data(), dq.data(), dk.data(), dv.data(), cu.data(), n_seg, NH, hd);
      res[b] = {get(be, out), get(be, lse), get(be, gq), get(be, gk), get(be, gv)};
    }
    const std::string nm = "cuda attention_segments hd=" + std::to_string(hd);
    check_sync(x, nm);
    const char* parts[] = {"forward", "lse", "dq", "dk", "dv"};
    for (int i = 0; i < 5; i++) x.r.compare(nm + " " + parts[i], res[1][i], res[0][i], 1e-4, 1e-4);
  }
}

void check_head(Ctx& x) {
  for (DType wt : {DType::F32, DType::BF16}) {
    const int K = 29, C = 64, V = 1000;
    auto hidden = randn(x.rng, (size_t)K * C), head = randn(x.rng, (size_t)V * C, 0.2f);
    if (wt == DType::BF16) hidden = rounded_bf16(hidden), head = rounded_bf16(head);
    std::vector<int32_t> targets(K);
    std::uniform_int_distribution<int> t(0, V - 1);
    for (auto& v : targets) v = t(x.rng);
    targets[3] = -100, targets[10] = -1;  // ignored rows
    double loss[2][3];
    int64_t kept[2][3];
    Outs res[2];
    Backend* bes[2] = {&x.cpu, &x.gpu};
    for (int b = 0; b < 2; b++) {
      Backend& be = *bes[b];
      auto dh = put(be, hidden);
      auto dt = put(be, targets);
      Buf<float> wf(&be);
      Buf<uint16_t> wh(&be);
      ConstTensorRef w;
      if (wt == DType::BF16) wh = put_bf16(be, head), w = {wh.data(), DType::BF16};
      else wf = put(be, head), w = {wf.data(), DType::F32};
      Buf<float> lse(&be, K), dhid(&be, (int64_t)K * C), logits(&be, (int64_t)K * V), lse2(&be, K), dhid2(&be, (int64_t)K * C), dhead(&be, (int64_t)V * C), dhead2(&be, (int64_t)V * C), lse3(&be, K);
      be.head_forward(&loss[b][0], &kept[b][0], lse.data(), dhid.data(), nullptr, dh.data(), dt.data(), w, 0.25f, K, C, V);
      be.head_forward(&loss[b][1], &kept[b][1], lse2.data(), nullptr, logits.data(), dh.data(), dt.data(), w, 0.25f, K, C, V);
      if (wt == DType::F32) {
        be.head_backward(dhead.data(), dhid2.data(), dh.data(), dt.data(), lse2.data(), logits.data(), wf.data(), 0.25f, K, C, V);  // from kept logits
        be.head_forward(&loss[b][2], &kept[b][2], lse3.data(), nullptr, nullptr, dh.data(), dt.data(), w, 0.25f, K, C, V);
        be.head_backward(dhead2.data(), nullptr, dh.data(), dt.data(), lse3.data(), nullptr, wf.data(), 0.25f, K, C, V);  // recomputed
      }
      res[b] = {get(be, lse), get(be, dhid), get(be, logits), get(be, dhid2), get(be, dhead), get(be, dhead2)};
    }
    const std::string nm = std::string("cuda head ") + x.tag + " " + dtype_name(wt);
    check_sync(x, nm);
    x.r.compare_scalar(nm + " loss_sum", loss[1][0], loss[0][0], 1e-5);
    x.r.line(kept[1][0] == kept[0][0] && kept[1][0] == K - 2, nm + " kept", std::to_string(kept[1][0]));
    x.r.compare_scalar(nm + " loss_sum with logits", loss[1][1], loss[0][1], 1e-5);
    x.r.compare(nm + " lse", res[1][0], res[0][0], 1e-4, 1e-5);
    // bf16: the GPU rounds loss_scale (softmax - onehot) to bf16 for the bf16 product, 2^-9 of the
    // one-hot term 0.25 |head| ~ 1e-4 per element: 1e-3 there
    x.r.compare(nm + " fused dhidden", res[1][1], res[0][1], wt == DType::BF16 ? 1e-3 : 1e-4, 1e-4);
    x.r.compare(nm + " logits", res[1][2], res[0][2], 1e-3, 1e-4);
    if (wt == DType::F32) {
      x.r.compare(nm + " backward dhidden", res[1][3], res[0][3], 1e-4, 1e-4);
      x.r.compare(nm + " dhead from logits", res[1][4], res[0][4], 1e-4, 1e-4);
      x.r.compare(nm + " dhead recomputed", res[1][5], res[0][5], 1e-4, 1e-4);
    }
  }
}

void check_optimizer(Ctx& x) {
  const int64_t n = 100003;
  auto p = randn(x.rng, n), g = randn(x.rng, n), m = randn(x.rng, n, 0.1f), v = randn(x.rng, n, 0.1f);
  for (auto& q : v) q = q * q;
  const AdamWConfig cfg{1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
  Outs res[2];
  double norm[2];
  Backend* bes[2] = {&x.cpu, &x.gpu};
  for (int b = 0; b < 2; b++) {
    Backend& be = *bes[b];
    auto dp = put(be, p), dg = put(be, g), dm = put(be, m), dv = put(be, v);
    be.adamw_update(dp.data(), dm.data(), dv.data(), dg.data(), n, cfg, 7, 0.5f);
    norm[b] = be.sq_norm(dg.data(), n);
    res[b] = {get(be, dp), get(be, dm), get(be, dv)};
  }
  check_sync(x, "optimizer");
  x.r.compare("cuda adamw params (bit-identical)", res[1][0], res[0][0], 0, 0);
  x.r.compare("cuda adamw m (bit-identical)", res[1][1], res[0][1], 0, 0);
  x.r.compare("cuda adamw v (bit-identical)", res[1][2], res[0][2], 0, 0);
  x.r.compare_scalar("cuda sq_norm", norm[1], norm[0], 1e-12);
}

}  // namespace

int main(int argc, char** argv) {
  const uint32_t seed = argc > 1 ? (uint32_t)std::strtoul(argv[1], nullptr, 10) : 1234u;
  std::printf("seed %u\n", seed);
  Report r;
  host_checks(r);
  std::unique_ptr<Backend> cpu, gpu;
  std::string err;
  if (create_backend(BackendOptions{}, &cpu, &err) != Status::Ok) {
    r.line(false, "cpu backend", err);
    return 1;
  }
  // --cpu-twin: every "GPU" check runs on a second CPU backend (one thread, portable kernels)
  // instead: checks the checks themselves (shapes, configs, tolerances) on a machine without a GPU.
  const bool twin = argc > 2 && std::string(argv[2]) == "--cpu-twin";
  BackendOptions go;
  go.device = twin ? Device::Cpu : Device::Cuda;
  go.cuda_builtin_gemm = true;
  if (twin) go.threads = 1, go.isa = Isa::Portable;
  const Status gs = create_backend(go, &gpu, &err);
  if (gs != Status::Ok) {
    r.line(gs == Status::NoDevice && !err.empty(), "cuda backend refused without a GPU, saying why", err);
    r.skip("gpu kernels", err);
    r.skip("gpu models", "no usable CUDA device");
  } else {
    std::mt19937 rng(seed);
    std::printf("gpu: %s\n", gpu->describe().c_str());
    for (bool builtin : {true, false}) {
      if (!builtin) {
        go.cuda_builtin_gemm = false;
        gpu.reset();
        const Status ls = create_backend(go, &gpu, &err);
        if (ls != Status::Ok) {
          r.line(false, "cuda backend with cuBLASLt", err);
          go.cuda_builtin_gemm = true;  // the model checks then run on the built-in GEMM
          break;
        }
        std::printf("gpu: %s\n", gpu->describe().c_str());
      }
      Ctx x{r, *cpu, *gpu, rng, builtin ? "builtin" : "lt"};
      check_matmul(x);
      check_head(x);
      if (builtin) {
        check_elementwise(x);
        check_rope(x);
        check_attention(x);
        check_optimizer(x);
      }
    }
    gpu.reset();
    model_checks(r, seed, go);
  }
  std::printf("%d passed, %d failed\n", r.passes, r.failures);
  return r.failures == 0 ? 0 : 1;
}
