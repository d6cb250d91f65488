// Kernel timing for bench/engine.ts, printed as JSON lines: this machine's peaks (f32 FMA,
// vdpbf16ps and AMX issue rates in a register-only loop, DRAM read bandwidth), then the shipped
// linear layer (matmul_forward / matmul_backward over gemm.h) at the shapes the models run, each
// path forced through the isa cap, on 1 thread and on all, with the scalar reference on the
// smaller shapes and OpenBLAS's sgemm when a library is found (dlopen: libopenblas.so.0, or the
// file named by VLATEXT_BLAS; nothing links against it). Best of several runs: the CPU may be
// shared, so the best run is the one least disturbed.
// Then causal attention (attention_forward / attention_backward, the training kernels) at the
// shapes the models train at.
//   vlatext_bench_kernels [--quick] [--filter=SUBSTRING] [--peaks-only]
#include <dlfcn.h>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define VLATEXT_X86 1
#endif

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../core/threadpool.h"
#include "../kernels/attention.h"
#include "../kernels/gemm.h"
#include "../kernels/matmul.h"

using namespace vlatext;

// gcc 12 warns falsely about the _mm512_undefined_* placeholders inside _mm512_reduce_add_ps
// (gcc bug 105593)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Best time (s) of f: at least `min_reps` runs and about `budget` seconds, after one warm-up.
double best_time(const std::function<void()>& f, int min_reps, double budget) {
  f();
  double best = 1e30, start = now_s();
  for (int r = 0; r < min_reps || (now_s() - start < budget && r < 200); r++) {
    const double t0 = now_s();
    f();
    best = std::min(best, now_s() - t0);
  }
  return best;
}

#ifdef VLATEXT_X86
// ---- peaks: independent accumulator chains, nothing but the instruction under test ----
__attribute__((target("avx512f"))) float fma_loop(int64_t iters) {
  __m512 a[16];
  const __m512 x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.999999f);
  for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
  for (int64_t it = 0; it < iters; it++)
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
  __m512 s = a[0];
  for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512bf16"))) float dpbf16_loop(int64_t iters) {
  __m512 a[16];
  const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80);
  for (int i = 0; i < 16; i++) a[i] = _mm512_set1_ps((float)i);
  for (int64_t it = 0; it < iters; it++)
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) a[i] = _mm512_dpbf16_ps(a[i], x, x);
  __m512 s = a[0];
  for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

struct alignas(64) TileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

__attribute__((target("amx-tile,amx-bf16"))) float amx_loop(int64_t iters) {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  __asm__ volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
  alignas(64) uint16_t src[4 * 512];
  for (auto& v : src) v = 0x3c00;
  alignas(64) float out[256];
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, src, 64);
  _tile_loadd(5, src + 512, 64);
  _tile_loadd(6, src + 1024, 64);
  _tile_loadd(7, src + 1536, 64);
  for (int64_t i = 0; i < iters; i++) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 64);
  _tile_release();
  return out[0];
}

// GFLOP/s of `threads` threads each running loop(iters), `flops_per_iter` a thread and iteration.
double peak(float (*loop)(int64_t), int64_t iters, double flops_per_iter, int threads) {
  volatile float sink = 0;
  const double t = best_time([&] {
    std::vector<std::thread> ts;
    for (int i = 0; i < threads; i++) ts.emplace_back([&] { sink = loop(iters); });
    for (auto& th : ts) th.join();
  }, 3, 0.5);
  (void)sink;
  return threads * (double)iters * flops_per_iter / t / 1e9;
}

// DRAM read GB/s: `threads` threads summing disjoint halves of a 1 GB buffer with 64-byte loads.
__attribute__((target("avx512f"))) float sum_lines(const float* p, int64_t n) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

double dram_gbps(ThreadPool& pool, const float* buf, int64_t n) {
  volatile float sink = 0;
  const double t = best_time([&] {
    pool.parallel_for(pool.size(), [&](int, int64_t b, int64_t e) {
      for (int64_t p = b; p < e; p++) {
        int64_t lo, hi;
        split_range(n / 64, pool.size(), (int)p, &lo, &hi);
        sink = sum_lines(buf + lo * 64, (hi - lo) * 64);
      }
    }, pool.size(), 1);
  }, 3, 1.0);
  (void)sink;
  return (double)n * 4 / t / 1e9;
}

#endif  // VLATEXT_X86

// ---- OpenBLAS, found at run time ----
// cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
using sgemm_t = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using set_threads_t = void (*)(int);

struct Blas {
  void* lib = nullptr;
  std::string name = "none";
  sgemm_t sgemm = nullptr;
  set_threads_t set_threads = nullptr;
};

Blas find_blas() {
  Blas b;
  std::vector<std::string> libs = {"libopenblas.so.0", "libopenblas.so"};
  if (const char* env = std::getenv("VLATEXT_BLAS")) libs.insert(libs.begin(), env);
  for (const std::string& l : libs) {
    void* h = dlopen(l.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    // OpenBLAS, or the copy SciPy wheels bundle (its symbols prefixed scipy_; 32-bit ints)
    for (const char* prefix : {"", "scipy_"}) {
      auto gemm = (sgemm_t)dlsym(h, (std::string(prefix) + "cblas_sgemm").c_str());
      if (!gemm) continue;
      b.lib = h, b.name = l, b.sgemm = gemm;
      b.set_threads = (set_threads_t)dlsym(h, (std::string(prefix) + "openblas_set_num_threads").c_str());
      return b;
    }
    dlclose(h);
  }
  return b;
}

// ---- the linear layer at model shapes ----
// form: "forward" out (N, OC) = inp . W^T; "dinp" dinp += dout . W; "dweight" dW += dout^T . inp.
// As a GEMM: M x Nn x K = N x OC x C, N x C x OC, OC x C x N.
struct Shape {
  const char* name;
  const char* form;
  int64_t N;
  int C, OC;
  DType wdtype;
};

void gemm_dims(const Shape& s, int64_t* M, int64_t* Nn, int64_t* K) {
  if (!std::strcmp(s.form, "forward")) *M = s.N, *Nn = s.OC, *K = s.C;
  else if (!std::strcmp(s.form, "dinp")) *M = s.N, *Nn = s.C, *K = s.OC;
  else *M = s.OC, *Nn = s.C, *K = s.N;
}

std::vector<Shape> shapes() {
  const DType F = DType::F32, H = DType::BF16;
  std::vector<Shape> v;
  auto layer = [&](const char* name, int64_t N, int C, int OC, DType dt, bool backward) {
    v.push_back({name, "forward", N, C, OC, dt});
    if (backward) {
      v.push_back({name, "dinp", N, C, OC, dt});
      if (dt == DType::F32) v.push_back({name, "dweight", N, C, OC, dt});
    }
  };
  // C = 384 (20M model, T = 512 rows), f32 weights
  layer("c384 q/o 384->384", 512, 384, 384, F, true);
  layer("c384 k/v 384->128", 512, 384, 128, F, true);
  layer("c384 mlp up 384->1024", 512, 384, 1024, F, true);
  layer("c384 mlp down 1024->384", 512, 1024, 384, F, true);
  layer("c384 lm head 384->8192", 512, 384, 8192, F, true);
  // C = 896 (Qwen2-0.5B widths): f32 (full fine-tune) and bf16 frozen base (LoRA)
  for (DType dt : {F, H}) {
    layer("c896 q/o 896->896", 512, 896, 896, dt, true);
    layer("c896 k/v 896->128", 512, 896, 128, dt, true);
    layer("c896 mlp up 896->4864", 512, 896, 4864, dt, true);
    layer("c896 mlp down 4864->896", 512, 4864, 896, dt, true);
  }
  layer("c896 lm head 896->151936", 512, 896, 151936, H, false);
  // LoRA rank 16: x . A^T (C -> 16) and (x A^T) . B^T (16 -> C), and their backward
  layer("lora A 384->16", 512, 384, 16, F, true);
  layer("lora B 16->384", 512, 16, 384, F, true);
  layer("lora A 896->16", 512, 896, 16, F, true);
  layer("lora B 16->896", 512, 16, 896, F, true);
  // the demo's model (C = 64, F = 128, ~600 rows)
  layer("demo mlp up 64->128", 592, 64, 128, F, true);
  layer("demo mlp down 128->64", 592, 128, 64, F, true);
  // decode: 1 .. 8 rows, the weight streamed (GB/s)
  for (int64_t M : {1, 4, 8}) {
    for (DType dt : {F, H}) {
      layer(M == 1 ? "decode x1 896->151936" : M == 4 ? "decode x4 896->151936" : "decode x8 896->151936", M, 896, 151936, dt, false);
      layer(M == 1 ? "decode x1 896->4864" : M == 4 ? "decode x4 896->4864" : "decode x8 896->4864", M, 896, 4864, dt, false);
      layer(M == 1 ? "decode x1 4864->896" : M == 4 ? "decode x4 4864->896" : "decode x8 4864->896", M, 4864, 896, dt, false);
    }
  }
  layer("decode x1 384->8192", 1, 384, 8192, F, false);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, peaks_only = false;
  std::string filter;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strncmp(argv[i], "--filter=", 9)) filter = argv[i] + 9;
    else if (!std::strcmp(argv[i], "--peaks-only")) peaks_only = true;
    else {
      std::fprintf(stderr, "usage: vlatext_bench_kernels [--quick] [--filter=SUBSTRING] [--peaks-only]\n");
      return 2;
    }
  }
  const double budget = quick ? 0.15 : 0.5;
  ThreadPool one(1), all(0);
  const Isa best = cpu_best_isa();
  std::printf("{\"kind\":\"machine\",\"threads\":%d,\"best_isa\":\"%s\"}\n", all.size(), isa_name(best));
#ifdef VLATEXT_X86
  {
    for (int th : {1, all.size()}) {
      if (best >= Isa::Avx512) std::printf("{\"kind\":\"peak\",\"what\":\"f32 fma zmm\",\"threads\":%d,\"gflops\":%.1f}\n", th, peak(fma_loop, 20000000, 16 * 16 * 2, th));
      if (best >= Isa::Avx512Bf16) std::printf("{\"kind\":\"peak\",\"what\":\"vdpbf16ps zmm\",\"threads\":%d,\"gflops\":%.1f}\n", th, peak(dpbf16_loop, 10000000, 16 * 16 * 4, th));
      if (best >= Isa::Amx) std::printf("{\"kind\":\"peak\",\"what\":\"amx tdpbf16ps\",\"threads\":%d,\"gflops\":%.1f}\n", th, peak(amx_loop, 500000, 4.0 * 16 * 16 * 32 * 2, th));
    }
    if (best >= Isa::Avx512) {
      const int64_t n = (int64_t)1 << 28;  // 1 GB
      float* buf = static_cast<float*>(std::aligned_alloc(64, (size_t)n * 4));
      if (buf) {
        all.parallel_for(n, [&](int, int64_t b, int64_t e) {
          for (int64_t i = b; i < e; i++) buf[i] = 1.0f;
        });
        std::printf("{\"kind\":\"bandwidth\",\"what\":\"dram read\",\"threads\":1,\"gbps\":%.1f}\n", dram_gbps(one, buf, n));
        std::printf("{\"kind\":\"bandwidth\",\"what\":\"dram read\",\"threads\":%d,\"gbps\":%.1f}\n", all.size(), dram_gbps(all, buf, n));
        std::free(buf);
      }
    }
  }
#endif
  std::fflush(stdout);
  if (peaks_only) return 0;

  Blas blas = find_blas();
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (const Shape& s : shapes()) {
    const std::string label = std::string(s.name) + " " + s.form + " " + dtype_name(s.wdtype);
    if (!filter.empty() && label.find(filter) == std::string::npos) continue;
    int64_t M, Nn, K;
    gemm_dims(s, &M, &Nn, &K);
    const bool gemv = s.N <= kGemvRows;
    std::vector<float> inp((size_t)(s.N * s.C)), w((size_t)s.OC * s.C), out((size_t)(s.N * s.OC)), dinp((size_t)(s.N * s.C)), dw((size_t)s.OC * s.C);
    for (auto& x : inp) x = nd(rng);
    for (auto& x : w) x = nd(rng) * 0.05f;
    std::vector<uint16_t> wh(s.wdtype == DType::BF16 ? w.size() : 0);
    for (size_t i = 0; i < wh.size(); i++) wh[i] = f32_to_bf16(w[i]);
    const ConstTensorRef W = s.wdtype == DType::F32 ? ConstTensorRef{w.data(), DType::F32} : ConstTensorRef{wh.data(), DType::BF16};
    const std::vector<float>& dout = out;  // any values will do
    auto run = [&](ThreadPool& pool, Isa isa) {
      if (!std::strcmp(s.form, "forward")) matmul_forward(pool, isa, out.data(), inp.data(), W, nullptr, s.N, s.C, s.OC);
      else if (!std::strcmp(s.form, "dinp")) matmul_backward(pool, isa, dinp.data(), nullptr, nullptr, dout.data(), inp.data(), W, s.N, s.C, s.OC);
      else matmul_backward(pool, isa, nullptr, dw.data(), nullptr, dout.data(), inp.data(), W, s.N, s.C, s.OC);
    };
    const double flops = 2.0 * M * Nn * K, bytes = (double)s.OC * s.C * dtype_size(s.wdtype);
    auto emit = [&](const char* path, int threads, double t) {
      std::printf("{\"kind\":\"%s\",\"shape\":\"%s\",\"form\":\"%s\",\"wdtype\":\"%s\",\"M\":%lld,\"N\":%lld,\"K\":%lld,\"path\":\"%s\",\"threads\":%d,\"ms\":%.4f,\"gflops\":%.2f,\"gbps\":%.2f}\n", gemv ? "gemv" : "gemm", s.name, s.form,
                  dtype_name(s.wdtype), (long long)M, (long long)Nn, (long long)K, path, threads, t * 1e3, flops / t / 1e9, bytes / t / 1e9);
      std::fflush(stdout);
    };
    // the scalar oracle, where it takes under a second or so
    if (flops <= 4e9 && s.wdtype == DType::F32) {
      const double t = best_time([&] {
        if (!std::strcmp(s.form, "forward")) matmul_forward_ref(out.data(), inp.data(), w.data(), nullptr, s.N, s.C, s.OC);
        else if (!std::strcmp(s.form, "dinp")) matmul_backward_ref(dinp.data(), nullptr, nullptr, dout.data(), inp.data(), w.data(), s.N, s.C, s.OC);
        else matmul_backward_ref(nullptr, dw.data(), nullptr, dout.data(), inp.data(), w.data(), s.N, s.C, s.OC);
      }, 1, quick ? 0.05 : 0.3);
      emit("ref", 1, t);
    }
    std::vector<Isa> levels = {Isa::Portable, Isa::Avx2, Isa::Avx512};
    if (s.wdtype == DType::BF16 && !gemv) levels.push_back(Isa::Avx512Bf16), levels.push_back(Isa::Amx);
    for (Isa isa : levels) {
      if (!cpu_supports(isa)) continue;
      if (isa == Isa::Portable && flops > 2e11) continue;  // the LM head: minutes
      for (ThreadPool* pool : {&one, &all}) {
        const double t = best_time([&] { run(*pool, isa); }, quick ? 1 : 3, budget);
        emit(gemm_path(isa, s.wdtype, M, Nn, K, !std::strcmp(s.form, "forward") ? 1 : s.C, !std::strcmp(s.form, "forward") ? s.C : 1), pool->size(), t);
        if (all.size() == 1) break;
      }
    }
    if (blas.sgemm && s.wdtype == DType::F32) {
      for (int th : {1, all.size()}) {
        if (blas.set_threads) blas.set_threads(th);
        // row-major: CblasRowMajor = 101, NoTrans = 111, Trans = 112
        const double t = best_time([&] {
          if (!std::strcmp(s.form, "forward")) blas.sgemm(101, 111, 112, (int)M, (int)Nn, (int)K, 1.0f, inp.data(), s.C, w.data(), s.C, 0.0f, out.data(), s.OC);
          else if (!std::strcmp(s.form, "dinp")) blas.sgemm(101, 111, 111, (int)M, (int)Nn, (int)K, 1.0f, dout.data(), s.OC, w.data(), s.C, 1.0f, dinp.data(), s.C);
          else blas.sgemm(101, 112, 111, (int)M, (int)Nn, (int)K, 1.0f, dout.data(), s.OC, inp.data(), s.C, 1.0f, dw.data(), s.C);
        }, quick ? 1 : 3, budget);
        emit(("openblas:" + blas.name).c_str(), th, t);
        if (all.size() == 1) break;
      }
    }
  }
  if (blas.lib) dlclose(blas.lib);

  // causal self-attention, training: forward (saves lse) and backward
  struct AttnCase {
    const char* name;
    AttnShape s;
  };
  const AttnCase cases[] = {
      {"vla0 tiny T=250 hd=16", {16, 250, 4, 2, 16}},   // the VLA-0 recipe on the tiny default: 56 numbers
      {"demo tiny T=40 hd=16", {16, 40, 4, 2, 16}},     // the demo's answers (7 digits)
      {"qwen2-0.5b T=256 hd=64", {4, 256, 14, 2, 64}},  // Qwen2.5-0.5B's heads
  };
  for (const AttnCase& c : cases) {
    const std::string label = std::string("attention ") + c.name;
    if (!filter.empty() && label.find(filter) == std::string::npos) continue;
    const AttnShape& a = c.s;
    const size_t nq = (size_t)a.B * a.T * a.NH * a.hd, nk = (size_t)a.B * a.T * a.KV * a.hd;
    std::vector<float> q(nq), k(nk), v(nk), dout(nq), out(nq), lse((size_t)a.B * a.NH * a.T), dq(nq), dk(nk), dv(nk);
    for (auto* x : {&q, &k, &v, &dout})
      for (auto& y : *x) y = nd(rng);
    // (query, key) pairs a causal mask keeps, times hd: the forward is 2 products (QK^T, PV),
    // the backward 4 (QK^T again, dO V^T, dS K, dS^T Q) plus dP^T dO's 1: 2 flops each
    const double pairs = (double)a.B * a.NH * a.T * (a.T + 1) / 2 * a.hd;
    for (ThreadPool* pool : {&one, &all}) {
      const double tf = best_time([&] { attention_forward(*pool, out.data(), lse.data(), q.data(), k.data(), v.data(), a); }, quick ? 1 : 3, budget);
      const double tb = best_time([&] { attention_backward(*pool, dq.data(), dk.data(), dv.data(), dout.data(), out.data(), lse.data(), q.data(), k.data(), v.data(), a); }, quick ? 1 : 3, budget);
      for (int pass = 0; pass < 2; pass++) {
        const double t = pass == 0 ? tf : tb, flops = pairs * 2 * (pass == 0 ? 2 : 5);
        std::printf("{\"kind\":\"attention\",\"shape\":\"%s\",\"pass\":\"%s\",\"B\":%d,\"T\":%d,\"NH\":%d,\"KV\":%d,\"hd\":%d,\"threads\":%d,\"ms\":%.4f,\"gflops\":%.2f}\n", c.name, pass == 0 ? "forward" : "backward", a.B, a.T, a.NH, a.KV, a.hd, pool->size(), t * 1e3,
                    flops / t / 1e9);
      }
      std::fflush(stdout);
      if (all.size() == 1) break;
    }
  }
  return 0;
}
