// Kernel timing, printed as JSON lines for bench/engine.ts: the scalar reference, the
// optimized kernel on 1 thread and on all threads, and OpenBLAS's sgemm when the
// library is present (loaded at run time with dlopen; nothing links against it).
#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "../core/threadpool.h"
#include "../kernels/matmul.h"

using namespace vlatext;

namespace {

double best_ms(const std::function<void()>& f, int reps) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
using sgemm_t = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);

}  // namespace

int main() {
  ThreadPool one(1), all(0);
  void* blas = nullptr;
  const char* blas_name = "none";
  for (const char* lib : {"libopenblas.so.0", "libopenblas.so", "libblas.so.3"})
    if ((blas = dlopen(lib, RTLD_NOW | RTLD_LOCAL))) {
      blas_name = lib;
      break;
    }
  sgemm_t sgemm = blas ? (sgemm_t)dlsym(blas, "cblas_sgemm") : nullptr;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  struct Shape { int N, C, OC; const char* what; };
  for (Shape s : {Shape{512, 384, 384, "attn q/o (T=512, C=384)"}, Shape{512, 384, 1024, "mlp up (C=384, F=1024)"}, Shape{512, 1024, 384, "mlp down (F=1024, C=384)"}, Shape{512, 384, 8192, "lm head (V=8192)"}, Shape{592, 64, 128, "demo mlp up (C=64, F=128)"}, Shape{592, 128, 64, "demo mlp down (F=128, C=64)"}}) {
    std::vector<float> inp((size_t)s.N * s.C), w((size_t)s.OC * s.C), out((size_t)s.N * s.OC);
    for (auto& x : inp) x = nd(rng);
    for (auto& x : w) x = nd(rng);
    const double flops = 2.0 * s.N * s.C * s.OC;
    const double ref = best_ms([&] { matmul_forward_ref(out.data(), inp.data(), w.data(), nullptr, s.N, s.C, s.OC); }, 2);
    const double t1 = best_ms([&] { matmul_forward(one, out.data(), inp.data(), w.data(), nullptr, s.N, s.C, s.OC); }, 5);
    const double tn = best_ms([&] { matmul_forward(all, out.data(), inp.data(), w.data(), nullptr, s.N, s.C, s.OC); }, 5);
    double tb = -1;
    // row-major out (N, OC) = inp (N, C) * w^T: CblasRowMajor=101, NoTrans=111, Trans=112
    if (sgemm) tb = best_ms([&] { sgemm(101, 111, 112, s.N, s.OC, s.C, 1.0f, inp.data(), s.C, w.data(), s.C, 0.0f, out.data(), s.OC); }, 5);
    std::printf("{\"kernel\":\"matmul_forward\",\"shape\":\"%s\",\"N\":%d,\"C\":%d,\"OC\":%d,\"threads\":%d,\"ref_gflops\":%.3f,\"opt1_gflops\":%.3f,\"optN_gflops\":%.3f,\"blas_gflops\":%.3f,\"blas\":\"%s\"}\n", s.what, s.N, s.C, s.OC,
                all.size(), flops / ref / 1e6, flops / t1 / 1e6, flops / tn / 1e6, tb > 0 ? flops / tb / 1e6 : -1.0, blas_name);
  }
  if (blas) dlclose(blas);
  return 0;
}
