// Kernel tests, llm.c style: every optimized kernel against its scalar reference on
// fresh random inputs, and every backward against central finite differences.
// Prints one line per check ("PASS name ..." / "FAIL name ..."); exits 1 on any failure.
// Run by test/native/kernels.test.ts; build: node-gyp (target vlatext_kernel_tests).
//
// Finite differences: loss = sum(out * R) for a fixed random R, so dL/dout = R; each
// probed input element x gets (L(x + e) - L(x - e)) / 2e with e = 1e-2 in float32,
// evaluated with the reference forward. Tolerance: |fd - analytic| <= 2e-2 * max(1, |fd|),
// loose enough for float32 cancellation (~1e-7 * |L| / e) and tight enough that a wrong
// sign, a missing term or a factor of 2 fails.
#include <cmath>
#include <cstdio>
#include <functional>
#include <chrono>
#include <mutex>
#include <thread>
#include <random>
#include <string>
#include <vector>

#include "../core/threadpool.h"
#include "../kernels/adamw.h"
#include "../kernels/attention.h"
#include "../kernels/elementwise.h"
#include "../kernels/gemm.h"
#include "../kernels/head.h"
#include "../kernels/layernorm.h"
#include "../kernels/matmul.h"
#include "../kernels/norm.h"
#include "../kernels/rope.h"
#include "../kernels/vec.h"
#include "../model/param_store.h"

using namespace vlatext;

namespace {

int failures = 0;
std::mt19937 rng_state(1234);

std::vector<float> randn(size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng_state);
  return v;
}

void report(bool ok, const std::string& name, const std::string& detail) {
  std::printf("%s %s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
  if (!ok) failures++;
}

// max |a - b| / (atol + rtol |b|) <= 1
void compare(const std::string& name, const std::vector<float>& a, const std::vector<float>& b, float atol, float rtol) {
  double worst = 0, worst_abs = 0;
  for (size_t i = 0; i < a.size(); i++) {
    const double e = std::fabs((double)a[i] - b[i]);
    worst = std::max(worst, e / (atol + rtol * std::fabs((double)b[i])));
    worst_abs = std::max(worst_abs, e);
    if (!std::isfinite(a[i])) worst = INFINITY;
  }
  char buf[160];
  std::snprintf(buf, sizeof buf, "n=%zu max_abs_err=%.3g (atol %.1g rtol %.1g)", a.size(), worst_abs, atol, rtol);
  report(worst <= 1.0 && a.size() == b.size(), name, buf);
}

double weighted_sum(const std::vector<float>& out, const std::vector<float>& R) {
  double s = 0;
  for (size_t i = 0; i < out.size(); i++) s += (double)out[i] * R[i];
  return s;
}

// Check analytic gradient `grad` of L(x) = f(x) against central differences on `probes` elements of x.
void fd_check(const std::string& name, std::vector<float>& x, const std::vector<float>& grad, const std::function<double()>& loss, int probes = 24) {
  std::uniform_int_distribution<size_t> pick(0, x.size() - 1);
  const float e = 1e-2f;
  double worst = 0;
  for (int p = 0; p < probes; p++) {
    const size_t i = p < (int)x.size() ? (size_t)p * x.size() / std::min<size_t>(probes, x.size()) : pick(rng_state);
    const float keep = x[i];
    x[i] = keep + e;
    const double lp = loss();
    x[i] = keep - e;
    const double lm = loss();
    x[i] = keep;
    const double fd = (lp - lm) / (2 * e);
    worst = std::max(worst, std::fabs(fd - grad[i]) / std::max(1.0, std::fabs(fd)));
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "max_rel_err=%.3g over %d probes (tol 2e-2)", worst, probes);
  report(worst <= 2e-2, name, buf);
}

// parallel_for's grain: at most n / grain parts, one grain or less on the calling thread,
// and every item exactly once either way.
void test_threadpool_grain(ThreadPool& pool) {
  for (auto [n, grain] : std::vector<std::pair<int64_t, int64_t>>{{10, 100}, {250, 100}, {1000, 100}, {7, 1}, {0, 5}}) {
    std::vector<int> seen((size_t)n, 0);
    std::vector<int> parts_used(pool.size(), 0);
    std::mutex mu;
    pool.parallel_for(n, [&](int p, int64_t a, int64_t b) {
      std::lock_guard<std::mutex> lock(mu);
      if (b > a) parts_used[(size_t)p % parts_used.size()]++;
      for (int64_t i = a; i < b; i++) seen[(size_t)i]++;
    }, 0, grain);
    int parts = 0;
    for (int u : parts_used) parts += u;
    bool once = true;
    for (int v : seen) once = once && v == 1;
    const int64_t most = std::max<int64_t>(1, std::min<int64_t>(pool.size(), n / grain));
    report(once && parts <= most && (n > grain || parts <= 1), "parallel_for grain n=" + std::to_string(n) + " grain=" + std::to_string(grain), "parts " + std::to_string(parts) + " (at most " + std::to_string(most) + ")");
  }
}

void test_matmul(ThreadPool& pool) {
  for (auto [N, C, OC] : std::vector<std::tuple<int, int, int>>{{1, 1, 1}, {5, 7, 3}, {8, 64, 48}, {13, 33, 17}, {64, 256, 96}}) {
    auto inp = randn((size_t)N * C), w = randn((size_t)OC * C), b = randn(OC), dout = randn((size_t)N * OC);
    std::vector<float> ref((size_t)N * OC), got((size_t)N * OC);
    matmul_forward_ref(ref.data(), inp.data(), w.data(), b.data(), N, C, OC);
    matmul_forward(pool, got.data(), inp.data(), w.data(), b.data(), N, C, OC);
    const std::string tag = "N=" + std::to_string(N) + ",C=" + std::to_string(C) + ",OC=" + std::to_string(OC);
    // float sums of C products in different orders: error grows ~ sqrt(C) eps |x||w|
    compare("matmul_forward " + tag, got, ref, 1e-4f * std::sqrt((float)C), 1e-4f);
    std::vector<float> di_r((size_t)N * C, 0.5f), dw_r((size_t)OC * C, 0.5f), db_r(OC, 0.5f);
    std::vector<float> di_g = di_r, dw_g = dw_r, db_g = db_r;
    matmul_backward_ref(di_r.data(), dw_r.data(), db_r.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    matmul_backward(pool, di_g.data(), dw_g.data(), db_g.data(), dout.data(), inp.data(), w.data(), N, C, OC);
    compare("matmul_backward dinp " + tag, di_g, di_r, 1e-4f * std::sqrt((float)OC), 1e-4f);
    compare("matmul_backward dweight " + tag, dw_g, dw_r, 1e-4f * std::sqrt((float)N), 1e-4f);
    compare("matmul_backward dbias " + tag, db_g, db_r, 1e-4f * std::sqrt((float)N), 1e-4f);
  }
  // finite differences through the reference
  const int N = 4, C = 6, OC = 5;
  auto inp = randn(N * C), w = randn(OC * C), b = randn(OC), R = randn(N * OC);
  std::vector<float> out(N * OC), di(N * C, 0), dw(OC * C, 0), db(OC, 0);
  auto loss = [&] { matmul_forward_ref(out.data(), inp.data(), w.data(), b.data(), N, C, OC); return weighted_sum(out, R); };
  matmul_backward(pool, di.data(), dw.data(), db.data(), R.data(), inp.data(), w.data(), N, C, OC);
  fd_check("matmul fd dinp", inp, di, loss);
  fd_check("matmul fd dweight", w, dw, loss);
  fd_check("matmul fd dbias", b, db, loss);
}

void test_rmsnorm(ThreadPool& pool) {
  const int N = 9, C = 24;
  auto x = randn(N * C, 2.0f), w = randn(C), R = randn(N * C);
  std::vector<float> o_r(N * C), o_g(N * C), rs_r(N), rs_g(N);
  rmsnorm_forward_ref(o_r.data(), rs_r.data(), x.data(), w.data(), N, C, 1e-6f);
  rmsnorm_forward(pool, o_g.data(), rs_g.data(), x.data(), w.data(), N, C, 1e-6f);
  compare("rmsnorm_forward", o_g, o_r, 1e-6f, 1e-6f);
  std::vector<float> dx_r(N * C, 0), dw_r(C, 0), dx_g(N * C, 0), dw_g(C, 0);
  rmsnorm_backward_ref(dx_r.data(), dw_r.data(), R.data(), x.data(), w.data(), rs_r.data(), N, C);
  rmsnorm_backward(pool, dx_g.data(), dw_g.data(), R.data(), x.data(), w.data(), rs_g.data(), N, C);
  compare("rmsnorm_backward dinp", dx_g, dx_r, 1e-6f, 1e-5f);
  compare("rmsnorm_backward dweight", dw_g, dw_r, 1e-5f, 1e-5f);
  std::vector<float> out(N * C), rs(N);
  auto loss = [&] { rmsnorm_forward_ref(out.data(), rs.data(), x.data(), w.data(), N, C, 1e-6f); return weighted_sum(out, R); };
  fd_check("rmsnorm fd dinp", x, dx_r, loss);
  fd_check("rmsnorm fd dweight", w, dw_r, loss);
}

void test_layernorm_gelu_tanh(ThreadPool& pool) {
  const int N = 9, C = 24;
  auto x = randn(N * C, 2.0f), w = randn(C), b = randn(C), R = randn(N * C);
  for (auto& v : x) v += 1.5f;  // a mean away from zero: the centring matters
  std::vector<float> o_r(N * C), o_g(N * C), m_r(N), m_g(N), rs_r(N), rs_g(N);
  layernorm_forward_ref(o_r.data(), m_r.data(), rs_r.data(), x.data(), w.data(), b.data(), N, C, 1e-6f);
  layernorm_forward(pool, o_g.data(), m_g.data(), rs_g.data(), x.data(), w.data(), b.data(), N, C, 1e-6f);
  compare("layernorm_forward", o_g, o_r, 1e-6f, 1e-6f);
  // the oracle itself against the definition in double
  double worst = 0;
  for (int n = 0; n < N; n++) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += x[n * C + c] / (double)C;
    for (int c = 0; c < C; c++) v += (x[n * C + c] - m) * (x[n * C + c] - m) / C;
    for (int c = 0; c < C; c++) worst = std::max(worst, std::fabs((x[n * C + c] - m) / std::sqrt(v + 1e-6) * w[c] + b[c] - o_r[n * C + c]));
  }
  report(worst < 1e-5, "layernorm_forward_ref vs double definition", "max_abs_err=" + std::to_string(worst));
  std::vector<float> dx_r(N * C, 0), dw_r(C, 0), db_r(C, 0), dx_g(N * C, 0), dw_g(C, 0), db_g(C, 0);
  layernorm_backward_ref(dx_r.data(), dw_r.data(), db_r.data(), R.data(), x.data(), w.data(), m_r.data(), rs_r.data(), N, C);
  layernorm_backward(pool, dx_g.data(), dw_g.data(), db_g.data(), R.data(), x.data(), w.data(), m_g.data(), rs_g.data(), N, C);
  compare("layernorm_backward dinp", dx_g, dx_r, 1e-6f, 1e-5f);
  compare("layernorm_backward dweight", dw_g, dw_r, 1e-5f, 1e-5f);
  compare("layernorm_backward dbias", db_g, db_r, 1e-5f, 1e-5f);
  std::vector<float> out(N * C), mm(N), rs(N);
  auto loss = [&] { layernorm_forward_ref(out.data(), mm.data(), rs.data(), x.data(), w.data(), b.data(), N, C, 1e-6f); return weighted_sum(out, R); };
  fd_check("layernorm fd dinp", x, dx_r, loss);
  fd_check("layernorm fd dweight", w, dw_r, loss);
  fd_check("layernorm fd dbias", b, db_r, loss);

  const int n = 1000;
  auto g = randn(n, 3.0f), Rg = randn(n);
  std::vector<float> go_r(n), go_g(n), gd_r(n, 0), gd_g(n, 0);
  gelu_tanh_forward_ref(go_r.data(), g.data(), n);
  gelu_tanh_forward(pool, go_g.data(), g.data(), n);
  compare("gelu_tanh_forward", go_g, go_r, 0, 0);
  // torch.nn.functional.gelu(x, approximate="tanh") at a few points (float64)
  const float xs[] = {-3.0f, -1.0f, -0.1f, 0.5f, 2.0f};
  const double want[] = {-0.0036373920817729943, -0.15880800939172324, -0.04601724895456484, 0.34571400982514394, 1.954597694087775};
  double werr = 0;
  for (int i = 0; i < 5; i++) {
    float o;
    gelu_tanh_forward_ref(&o, xs + i, 1);
    werr = std::max(werr, std::fabs(o - want[i]));
  }
  report(werr < 1e-6, "gelu_tanh_forward_ref vs torch values", "max_abs_err=" + std::to_string(werr));
  gelu_tanh_backward_ref(gd_r.data(), Rg.data(), g.data(), n);
  gelu_tanh_backward(pool, gd_g.data(), Rg.data(), g.data(), n);
  compare("gelu_tanh_backward", gd_g, gd_r, 0, 0);
  std::vector<float> gout(n);
  auto gloss = [&] { gelu_tanh_forward_ref(gout.data(), g.data(), n); return weighted_sum(gout, Rg); };
  fd_check("gelu_tanh fd dx", g, gd_r, gloss);
}

void test_rope(ThreadPool& pool) {
  for (bool mrope : {false, true}) {
    const int N = 7, H = 3, hd = 16;
    const int sec1[] = {8};
    const int sec3[] = {2, 3, 3};  // M-RoPE style: temporal, height, width over hd/2 = 8 frequencies
    RopeSpec spec{hd, 10000.0f, mrope ? 3 : 1, mrope ? sec3 : sec1};
    std::vector<int32_t> pos((size_t)spec.n_sections * N);
    for (size_t i = 0; i < pos.size(); i++) pos[i] = (int32_t)((i * 7) % 11);
    const std::string tag = mrope ? " (3 sections)" : "";
    auto x = randn(N * H * hd), R = randn(N * H * hd);
    auto a = x, b = x;
    rope_forward_ref(a.data(), pos.data(), spec, N, H);
    rope_forward(pool, b.data(), pos.data(), spec, N, H);
    compare("rope_forward" + tag, b, a, 1e-6f, 1e-6f);
    // position 0 is the identity; norms are preserved
    double n0 = 0, n1 = 0;
    for (size_t i = 0; i < x.size(); i++) n0 += (double)x[i] * x[i], n1 += (double)a[i] * a[i];
    report(std::fabs(n0 - n1) < 1e-3 * n0, "rope preserves norms" + tag, "");
    auto g = R;
    rope_backward(pool, g.data(), pos.data(), spec, N, H);
    auto loss = [&] { auto y = x; rope_forward_ref(y.data(), pos.data(), spec, N, H); return weighted_sum(y, R); };
    fd_check("rope fd" + tag, x, g, loss);
  }
  // HF's convention, by hand: hd=4, pos=1, theta=10000: pairs (0,2) angle 1, (1,3) angle 0.01
  const int sec[] = {2};
  RopeSpec spec{4, 10000.0f, 1, sec};
  int32_t pos[] = {1};
  std::vector<float> x = {1, 2, 3, 4};
  rope_forward_ref(x.data(), pos, spec, 1, 1);
  std::vector<float> want = {(float)(1 * std::cos(1.0) - 3 * std::sin(1.0)), (float)(2 * std::cos(0.01) - 4 * std::sin(0.01)),
                             (float)(3 * std::cos(1.0) + 1 * std::sin(1.0)), (float)(4 * std::cos(0.01) + 2 * std::sin(0.01))};
  compare("rope half-rotation by hand", x, want, 1e-6f, 1e-6f);
}

void test_attention(ThreadPool& pool) {
  // head sizes 16, 64 and 128 take the fixed-size paths, 8 and 12 the general one; T crosses key tiles (32) and row blocks (4);
  // T = 300 is a policy's training sequence at an 8-step chunk (the tiny default's 4 heads of 16, 2 kv heads)
  for (auto s : std::vector<AttnShape>{{1, 1, 1, 1, 4}, {2, 5, 4, 2, 8}, {1, 70, 4, 1, 16}, {2, 33, 6, 3, 8}, {2, 97, 4, 2, 64}, {1, 45, 2, 1, 128}, {2, 67, 4, 4, 12}, {2, 300, 4, 2, 16}}) {
    const size_t nq = (size_t)s.B * s.T * s.NH * s.hd, nk = (size_t)s.B * s.T * s.KV * s.hd, nl = (size_t)s.B * s.NH * s.T;
    auto q = randn(nq), k = randn(nk), v = randn(nk), R = randn(nq);
    std::vector<float> o_r(nq), o_g(nq), l_r(nl), l_g(nl);
    attention_forward_ref(o_r.data(), l_r.data(), q.data(), k.data(), v.data(), s);
    attention_forward(pool, o_g.data(), l_g.data(), q.data(), k.data(), v.data(), s);
    const std::string tag = "B=" + std::to_string(s.B) + ",T=" + std::to_string(s.T) + ",NH=" + std::to_string(s.NH) + ",KV=" + std::to_string(s.KV) + ",hd=" + std::to_string(s.hd);
    compare("attention_forward " + tag, o_g, o_r, 1e-5f, 1e-4f);
    compare("attention_forward lse " + tag, l_g, l_r, 1e-5f, 1e-5f);
    std::vector<float> dq_r(nq, 0), dk_r(nk, 0), dv_r(nk, 0), dq_g(nq, 0), dk_g(nk, 0), dv_g(nk, 0);
    attention_backward_ref(dq_r.data(), dk_r.data(), dv_r.data(), R.data(), o_r.data(), l_r.data(), q.data(), k.data(), v.data(), s);
    attention_backward(pool, dq_g.data(), dk_g.data(), dv_g.data(), R.data(), o_g.data(), l_g.data(), q.data(), k.data(), v.data(), s);
    compare("attention_backward dq " + tag, dq_g, dq_r, 1e-4f, 1e-3f);
    compare("attention_backward dk " + tag, dk_g, dk_r, 1e-4f, 1e-3f);
    compare("attention_backward dv " + tag, dv_g, dv_r, 1e-4f, 1e-3f);
    if (s.T <= 5) {
      std::vector<float> out(nq), lse(nl);
      auto loss = [&] { attention_forward_ref(out.data(), lse.data(), q.data(), k.data(), v.data(), s); return weighted_sum(out, R); };
      fd_check("attention fd dq " + tag, q, dq_g, loss);
      fd_check("attention fd dk " + tag, k, dk_g, loss);
      fd_check("attention fd dv " + tag, v, dv_g, loss);
    }
  }
  // causality: changing the last token's k/v leaves earlier outputs unchanged
  AttnShape s{1, 6, 2, 1, 4};
  auto q = randn(6 * 2 * 4), k = randn(6 * 4), v = randn(6 * 4);
  std::vector<float> o1(q.size()), o2(q.size()), l(12);
  attention_forward(pool, o1.data(), l.data(), q.data(), k.data(), v.data(), s);
  for (int i = 0; i < 4; i++) k[5 * 4 + i] += 3, v[5 * 4 + i] -= 3;
  attention_forward(pool, o2.data(), l.data(), q.data(), k.data(), v.data(), s);
  bool earlier_same = true, last_changed = false;
  const size_t last = 5 * 2 * 4;  // first output element of token 5
  for (size_t i = 0; i < last; i++) earlier_same = earlier_same && o1[i] == o2[i];
  for (size_t i = last; i < o1.size(); i++) last_changed = last_changed || o1[i] != o2[i];
  report(earlier_same && last_changed, "attention is causal", "");
}

void test_vision_attention_and_rope(ThreadPool& pool) {
  const int NH = 3, hd = 8;
  const std::vector<int32_t> cu = {0, 5, 6, 40, 71};  // segments of 5, 1, 34 and 31 rows
  const int64_t N = cu.back();
  auto q = randn((size_t)N * NH * hd), k = randn((size_t)N * NH * hd), v = randn((size_t)N * NH * hd);
  std::vector<float> r((size_t)N * NH * hd), g((size_t)N * NH * hd);
  attention_segments_ref(r.data(), q.data(), k.data(), v.data(), cu.data(), 4, NH, hd);
  attention_segments(pool, g.data(), nullptr, q.data(), k.data(), v.data(), cu.data(), 4, NH, hd);
  compare("attention_segments vs reference", g, r, 1e-5f, 1e-4f);
  // a one-row segment attends only to itself: out = v
  bool self_only = true;
  for (int i = 0; i < NH * hd; i++) self_only = self_only && std::fabs(g[(size_t)5 * NH * hd + i] - v[(size_t)5 * NH * hd + i]) < 1e-6f;
  report(self_only, "attention_segments: a single-row segment returns its value", "");
  // segments are isolated: changing segment 3's keys leaves segments 0-2 unchanged
  auto k2 = k;
  for (int64_t i = (int64_t)cu[3] * NH * hd; i < N * NH * hd; i++) k2[(size_t)i] += 1.0f;
  std::vector<float> g2((size_t)N * NH * hd);
  attention_segments(pool, g2.data(), nullptr, q.data(), k2.data(), v.data(), cu.data(), 4, NH, hd);
  bool isolated = true, changed = false;
  for (int64_t i = 0; i < N * NH * hd; i++) {
    if (i < (int64_t)cu[3] * NH * hd) isolated = isolated && g2[(size_t)i] == g[(size_t)i];
    else changed = changed || g2[(size_t)i] != g[(size_t)i];
  }
  report(isolated && changed, "attention_segments: segments are isolated", "");
  // backward: the lse-based threaded version against the materialized reference, and
  // finite differences at a small shape (segments of 3, 1 and 4 rows)
  {
    auto R = randn((size_t)N * NH * hd);
    std::vector<float> lse((size_t)N * NH), dq_r(q.size(), 0), dk_r(q.size(), 0), dv_r(q.size(), 0), dq_g(q.size(), 0), dk_g(q.size(), 0), dv_g(q.size(), 0);
    attention_segments(pool, g.data(), lse.data(), q.data(), k.data(), v.data(), cu.data(), 4, NH, hd);
    attention_segments_backward_ref(dq_r.data(), dk_r.data(), dv_r.data(), R.data(), q.data(), k.data(), v.data(), cu.data(), 4, NH, hd);
    attention_segments_backward(pool, dq_g.data(), dk_g.data(), dv_g.data(), R.data(), g.data(), lse.data(), q.data(), k.data(), v.data(), cu.data(), 4, NH, hd);
    compare("attention_segments_backward dq vs reference", dq_g, dq_r, 1e-4f, 1e-3f);
    compare("attention_segments_backward dk vs reference", dk_g, dk_r, 1e-4f, 1e-3f);
    compare("attention_segments_backward dv vs reference", dv_g, dv_r, 1e-4f, 1e-3f);
    const std::vector<int32_t> cs = {0, 3, 4, 8};
    const size_t ns = (size_t)8 * NH * hd;
    auto qs = randn(ns), ks = randn(ns), vs = randn(ns), Rs = randn(ns);
    std::vector<float> os(ns), ls((size_t)8 * NH), dqs(ns, 0), dks(ns, 0), dvs(ns, 0);
    attention_segments(pool, os.data(), ls.data(), qs.data(), ks.data(), vs.data(), cs.data(), 3, NH, hd);
    attention_segments_backward(pool, dqs.data(), dks.data(), dvs.data(), Rs.data(), os.data(), ls.data(), qs.data(), ks.data(), vs.data(), cs.data(), 3, NH, hd);
    auto loss = [&] { attention_segments_ref(os.data(), qs.data(), ks.data(), vs.data(), cs.data(), 3, NH, hd); return weighted_sum(os, Rs); };
    fd_check("attention_segments fd dq", qs, dqs, loss);
    fd_check("attention_segments fd dk", ks, dks, loss);
    fd_check("attention_segments fd dv", vs, dvs, loss);
  }
  // the vision rotary embedding by hand: hd = 8, sections {2, 2} (rows h, w), frequencies restart:
  // pair (i, i+4): i=0 angle h*1, i=1 angle h*theta^(-1/2), i=2 angle w*1, i=3 angle w*theta^(-1/2)
  const int sec[] = {2, 2};
  RopeSpec spec{8, 10000.0f, 2, sec, true};
  int32_t pos[] = {3, 5};  // one token: h = 3, w = 5
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  rope_forward_ref(x.data(), pos, spec, 1, 1);
  const double a[4] = {3.0, 3.0 / 100.0, 5.0, 5.0 / 100.0};
  std::vector<float> want(8);
  const double in[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  for (int i = 0; i < 4; i++) {
    want[(size_t)i] = (float)(in[i] * std::cos(a[i]) - in[i + 4] * std::sin(a[i]));
    want[(size_t)i + 4] = (float)(in[i + 4] * std::cos(a[i]) + in[i] * std::sin(a[i]));
  }
  compare("vision rope (frequencies restart per section) by hand", x, want, 1e-5f, 1e-5f);
}

// exp_inline (the vectorizable e^x of softmax weights and sigmoids) against std::exp: within
// 3e-7 relative on [-87.3, 88] (every 1/64 step, plus random points), 0 below, e^88 above.
void test_exp_inline() {
  double worst = 0;
  std::vector<float> xs;
  for (float x = -87.3f; x <= 88.0f; x += 1.0f / 64) xs.push_back(x);
  std::uniform_real_distribution<float> u(-87.3f, 88.0f);
  for (int i = 0; i < 20000; i++) xs.push_back(u(rng_state));
  for (float x : xs) worst = std::max(worst, std::fabs((double)exp_inline(x) - std::exp((double)x)) / std::exp((double)x));
  char buf[96];
  std::snprintf(buf, sizeof buf, "max_rel_err=%.3g over %zu points (tol 3e-7)", worst, xs.size());
  report(worst <= 3e-7, "exp_inline vs std::exp", buf);
  const bool edges = exp_inline(-88.0f) == 0.0f && exp_inline(-INFINITY) == 0.0f && exp_inline(0.0f) == 1.0f && exp_inline(100.0f) == exp_inline(88.0f) && std::isfinite(exp_inline(1e30f));
  report(edges, "exp_inline edges", "0 below -87.3 and at -inf, e^0 = 1, clamped (finite) above 88");
}

// Back-to-back parallel_for calls with workers spinning, sleeping, or both (spin 0 and a
// spin long enough to span the gaps): every item exactly once each time.
void test_threadpool_spin() {
  for (int spin : {0, 50, 5000}) {
    ThreadPool pool(3, spin);
    bool ok = true;
    std::vector<int64_t> sum(3);
    for (int rep = 0; rep < 2000 && ok; rep++) {
      const int64_t n = 1 + rep % 97;
      std::vector<int> seen((size_t)n, 0);
      pool.parallel_for(n, [&](int, int64_t a, int64_t b) {
        for (int64_t i = a; i < b; i++) seen[(size_t)i]++;
      });
      for (int v : seen) ok = ok && v == 1;
      if (rep % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let the workers fall asleep
    }
    report(ok, "parallel_for spin " + std::to_string(spin) + "us", "2000 calls, sleeps between some");
  }
}

void test_elementwise(ThreadPool& pool) {
  const int n = 37;
  auto g = randn(n, 2.0f), u = randn(n), R = randn(n);
  std::vector<float> o_r(n), o_g(n);
  swiglu_forward_ref(o_r.data(), g.data(), u.data(), n);
  swiglu_forward(pool, o_g.data(), g.data(), u.data(), n);
  compare("swiglu_forward", o_g, o_r, 1e-7f, 1e-6f);  // exp_inline: a few ulp
  {  // a long vector through the vectorized loops, with gates far past exp's clamps
    const int m = 4099;
    auto gl = randn(m, 30.0f), ul = randn(m), dl = randn(m);
    std::vector<float> a(m), b(m), dga(m, 0), dua(m, 0), dgb(m, 0), dub(m, 0);
    swiglu_forward_ref(a.data(), gl.data(), ul.data(), m);
    swiglu_forward(pool, b.data(), gl.data(), ul.data(), m);
    compare("swiglu_forward long, |gate| up to ~120", b, a, 1e-6f, 1e-6f);
    swiglu_backward_ref(dga.data(), dua.data(), dl.data(), gl.data(), ul.data(), m);
    swiglu_backward(pool, dgb.data(), dub.data(), dl.data(), gl.data(), ul.data(), m);
    compare("swiglu_backward long dgate", dgb, dga, 1e-6f, 1e-5f);
    compare("swiglu_backward long dup", dub, dua, 1e-6f, 1e-5f);
  }
  std::vector<float> dg(n, 0), du(n, 0);
  swiglu_backward(pool, dg.data(), du.data(), R.data(), g.data(), u.data(), n);
  auto loss = [&] { swiglu_forward_ref(o_r.data(), g.data(), u.data(), n); return weighted_sum(o_r, R); };
  fd_check("swiglu fd dgate", g, dg, loss);
  fd_check("swiglu fd dup", u, du, loss);

  std::vector<float> gl_r(n), gl_g(n), dgl(n, 0);
  gelu_forward_ref(gl_r.data(), g.data(), n);
  gelu_forward(pool, gl_g.data(), g.data(), n);
  compare("gelu_forward", gl_g, gl_r, 0, 0);
  std::vector<float> x3 = {-1.0f, 0.0f, 2.0f}, y3(3);
  gelu_forward_ref(y3.data(), x3.data(), 3);  // x Phi(x): Phi(-1) = 0.158655, Phi(2) = 0.977250
  compare("gelu by hand (erf form)", y3, {-0.158655254f, 0.0f, 1.954499736f}, 1e-6f, 1e-6f);
  gelu_backward(pool, dgl.data(), R.data(), g.data(), n);
  auto gloss = [&] { gelu_forward_ref(gl_r.data(), g.data(), n); return weighted_sum(gl_r, R); };
  fd_check("gelu fd", g, dgl, gloss);

  const int V = 11, C = 5, N = 9;
  std::vector<int32_t> tok = {3, 1, 3, 0, 10, 3, 7, 1, 2};  // repeats must accumulate
  auto table = randn(V * C), Rn = randn(N * C);
  std::vector<float> e_r(N * C), e_g(N * C);
  embedding_forward_ref(e_r.data(), tok.data(), table.data(), N, C);
  embedding_forward(pool, e_g.data(), tok.data(), table.data(), N, C);
  compare("embedding_forward", e_g, e_r, 0, 0);
  std::vector<float> dt_r(V * C, 0), dt_g(V * C, 0);
  embedding_backward_ref(dt_r.data(), Rn.data(), tok.data(), N, C);
  embedding_backward(pool, dt_g.data(), Rn.data(), tok.data(), N, C);
  compare("embedding_backward", dt_g, dt_r, 1e-6f, 0);
  auto eloss = [&] { embedding_forward_ref(e_r.data(), tok.data(), table.data(), N, C); return weighted_sum(e_r, Rn); };
  fd_check("embedding fd", table, dt_g, eloss, 40);
}

void test_adamw(ThreadPool& pool) {
  const int n = 101;
  auto p = randn(n), g = randn(n);
  std::vector<float> m(n, 0), v(n, 0);
  auto p2 = p, m2 = m, v2 = v;
  AdamWConfig cfg{1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f};
  for (int t = 1; t <= 3; t++) {
    adamw_update_ref(p.data(), m.data(), v.data(), g.data(), n, cfg, t, 0.5f);
    adamw_update(pool, p2.data(), m2.data(), v2.data(), g.data(), n, cfg, t, 0.5f);
  }
  compare("adamw_update vs reference", p2, p, 0, 0);
  // by hand, one step from m = v = 0: p1 = p0 (1 - lr wd) - lr * sign(g) (bias correction makes |m^/sqrt(v^)| = 1)
  std::vector<float> q = {1.0f, -2.0f}, gq = {0.3f, -4.0f}, mq(2, 0), vq(2, 0);
  adamw_update_ref(q.data(), mq.data(), vq.data(), gq.data(), 2, cfg, 1, 1.0f);
  compare("adamw first step by hand", q, {1.0f * (1 - 1e-3f) - 1e-2f, -2.0f * (1 - 1e-3f) + 1e-2f}, 1e-6f, 0);
  const double sq = grad_sq_norm(pool, gq.data(), 2);
  report(std::fabs(sq - (0.09 + 16.0)) < 1e-5 && std::fabs(clip_scale(sq, 1.0f) * std::sqrt(sq) - 1.0) < 1e-5 && clip_scale(sq, 100.0f) == 1.0f, "gradient clipping scale", "");
}

// The chunked LM head with its cross-entropy (head.h) against the reference that holds every
// logit in double: several chunks (chunk 16 < V = 50), ignored rows, f32 and bf16 heads, the
// fused input gradient, the weight gradient (recomputed and from kept logits), and finite
// differences. Tolerances: float sums over C = 24 products and V = 50 exponentials, ~1e-5.
void test_head(ThreadPool& pool) {
  const int K = 7, C = 24, V = 50;
  auto hidden = randn((size_t)K * C), head = randn((size_t)V * C, 0.5f);
  std::vector<int32_t> targets = {3, -100, 49, 0, 17, -100, 16};
  std::vector<uint16_t> head_bf((size_t)V * C);
  std::vector<float> head_r((size_t)V * C);  // the bf16 head's values in f32
  for (size_t i = 0; i < head.size(); i++) head_bf[i] = f32_to_bf16(head[i]), head_r[i] = bf16_to_f32(head_bf[i]);
  for (int bf = 0; bf < 2; bf++) {
    const ConstTensorRef h = bf ? ConstTensorRef{head_bf.data(), DType::BF16} : ConstTensorRef{head.data(), DType::F32};
    const std::string tag = bf ? " (bf16 head)" : "";
    std::vector<float> lse_r(K), lse_g(K), dh_r((size_t)K * C, 0.25f), dh_g = dh_r;
    int64_t kept_r = 0, kept_g = 0;
    const double loss_r = head_forward_ref(&kept_r, lse_r.data(), dh_r.data(), hidden.data(), targets.data(), h, 0.5f, K, C, V);
    // the Portable level: a bf16 head is widened, so the reference's exact products apply
    const double loss_g = head_forward(pool, Isa::Portable, &kept_g, lse_g.data(), dh_g.data(), nullptr, hidden.data(), targets.data(), h, 0.5f, K, C, V, 16);
    report(kept_r == 5 && kept_g == 5 && std::fabs(loss_g - loss_r) <= 1e-4 * std::max(1.0, std::fabs(loss_r)), "head_forward loss, chunked" + tag, std::to_string(loss_g) + " vs " + std::to_string(loss_r));
    compare("head_forward lse" + tag, lse_g, lse_r, 1e-5f, 1e-5f);
    compare("head_forward fused dhidden" + tag, dh_g, dh_r, 1e-5f, 1e-4f);
    // every logit written out (one chunk), and the best ISA of this CPU
    std::vector<float> logits((size_t)K * V), lse_b(K);
    int64_t kept_b = 0;
    const double loss_b = head_forward(pool, Isa::Amx, &kept_b, lse_b.data(), nullptr, logits.data(), hidden.data(), targets.data(), h, 0.5f, K, C, V);
    std::vector<float> want((size_t)K * V);
    matmul_forward_ref(want.data(), hidden.data(), bf ? head_r.data() : head.data(), nullptr, K, C, V);
    // at avx512bf16/amx a bf16 head rounds the activations to bf16 (matmul.h): ~2^-8 relative per product
    const float tol = bf && cpu_best_isa() >= Isa::Avx512Bf16 ? 2e-2f : 1e-4f;
    compare("head_forward logits out" + tag, logits, want, tol, tol);
    report(kept_b == 5 && std::fabs(loss_b - loss_r) <= 10 * tol * std::max(1.0, std::fabs(loss_r)), "head_forward loss with logits out" + tag, std::to_string(loss_b) + " vs " + std::to_string(loss_r));
  }
  // the weight gradient of an f32 head: recomputed from lse (chunked), and from kept logits
  std::vector<float> lse(K), logits((size_t)K * V);
  int64_t kept = 0;
  head_forward(pool, Isa::Portable, &kept, lse.data(), nullptr, logits.data(), hidden.data(), targets.data(), {head.data(), DType::F32}, 1.0f, K, C, V);
  std::vector<float> dW_r((size_t)V * C, 0.5f), dW_g = dW_r, dW_k = dW_r, dh_b((size_t)K * C, 0.0f), dh_f((size_t)K * C, 0.0f);
  head_backward_ref(dW_r.data(), hidden.data(), targets.data(), lse.data(), head.data(), 0.5f, K, C, V);
  head_backward(pool, Isa::Portable, dW_g.data(), dh_b.data(), hidden.data(), targets.data(), lse.data(), nullptr, head.data(), 0.5f, K, C, V, 16);
  head_backward(pool, Isa::Portable, dW_k.data(), nullptr, hidden.data(), targets.data(), lse.data(), logits.data(), head.data(), 0.5f, K, C, V);
  compare("head_backward dhead, recomputed in chunks", dW_g, dW_r, 1e-5f, 1e-4f);
  compare("head_backward dhead, from kept logits", dW_k, dW_r, 1e-5f, 1e-4f);
  std::vector<float> lse2(K);
  int64_t k2 = 0;
  head_forward_ref(&k2, lse2.data(), dh_f.data(), hidden.data(), targets.data(), {head.data(), DType::F32}, 0.5f, K, C, V);
  compare("head_backward dhidden", dh_b, dh_f, 1e-5f, 1e-4f);
  // finite differences of the reference loss (scale 1/8 keeps the steps in float range)
  std::vector<float> dh((size_t)K * C, 0.0f), lse3(K), dW((size_t)V * C, 0.0f);
  head_forward(pool, Isa::Portable, &kept, lse3.data(), dh.data(), nullptr, hidden.data(), targets.data(), {head.data(), DType::F32}, 0.125f, K, C, V, 16);
  head_backward(pool, Isa::Portable, dW.data(), nullptr, hidden.data(), targets.data(), lse3.data(), nullptr, head.data(), 0.125f, K, C, V, 16);
  auto loss = [&] {
    std::vector<float> l(K);
    int64_t kk = 0;
    return head_forward_ref(&kk, l.data(), nullptr, hidden.data(), targets.data(), {head.data(), DType::F32}, 0.0f, K, C, V) / 8;
  };
  fd_check("head fd dhidden", hidden, dh, loss, 40);
  fd_check("head fd dhead", head, dW, loss, 40);
}

// The parameter store on the CPU backend: segments, f32 and bf16 storage, the trained set,
// and one optimizer step over two stores clipped by one global norm (against adamw_update_ref).
void test_param_store() {
  std::unique_ptr<Backend> be;
  std::string err;
  if (create_backend(BackendOptions{}, &be, &err) != Status::Ok) return report(false, "param store backend", err);
  ParamStore a(be.get()), b(be.get());
  a.add("w", {3, 4}, DType::BF16);
  a.add("n", {4}, DType::F32);
  report(a.end_segment(&err) == Status::Ok, "param store segment 0", err);
  a.add("lora", {2, 5}, DType::F32);
  report(a.end_segment(&err) == Status::Ok && a.segments() == 2, "param store segment 1", err);
  auto w = randn(12), n = randn(4), l = randn(10);
  a.set(0, w.data());
  a.set(1, n.data());
  a.set(2, l.data());
  std::vector<float> gw(12), gn(4), gl(10), wr(12);
  a.get(0, gw.data());
  a.get(1, gn.data());
  a.get(2, gl.data());
  for (int i = 0; i < 12; i++) wr[(size_t)i] = round_bf16(w[(size_t)i]);
  compare("param store bf16 round trip (round to nearest even)", gw, wr, 0, 0);
  compare("param store f32 round trip", gn, n, 0, 0);
  report(a.set_trainable(0, true, &err) == Status::InvalidArgument && err.find("'w'") != std::string::npos, "param store refuses to train a bf16 tensor", err);
  report(a.set_trainable(1, true, &err) == Status::Ok && a.trainable_size() == 10 && a.grad(0) == nullptr && a.grad(2) != nullptr, "param store trains segment 1 only", "");
  b.add("v", {6}, DType::F32);
  b.end_segment(&err);
  b.set_trainable(0, true, &err);
  auto v = randn(6);
  b.set(0, v.data());
  // gradients, then one step over both with a clipping norm below the global norm
  auto ga = randn(10), gb = randn(6);
  be->upload(a.grad(2), ga.data(), sizeof(float) * 10);
  be->upload(b.grad(0), gb.data(), sizeof(float) * 6);
  double sq = 0;
  for (float x : ga) sq += (double)x * x;
  for (float x : gb) sq += (double)x * x;
  const AdamWConfig cfg{1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f};
  ParamStore* both[2] = {&a, &b};
  const double norm = optimizer_step(both, 2, cfg, 1.0f);
  const float scale = clip_scale(sq, 1.0f);
  std::vector<float> ma(10, 0), va(10, 0), mb(6, 0), vb(6, 0);
  adamw_update_ref(l.data(), ma.data(), va.data(), ga.data(), 10, cfg, 1, scale);
  adamw_update_ref(v.data(), mb.data(), vb.data(), gb.data(), 6, cfg, 1, scale);
  std::vector<float> la(10), vv(6), z(10);
  a.get(2, la.data());
  b.get(0, vv.data());
  a.get_grad(2, z.data());
  report(std::fabs(norm - std::sqrt(sq)) < 1e-4 * std::sqrt(sq) && a.step() == 1 && b.step() == 1, "optimizer_step returns the global norm", std::to_string(norm));
  compare("optimizer_step over two stores, one clipping norm (store a)", la, l, 1e-7f, 1e-6f);
  compare("optimizer_step over two stores, one clipping norm (store b)", vv, v, 1e-7f, 1e-6f);
  compare("optimizer_step zeroes the gradients", z, std::vector<float>(10, 0.0f), 0, 0);
  std::vector<float> m, vs;
  a.optimizer_state(&m, &vs);
  compare("optimizer state is (m, v) of the trained tensors", m, ma, 1e-7f, 1e-6f);
  report(a.set_optimizer_state(1, std::vector<float>(9), std::vector<float>(9), &err) == Status::InvalidArgument, "optimizer state of the wrong size is refused", err);
  a.truncate(1);
  report(a.tensors().size() == 2 && a.trainable_size() == 0 && a.step() == 0, "param store truncate drops segment 1 and its training state", "");
}

// ---- GEMM core (gemm.h): every path this CPU has, forced through the isa cap ----
// Each case: C (M, N) (+)= A (M, K) . B (K, N) on fresh random inputs, in four layouts (the
// linear layer's forward A . W^T, dinp A . W, dweight A^T . B, and both operands transposed),
// row strides padded on every other shape, C accumulated into or overwritten, B f32 or bf16,
// against gemm_ref (products and sums in double). Per element, with S = sum_k |A(i,k) B(k,j)|
// (+ |C0| when accumulating), the error bound is tol * S:
//   f32 paths (f32 FMA, and bf16 B widened exactly): tol = 1e-5. Summing K f32 terms in
//     blocks errs by at most ~(kc + K / kc) 2^-24 S in the worst case, ~sqrt(K) 2^-24 S in
//     practice (2e-6 at K = 530).
//   bf16 paths (avx512bf16, amx): against the reference on bf16-rounded A (what they multiply;
//     the bf16 x bf16 products are exact in f32), the same tol = 1e-5; and against the
//     unrounded reference, tol = 5e-3 (rounding A to bf16 moves each term by <= 2^-9 of it).
// Shapes are ragged on purpose: M, N, K off every block size, K = 1, N = 1, M = 1 (GEMV), M past
// mc, N past nc, K past kc; narrow N (LoRA's rank 16) runs transposed.
struct GemmCase {
  int64_t M, N, K;
};

std::vector<uint16_t> to_bf16(std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); i++) h[i] = f32_to_bf16(v[i]), v[i] = bf16_to_f32(h[i]);
  return h;
}

void test_gemm(ThreadPool& pool) {
  const Isa isas[] = {Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx};
  const char* forms[] = {"forward", "dinp", "dweight", "tt"};
  const std::vector<GemmCase> cases = {{1, 1, 1}, {1, 37, 5}, {3, 50, 70}, {8, 100, 33}, {9, 70, 1}, {13, 1, 40}, {50, 33, 17}, {64, 16, 96}, {64, 96, 16},
                                       {67, 129, 300}, {130, 64, 530}, {37, 2100, 20}, {490, 128, 24}, {40, 40, 64}};
  // worst error / bound per (isa, form, dtype), and the paths each ran
  double worst[5][4][2] = {}, worst_loose[5][4] = {};
  std::string paths[5][4][2];
  for (size_t ci = 0; ci < cases.size(); ci++) {
    const auto [M, N, K] = cases[ci];
    const int64_t pad = ci % 2 ? 3 : 0;
    for (int f = 0; f < 4; f++) {
      const bool at = f == 2 || f == 3, bt = f == 0 || f == 3;  // A stored (K, M); B stored (N, K)
      const int64_t sam = at ? 1 : K + pad, sak = at ? M + pad : 1, sbk = bt ? 1 : N + pad, sbn = bt ? K + pad : 1, ldc = N + pad;
      auto A = randn((size_t)((at ? K : M) * (at ? M + pad : K + pad)));
      auto B = randn((size_t)((bt ? N : K) * (bt ? K + pad : N + pad)));
      std::vector<float> Bw = B;
      const std::vector<uint16_t> Bh = to_bf16(Bw);  // Bw: the bf16 values, widened
      std::vector<float> Ar(A.size());
      for (size_t i = 0; i < A.size(); i++) Ar[i] = round_bf16(A[i]);
      const auto C0 = randn((size_t)(M * ldc));
      for (int d = 0; d < 2; d++) {
        const ConstTensorRef Bref = d == 0 ? ConstTensorRef{B.data(), DType::F32} : ConstTensorRef{Bh.data(), DType::BF16};
        const float* Bv = d == 0 ? B.data() : Bw.data();
        for (int acc = 0; acc < 2; acc++) {
          // S(i, j) and the two references
          std::vector<float> S((size_t)(M * ldc)), ref = C0, ref_r = C0;
          gemm_ref(ref.data(), ldc, A.data(), sam, sak, Bref, sbk, sbn, M, N, K, acc, false);
          gemm_ref(ref_r.data(), ldc, A.data(), sam, sak, Bref, sbk, sbn, M, N, K, acc, true);
          for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
              double s = acc ? std::fabs(C0[i * ldc + j]) : 0.0;
              for (int64_t k = 0; k < K; k++) s += std::fabs((double)A[i * sam + k * sak] * Bv[k * sbk + j * sbn]);
              S[i * ldc + j] = (float)s + 1e-30f;
            }
          for (int ii = 0; ii < 5; ii++) {
            if (!cpu_supports(isas[ii])) continue;
            std::vector<float> got = C0;
            gemm(pool, isas[ii], got.data(), ldc, A.data(), sam, sak, Bref, sbk, sbn, M, N, K, acc);
            const bool rounds = gemm_path_rounds_to_bf16(isas[ii], Bref.dtype, M, N, K, sbk, sbn);
            const std::string path = gemm_path(isas[ii], Bref.dtype, M, N, K, sbk, sbn);
            if (("," + paths[ii][f][d] + ",").find("," + path + ",") == std::string::npos) paths[ii][f][d] += (paths[ii][f][d].empty() ? "" : ",") + path;
            for (int64_t i = 0; i < M; i++)
              for (int64_t j = 0; j < N; j++) {
                const size_t e = (size_t)(i * ldc + j);
                const double err = std::fabs((double)got[e] - (rounds ? ref_r[e] : ref[e])) / (1e-5 * S[e]);
                worst[ii][f][d] = std::max(worst[ii][f][d], std::isfinite(got[e]) ? err : INFINITY);
                if (rounds) worst_loose[ii][f] = std::max(worst_loose[ii][f], std::fabs((double)got[e] - ref[e]) / (5e-3 * S[e]));
              }
            for (int64_t i = 0; i < M && pad; i++)  // the padding of C's rows is never written
              for (int64_t j = N; j < ldc; j++) worst[ii][f][d] = std::max(worst[ii][f][d], got[(size_t)(i * ldc + j)] == C0[(size_t)(i * ldc + j)] ? 0.0 : INFINITY);
          }
        }
      }
    }
  }
  for (int ii = 0; ii < 5; ii++) {
    const std::string isa = isa_name(isas[ii]);
    if (!cpu_supports(isas[ii])) {
      std::printf("SKIP gemm %s: this CPU has no %s\n", isa.c_str(), isa.c_str());
      continue;
    }
    for (int f = 0; f < 4; f++)
      for (int d = 0; d < 2; d++) {
        char buf[200];
        std::snprintf(buf, sizeof buf, "%zu shapes x accumulate on/off, paths %s: max err / (1e-5 S) = %.3g", cases.size(), paths[ii][f][d].c_str(), worst[ii][f][d]);
        report(worst[ii][f][d] <= 1.0, "gemm " + isa + " " + (d ? "bf16 " : "f32 ") + forms[f], buf);
      }
    if (isas[ii] >= Isa::Avx512Bf16)
      for (int f = 0; f < 4; f++) {
        char buf[120];
        std::snprintf(buf, sizeof buf, "(the reference on f32 activations): max err / (5e-3 S) = %.3g", worst_loose[ii][f]);
        report(worst_loose[ii][f] <= 1.0, "gemm " + isa + " bf16 unrounded " + forms[f], buf);
      }
  }
}

// The linear layer at each level with f32 and bf16 weights: forward with bias, backward with
// every gradient accumulating, against matmul_*_ref on the widened weight (and on bf16-rounded
// activations where the path rounds them). Tolerances as in test_matmul, scaled: these are
// sums of C, OC or N f32 terms.
void test_matmul_isa(ThreadPool& pool) {
  for (Isa isa : {Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16, Isa::Amx}) {
    if (!cpu_supports(isa)) continue;  // gemm's checks say SKIP for it
    for (auto [N, C, OC] : std::vector<std::tuple<int, int, int>>{{4, 40, 70}, {70, 96, 130}}) {
      for (DType dt : {DType::F32, DType::BF16}) {
        auto inp = randn((size_t)N * C), w = randn((size_t)OC * C), b = randn(OC), dout = randn((size_t)N * OC);
        const std::vector<uint16_t> wh = to_bf16(w);  // w: the bf16 values, for the reference
        if (dt == DType::F32) w = randn((size_t)OC * C);
        const ConstTensorRef W = dt == DType::F32 ? ConstTensorRef{w.data(), DType::F32} : ConstTensorRef{wh.data(), DType::BF16};
        const bool fr = gemm_path_rounds_to_bf16(isa, dt, N, OC, C, 1, C), br = gemm_path_rounds_to_bf16(isa, dt, N, C, OC, C, 1);
        auto inp_r = inp, dout_r = dout;
        for (auto& x : inp_r) x = fr ? round_bf16(x) : x;
        for (auto& x : dout_r) x = br ? round_bf16(x) : x;
        std::vector<float> ref((size_t)N * OC), got((size_t)N * OC);
        matmul_forward_ref(ref.data(), inp_r.data(), w.data(), b.data(), N, C, OC);
        matmul_forward(pool, isa, got.data(), inp.data(), W, b.data(), N, C, OC);
        const std::string tag = std::string(isa_name(isa)) + " " + dtype_name(dt) + " N=" + std::to_string(N) + ",C=" + std::to_string(C) + ",OC=" + std::to_string(OC);
        compare("matmul_forward " + tag, got, ref, 1e-4f * std::sqrt((float)C), 1e-4f);
        std::vector<float> di_r((size_t)N * C, 0.5f), dw_r((size_t)OC * C, 0.5f), db_r(OC, 0.5f), di_x((size_t)N * C, 0.5f);
        std::vector<float> di_g = di_r, dw_g = dw_r, db_g = db_r;
        matmul_backward_ref(di_r.data(), nullptr, nullptr, dout_r.data(), inp.data(), w.data(), N, C, OC);
        matmul_backward_ref(nullptr, dw_r.data(), db_r.data(), dout.data(), inp.data(), w.data(), N, C, OC);
        matmul_backward(pool, isa, di_g.data(), dt == DType::F32 ? dw_g.data() : nullptr, db_g.data(), dout.data(), inp.data(), W, N, C, OC);
        compare("matmul_backward dinp " + tag, di_g, di_r, 1e-4f * std::sqrt((float)OC), 1e-4f);
        compare("matmul_backward dbias " + tag, db_g, db_r, 1e-4f * std::sqrt((float)N), 1e-4f);
        if (dt == DType::F32) compare("matmul_backward dweight " + tag, dw_g, dw_r, 1e-4f * std::sqrt((float)N), 1e-4f);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 3;  // 3 > cores here: uneven splits get exercised
  ThreadPool pool(threads);
  test_threadpool_grain(pool);
  test_threadpool_spin();
  test_exp_inline();
  test_matmul(pool);
  test_gemm(pool);
  test_matmul_isa(pool);
  test_rmsnorm(pool);
  test_layernorm_gelu_tanh(pool);
  test_rope(pool);
  test_attention(pool);
  test_vision_attention_and_rope(pool);
  test_elementwise(pool);
  test_adamw(pool);
  test_head(pool);
  test_param_store();
  std::printf("%d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
