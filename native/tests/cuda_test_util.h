// Helpers of the CUDA tests (test_cuda.cpp, test_cuda_model.cpp): random inputs, host <->
// backend copies, and the PASS/FAIL/SKIP lines that test/native/cuda.test.ts reads.
#pragma once

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../core/backend.h"

namespace vlatext {
namespace cudatest {

struct Report {
  int failures = 0, passes = 0;
  void line(bool ok, const std::string& name, const std::string& detail) {
    std::printf("%s %s %s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.c_str());
    std::fflush(stdout);
    ok ? passes++ : failures++;
  }
  void skip(const std::string& name, const std::string& why) {
    std::printf("SKIP %s: %s\n", name.c_str(), why.c_str());
    std::fflush(stdout);
  }
  // max |a - b| / (atol + rtol |b|) <= 1, b the reference
  void compare(const std::string& name, const std::vector<float>& a, const std::vector<float>& b, double atol, double rtol) {
    double worst = 0, worst_abs = 0;
    bool finite = a.size() == b.size();
    for (size_t i = 0; i < a.size() && i < b.size(); i++) {
      const double e = std::fabs((double)a[i] - b[i]);
      worst = std::max(worst, e / (atol + rtol * std::fabs((double)b[i])));
      worst_abs = std::max(worst_abs, e);
      if (!std::isfinite(a[i]) && std::isfinite(b[i])) finite = false;
    }
    char buf[200];
    std::snprintf(buf, sizeof buf, "n=%zu max_abs_err=%.3g (atol %.1g rtol %.1g)", b.size(), worst_abs, atol, rtol);
    line(finite && worst <= 1.0, name, buf);
  }
  void compare_scalar(const std::string& name, double a, double b, double rtol) {
    char buf[200];
    std::snprintf(buf, sizeof buf, "got %.10g ref %.10g (rtol %.1g)", a, b, rtol);
    line(std::isfinite(a) && std::fabs(a - b) <= rtol * std::max(1.0, std::fabs(b)), name, buf);
  }
};

inline std::vector<float> randn(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

inline std::vector<float> rounded_bf16(std::vector<float> v) {
  for (auto& x : v) x = round_bf16(x);
  return v;
}

// A host vector on a backend (f32 or converted to bf16), and back.
template <typename T>
Buf<T> put(Backend& be, const std::vector<T>& host) {
  Buf<T> b(&be);
  b.upload(host.data(), (int64_t)host.size());
  return b;
}
inline Buf<uint16_t> put_bf16(Backend& be, const std::vector<float>& host) {
  std::vector<uint16_t> h(host.size());
  for (size_t i = 0; i < h.size(); i++) h[i] = f32_to_bf16(host[i]);
  return put(be, h);
}
template <typename T>
std::vector<T> get(Backend& be, const Buf<T>& b) {
  std::vector<T> h((size_t)b.size());
  if (!h.empty()) be.download(h.data(), b.data(), sizeof(T) * h.size());
  return h;
}

}  // namespace cudatest
}  // namespace vlatext
