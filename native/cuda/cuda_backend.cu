// The CUDA backend: the device seam (native/core/backend.h) on one GPU and one stream.
// Activations are f32 at the seam, weights f32 or bf16 (frozen), accumulation f32. Products
// go through cuBLASLt (loaded at run time, native/cuda/cublaslt.h) except the decode path's
// few-row products (gemv_rows) and, with cuda_builtin_gemm, all of them (gemm_builtin); a bf16
// weight is multiplied with its activations rounded to bf16 (as the CPU's AMX path does).
// Memory comes from the stream-ordered pool (cudaMallocAsync), so the model's short-lived
// buffers cost no device synchronization. Kernel failures are recorded (first one wins) and
// returned by sync(); a failed allocation returns nullptr as the seam asks.
#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "../core/backend.h"
#include "../kernels/adamw.h"
#include "../kernels/attention.h"
#include "../kernels/rope.h"
#include "cublaslt.h"
#include "kernels.h"

namespace vlatext {

namespace {

// Vocabulary rows per chunk of the LM head: the chunk's logits are (K, chunk) floats, kept
// under kHeadChunkFloats (256 MiB) whatever K is.
constexpr int64_t kHeadChunkFloats = int64_t(1) << 26;

class CudaBackend final : public Backend {
 public:
  ~CudaBackend() override {
    for (void* p : scratch_)
      if (p) cudaFreeAsync(p, stream_);
    cudaStreamSynchronize(stream_);
    if (lt_handle_) lt_.Destroy(lt_handle_);
    lt::unload(&lt_);
    if (workspace_) cudaFree(workspace_);
    cudaStreamDestroy(stream_);
  }

  static Status create(const BackendOptions& opt, std::unique_ptr<Backend>* out, std::string* error) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
      *error = std::string("no usable CUDA device: ") + (e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports none");
      if (e == cudaErrorInsufficientDriver)
        *error += " (no NVIDIA driver was found, or it is older than this build's CUDA runtime " + std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10) +
                  ": install or update the driver, or build with the CUDA toolkit that matches it)";
      cudaGetLastError();
      return Status::NoDevice;
    }
    if (opt.device_index < 0 || opt.device_index >= n) {
      *error = "CUDA device " + std::to_string(opt.device_index) + " does not exist (this machine has " + std::to_string(n) + ")";
      return Status::NoDevice;
    }
    std::unique_ptr<CudaBackend> be(new CudaBackend());
    be->device_ = opt.device_index;
    if ((e = cudaSetDevice(be->device_)) != cudaSuccess || (e = cudaStreamCreateWithFlags(&be->stream_, cudaStreamNonBlocking)) != cudaSuccess) {
      *error = std::string("could not start CUDA device ") + std::to_string(opt.device_index) + ": " + cudaGetErrorString(e);
      return Status::DeviceError;
    }
    cudaDeviceProp prop{};
    cudaGetDeviceProperties(&prop, be->device_);
    be->name_ = prop.name;
    be->cc_ = prop.major * 10 + prop.minor;
    be->mem_ = prop.totalGlobalMem;
    // keep freed pool memory for reuse instead of returning it at every synchronization
    cudaMemPool_t pool;
    if (cudaDeviceGetDefaultMemPool(&pool, be->device_) == cudaSuccess) {
      uint64_t keep = UINT64_MAX;
      cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    }
    if (!opt.cuda_builtin_gemm) {
      const Status ls = lt::load(lt::candidates(lt::SearchEnv::from_process()), &be->lt_, error);
      if (ls != Status::Ok) return ls;
      const int st = be->lt_.Create(&be->lt_handle_);
      if (st != lt::kStatusSuccess) {
        *error = "cublasLtCreate failed: " + lt::status_text(st) + " (library " + be->lt_.path + ")";
        return Status::DeviceError;
      }
      if (cudaMalloc(&be->workspace_, kWorkspace) != cudaSuccess) {
        cudaGetLastError();
        *error = "out of GPU memory for cuBLASLt's workspace";
        return Status::OutOfMemory;
      }
    }
    *out = std::move(be);
    return Status::Ok;
  }

  Device device() const override { return Device::Cuda; }
  std::string describe() const override {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%.0f GiB, sm_%d", (double)mem_ / (1 << 30), cc_);
    std::string gemm = lt_handle_ ? "cuBLASLt " + std::to_string(lt_.version) + " (" + lt_.path + ")" : std::string("built-in GEMM");
    if (lt_fallbacks_ > 0) gemm += ", " + std::to_string(lt_fallbacks_) + " products on the built-in GEMM (no cuBLASLt algorithm)";
    return "cuda:" + std::to_string(device_) + " (" + name_ + ", " + buf + ", " + gemm + ")";
  }
  int threads() const override { return 1; }
  Status sync(std::string* error) override {
    const cudaError_t e = cudaStreamSynchronize(stream_);
    if (e != cudaSuccess) record(Status::DeviceError, std::string("CUDA: ") + cudaGetErrorString(e));
    const Status st = first_status_;
    if (st != Status::Ok && error) *error = first_error_;
    first_status_ = Status::Ok;
    first_error_.clear();
    return st;
  }

  // ---- memory
  void* alloc(size_t bytes) override {
    void* p = nullptr;
    if (cudaMallocAsync(&p, bytes == 0 ? 256 : bytes, stream_) != cudaSuccess) {
      cudaGetLastError();
      return nullptr;
    }
    cudaMemsetAsync(p, 0, bytes, stream_);
    return p;
  }
  void release(void* p) override {
    if (p) cudaFreeAsync(p, stream_);
  }
  // Host memory may be reused as soon as these return, so both wait for the copy.
  void upload(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload");
    check(cudaStreamSynchronize(stream_), "upload");
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "download");
    check(cudaStreamSynchronize(stream_), "download");
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "copy");
  }
  void zero(void* dst, size_t bytes) override {
    if (bytes) check(cudaMemsetAsync(dst, 0, bytes, stream_), "zero");
  }
  void convert(void* dst, DType dt, const void* src, DType st, int64_t n) override {
    if (dt == st) return copy(dst, src, (size_t)n * dtype_size(dt));
    if (dt == DType::BF16) cuk::convert_to_bf16(stream_, static_cast<uint16_t*>(dst), static_cast<const float*>(src), n);
    else cuk::convert_to_f32(stream_, static_cast<float*>(dst), static_cast<const uint16_t*>(src), n);
    launched("convert");
  }

  // ---- linear layers
  void matmul_forward(float* out, const float* inp, ConstTensorRef w, const float* bias, int64_t N, int C, int OC) override {
    if (N <= cuk::kGemvMaxRows) cuk::gemv_rows(stream_, out, inp, w, (int)N, C, OC, false), launched("gemv_rows");
    else gemm_forward(out, inp, w, N, C, OC, 0.0f);
    if (bias) cuk::add_bias(stream_, out, bias, N, OC), launched("add_bias");
  }
  void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, ConstTensorRef w, int64_t N, int C, int OC) override {
    if (dinp) gemm_dinp(dinp, dout, w, N, C, OC);
    if (dweight && w.dtype == DType::F32) gemm_dweight(dweight, dout, inp, N, C, OC);
    if (dbias) cuk::col_sum(stream_, dbias, dout, N, OC), launched("col_sum");
  }
  void matmul_rows(float* out, const float* inp, ConstTensorRef w, const int32_t* host_rows, int n, int C) override {
    int32_t* rows = static_cast<int32_t*>(scratch(kScratchRows, sizeof(int32_t) * (size_t)n));
    if (!rows) return;
    upload(rows, host_rows, sizeof(int32_t) * (size_t)n);
    cuk::matmul_rows(stream_, out, inp, w, rows, n, C);
    launched("matmul_rows");
  }

  // ---- elementwise and per-row
  void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t N, int C, float eps) override { cuk::rmsnorm_forward(stream_, out, rstd, inp, weight, N, C, eps), launched("rmsnorm_forward"); }
  void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight, const float* rstd, int64_t N, int C) override {
    cuk::rmsnorm_backward(stream_, dinp, dweight, dout, inp, weight, rstd, N, C), launched("rmsnorm_backward");
  }
  void axpy(float* y, const float* x, float alpha, int64_t n) override { cuk::axpy(stream_, y, x, alpha, n), launched("axpy"); }
  void add(float* out, const float* a, const float* b, int64_t n) override { cuk::add(stream_, out, a, b, n), launched("add"); }
  void scale(float* out, const float* x, float alpha, int64_t n) override { cuk::scale(stream_, out, x, alpha, n), launched("scale"); }
  void mul_inplace(float* x, const float* y, int64_t n) override { cuk::mul_inplace(stream_, x, y, n), launched("mul_inplace"); }
  void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) override { cuk::swiglu_forward(stream_, out, gate, up, n), launched("swiglu_forward"); }
  void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) override { cuk::swiglu_backward(stream_, dgate, dup, dout, gate, up, n), launched("swiglu_backward"); }
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias, int64_t N, int C, float eps) override {
    cuk::layernorm_forward(stream_, out, mean, rstd, inp, weight, bias, N, C, eps), launched("layernorm_forward");
  }
  void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight, const float* mean, const float* rstd, int64_t N, int C) override {
    cuk::layernorm_backward(stream_, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C), launched("layernorm_backward");
  }
  void gelu_tanh_forward(float* out, const float* x, int64_t n) override { cuk::gelu_tanh_forward(stream_, out, x, n), launched("gelu_tanh_forward"); }
  void gelu_tanh_backward(float* dx, const float* dout, const float* x, int64_t n) override {
    if (dx) cuk::gelu_tanh_backward(stream_, dx, dout, x, n), launched("gelu_tanh_backward");
  }
  void gelu_forward(float* out, const float* x, int64_t n) override { cuk::gelu_forward(stream_, out, x, n), launched("gelu_forward"); }
  void gelu_backward(float* dx, const float* dout, const float* x, int64_t n) override {
    if (dx) cuk::gelu_backward(stream_, dx, dout, x, n), launched("gelu_backward");
  }
  void embedding_forward(float* out, const int32_t* tokens, ConstTensorRef table, int64_t N, int C) override { cuk::embedding_forward(stream_, out, tokens, table, N, C), launched("embedding_forward"); }
  void embedding_backward(float* dtable, const float* dout, const int32_t* tokens, int64_t N, int C) override {
    if (dtable) cuk::embedding_backward(stream_, dtable, dout, tokens, N, C), launched("embedding_backward");
  }
  void scatter_rows(float* dst, const int32_t* rows, const float* src, int64_t n, int C) override { cuk::scatter_rows(stream_, dst, rows, src, n, C), launched("scatter_rows"); }
  void gather_rows(float* dst, const float* src, const int32_t* rows, int64_t n, int C) override { cuk::gather_rows(stream_, dst, src, rows, n, C), launched("gather_rows"); }

  void rope_forward(float* x, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) override { rope(x, positions, spec, N, H, 1.0f); }
  void rope_backward(float* dx, const int32_t* positions, const RopeSpec& spec, int64_t N, int H) override { rope(dx, positions, spec, N, H, -1.0f); }

  // ---- attention
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const AttnShape& s) override {
    if (!head_dim_ok(s.hd)) return;
    cuk::attention_forward(stream_, out, lse, q, k, v, s), launched("attention_forward");
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const AttnShape& s) override {
    if (!head_dim_ok(s.hd)) return;
    float* D = static_cast<float*>(scratch(kScratchAttn, sizeof(float) * (size_t)s.B * s.T * s.NH));
    if (D) cuk::attention_backward(stream_, dq, dk, dv, D, dout, out, lse, q, k, v, s), launched("attention_backward");
  }
  void attention_forward_cached(float* out, const float* q, const float* k, const float* v, int start, int n, int NH, int KV, int hd) override {
    if (!head_dim_ok(hd)) return;
    const int64_t nf = cuk::cached_split_floats(start, n, NH, hd);
    float* part = nf > 0 ? static_cast<float*>(scratch(kScratchAttn, sizeof(float) * (size_t)nf)) : nullptr;
    cuk::attention_forward_cached(stream_, out, part, q, k, v, start, n, NH, KV, hd), launched("attention_forward_cached");
  }
  void attention_segments(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* host_cu, int n_seg, int NH, int hd) override {
    const int32_t *cu, *seg;
    if (!head_dim_ok(hd) || !segments(host_cu, n_seg, &cu, &seg)) return;
    cuk::attention_segments(stream_, out, lse, q, k, v, cu, seg, host_cu[n_seg], NH, hd), launched("attention_segments");
  }
  void attention_segments_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, const float* lse, const float* q, const float* k, const float* v, const int32_t* host_cu, int n_seg, int NH,
                                   int hd) override {
    const int32_t *cu, *seg;
    if (!head_dim_ok(hd) || !segments(host_cu, n_seg, &cu, &seg)) return;
    float* D = static_cast<float*>(scratch(kScratchAttn, sizeof(float) * (size_t)host_cu[n_seg] * NH));
    if (D) cuk::attention_segments_backward(stream_, dq, dk, dv, D, dout, out, lse, q, k, v, cu, seg, host_cu[n_seg], NH, hd), launched("attention_segments_backward");
  }

  // ---- the LM head (head.cu for the per-row parts)
  Status head_forward(double* loss_sum, int64_t* kept, float* lse, float* dhidden, float* logits, const float* hidden, const int32_t* targets, ConstTensorRef head, float loss_scale, int64_t K, int C,
                      int V) override;
  void head_backward(float* dhead, float* dhidden, const float* hidden, const int32_t* targets, const float* lse, const float* logits, const float* head, float loss_scale, int64_t K, int C, int V) override;

  // ---- optimizer
  void adamw_update(float* params, float* m, float* v, const float* grads, int64_t n, const AdamWConfig& cfg, int t, float grad_scale) override {
    cuk::adamw(stream_, params, m, v, grads, n, cfg, t, grad_scale), launched("adamw_update");
  }
  double sq_norm(const float* x, int64_t n) override {
    if (n <= 0) return 0.0;
    const int blocks = cuk::sq_norm_blocks(n);
    double* parts = static_cast<double*>(scratch(kScratchNorm, sizeof(double) * (size_t)blocks));
    if (!parts) return NAN;
    cuk::sq_norm_partial(stream_, parts, x, n);
    launched("sq_norm");
    std::vector<double> host((size_t)blocks);
    download(host.data(), parts, sizeof(double) * host.size());
    double s = 0;
    for (double p : host) s += p;
    return s;
  }

 private:
  CudaBackend() = default;

  static constexpr size_t kWorkspace = size_t(32) << 20;
  // Scratch buffers, one per use, grown on demand (never shrunk).
  enum Scratch { kScratchRows = 0, kScratchAttn, kScratchSeg, kScratchNorm, kScratchBf16A, kScratchHead, kScratchChunk, kNumScratch };

  void record(Status st, const std::string& what) {
    if (first_status_ == Status::Ok) first_status_ = st, first_error_ = what;
  }
  void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
      cudaGetLastError();
      record(Status::DeviceError, std::string(what) + ": " + cudaGetErrorString(e));
    }
  }
  void launched(const char* what) { check(cudaGetLastError(), what); }
  bool head_dim_ok(int hd) {
    if (hd <= cuk::kMaxHeadDim) return true;
    record(Status::InvalidArgument, "attention: head size " + std::to_string(hd) + " is over the CUDA kernels' " + std::to_string(cuk::kMaxHeadDim));
    return false;
  }
  void* scratch(int which, size_t bytes) {
    if (scratch_size_[which] >= bytes && scratch_[which]) return scratch_[which];
    if (scratch_[which]) cudaFreeAsync(scratch_[which], stream_);
    scratch_[which] = nullptr;
    scratch_size_[which] = 0;
    void* p = alloc(bytes);
    if (!p) {
      record(Status::OutOfMemory, "out of GPU memory for " + std::to_string(bytes) + " bytes of scratch");
      return nullptr;
    }
    scratch_[which] = p;
    scratch_size_[which] = bytes;
    return p;
  }
  // cu (n_seg + 1) and each row's segment, on the device
  bool segments(const int32_t* host_cu, int n_seg, const int32_t** cu, const int32_t** seg) {
    const int N = host_cu[n_seg];
    std::vector<int32_t> host((size_t)(n_seg + 1 + N));
    std::memcpy(host.data(), host_cu, sizeof(int32_t) * (size_t)(n_seg + 1));
    for (int s = 0; s < n_seg; s++)
      for (int r = host_cu[s]; r < host_cu[s + 1]; r++) host[(size_t)(n_seg + 1 + r)] = s;
    int32_t* d = static_cast<int32_t*>(scratch(kScratchSeg, sizeof(int32_t) * host.size()));
    if (!d) return false;
    upload(d, host.data(), sizeof(int32_t) * host.size());
    *cu = d;
    *seg = d + n_seg + 1;
    return true;
  }
  void rope(float* x, const int32_t* positions, const RopeSpec& spec, int64_t N, int H, float sign) {
    cuk::Rope r{spec.head_dim, spec.theta, spec.n_sections, {}, spec.restart_per_section};
    if (spec.n_sections < 1 || spec.n_sections > 8) return record(Status::InvalidArgument, "rope: the CUDA kernel takes 1 to 8 sections, got " + std::to_string(spec.n_sections));
    for (int i = 0; i < spec.n_sections; i++) r.sections[i] = spec.sections[i];
    cuk::rope(stream_, x, positions, r, N, H, sign);
    launched("rope");
  }

  // The three products of a linear layer (gemm.cpp's forms), through cuBLASLt or our own kernel.
  void gemm_forward(float* out, const float* inp, ConstTensorRef w, int64_t N, int C, int OC, float beta);
  void gemm_dinp(float* dinp, const float* dout, ConstTensorRef w, int64_t N, int C, int OC);
  void gemm_dweight(float* dweight, const float* dout, const float* inp, int64_t N, int C, int OC);
  // D (m, n) col-major = op(A) op(B) + beta D; false when cuBLASLt has no algorithm for it
  bool lt_matmul(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* A, int atype, int64_t lda, const void* B, int btype, int64_t ldb, float* D, int64_t ldd, float beta);
  // activations rounded to bf16 for a bf16 product (scratch)
  const uint16_t* as_bf16(const float* x, int64_t n);

  int device_ = 0, cc_ = 0;
  std::string name_;
  size_t mem_ = 0;
  cudaStream_t stream_ = nullptr;
  lt::Api lt_;
  lt::Handle lt_handle_ = nullptr;
  void* workspace_ = nullptr;
  std::unordered_map<std::string, lt::MatmulAlgo> lt_algos_;
  int lt_fallbacks_ = 0;
  void* scratch_[kNumScratch] = {};
  size_t scratch_size_[kNumScratch] = {};
  Status first_status_ = Status::Ok;
  std::string first_error_;
};


// ---- products. Row-major (N, C) is column-major (C, N): each form maps to one cuBLASLt call.
const uint16_t* CudaBackend::as_bf16(const float* x, int64_t n) {
  uint16_t* p = static_cast<uint16_t*>(scratch(kScratchBf16A, sizeof(uint16_t) * (size_t)n));
  if (p) cuk::convert_to_bf16(stream_, p, x, n), launched("convert_to_bf16");
  return p;
}

// The largest power of two (at most 256) dividing an address: cuBLASLt picks algorithms for it.
static uint32_t alignment_of(const void* p) {
  uint32_t a = 256;
  while (a > 1 && reinterpret_cast<uintptr_t>(p) % a != 0) a /= 2;
  return a;
}

bool CudaBackend::lt_matmul(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* A, int atype, int64_t lda, const void* B, int btype, int64_t ldb, float* D, int64_t ldd, float beta) {
  if (!lt_handle_) return false;
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout la = nullptr, lb = nullptr, ld = nullptr;
  bool ok = lt_.MatmulDescCreate(&desc, lt::kCompute32F, lt::kR32F) == lt::kStatusSuccess;
  const int opa = ta ? lt::kOpT : lt::kOpN, opb = tb ? lt::kOpT : lt::kOpN;
  ok = ok && lt_.MatmulDescSetAttribute(desc, lt::kDescTransA, &opa, sizeof opa) == lt::kStatusSuccess;
  ok = ok && lt_.MatmulDescSetAttribute(desc, lt::kDescTransB, &opb, sizeof opb) == lt::kStatusSuccess;
  ok = ok && lt_.MatrixLayoutCreate(&la, atype, ta ? k : m, ta ? m : k, lda) == lt::kStatusSuccess;
  ok = ok && lt_.MatrixLayoutCreate(&lb, btype, tb ? n : k, tb ? k : n, ldb) == lt::kStatusSuccess;
  ok = ok && lt_.MatrixLayoutCreate(&ld, lt::kR32F, m, n, ldd) == lt::kStatusSuccess;
  const uint32_t al[4] = {alignment_of(A), alignment_of(B), alignment_of(D), alignment_of(D)};
  char key[160];
  std::snprintf(key, sizeof key, "%d%d %lld %lld %lld %d %d %lld %lld %lld %u %u %u %d", ta, tb, (long long)m, (long long)n, (long long)k, atype, btype, (long long)lda, (long long)ldb, (long long)ldd, al[0], al[1], al[2],
                beta != 0.0f);
  auto it = lt_algos_.find(key);
  if (ok && it == lt_algos_.end()) {
    lt::Preference pref = nullptr;
    lt::HeuristicResult res{};
    int found = 0;
    const uint64_t ws = kWorkspace;
    if (lt_.MatmulPreferenceCreate(&pref) == lt::kStatusSuccess) {
      lt_.MatmulPreferenceSetAttribute(pref, lt::kPrefMaxWorkspaceBytes, &ws, sizeof ws);
      for (int i = 0; i < 4; i++) lt_.MatmulPreferenceSetAttribute(pref, lt::kPrefMinAlignmentABytes + i, &al[i], sizeof al[i]);
      if (lt_.MatmulAlgoGetHeuristic(lt_handle_, desc, la, lb, ld, ld, pref, 1, &res, &found) != lt::kStatusSuccess) found = 0;
      lt_.MatmulPreferenceDestroy(pref);
    }
    if (found > 0) it = lt_algos_.emplace(key, res.algo).first;
    else ok = false;
  }
  if (ok) {
    const float alpha = 1.0f;
    const int st = lt_.Matmul(lt_handle_, desc, &alpha, A, la, B, lb, &beta, D, ld, D, ld, &it->second, workspace_, kWorkspace, stream_);
    if (st != lt::kStatusSuccess) record(Status::DeviceError, "cublasLtMatmul: " + lt::status_text(st));
  }
  if (ld) lt_.MatrixLayoutDestroy(ld);
  if (lb) lt_.MatrixLayoutDestroy(lb);
  if (la) lt_.MatrixLayoutDestroy(la);
  if (desc) lt_.MatmulDescDestroy(desc);
  if (!ok) lt_fallbacks_++;
  return ok;
}

// out (N, OC) = inp (N, C) . W^T + beta out:  D (OC, N) = W^T' (C, OC)^T . inp' (C, N)
void CudaBackend::gemm_forward(float* out, const float* inp, ConstTensorRef w, int64_t N, int C, int OC, float beta) {
  if (N <= 0) return;
  if (lt_handle_) {
    const bool bf = w.dtype == DType::BF16;
    const void* b = bf ? static_cast<const void*>(as_bf16(inp, N * C)) : inp;
    if (b && lt_matmul(true, false, OC, N, C, w.data, bf ? lt::kR16BF : lt::kR32F, C, b, bf ? lt::kR16BF : lt::kR32F, C, out, OC, beta)) return;
  }
  cuk::gemm_builtin(stream_, out, 1, OC, w, C, 1, inp, 1, C, OC, N, C, 1.0f, beta);
  launched("gemm_builtin forward");
}

// dinp (N, C) += dout (N, OC) . W:  D (C, N) = W' (C, OC) . dout' (OC, N)
void CudaBackend::gemm_dinp(float* dinp, const float* dout, ConstTensorRef w, int64_t N, int C, int OC) {
  if (N <= 0) return;
  if (lt_handle_) {
    const bool bf = w.dtype == DType::BF16;
    const void* b = bf ? static_cast<const void*>(as_bf16(dout, N * OC)) : dout;
    if (b && lt_matmul(false, false, C, N, OC, w.data, bf ? lt::kR16BF : lt::kR32F, C, b, bf ? lt::kR16BF : lt::kR32F, OC, dinp, C, 1.0f)) return;
  }
  cuk::gemm_builtin(stream_, dinp, 1, C, w, 1, C, dout, 1, OC, C, N, OC, 1.0f, 1.0f);
  launched("gemm_builtin dinp");
}

// dweight (OC, C) += dout^T (OC, N) . inp (N, C):  D (C, OC) = inp' (C, N) . (dout' (OC, N))^T
void CudaBackend::gemm_dweight(float* dweight, const float* dout, const float* inp, int64_t N, int C, int OC) {
  if (N <= 0) return;
  if (lt_matmul(false, true, C, OC, N, inp, lt::kR32F, C, dout, lt::kR32F, OC, dweight, C, 1.0f)) return;
  cuk::gemm_builtin(stream_, dweight, C, 1, ConstTensorRef{dout, DType::F32}, 1, OC, inp, C, 1, OC, C, N, 1.0f, 1.0f);
  launched("gemm_builtin dweight");
}

// ---- the LM head: per chunk of vocabulary rows, logits = hidden . chunk^T into a (K, Vc)
// buffer, the online statistics; then lse and the loss; dhidden (when asked) in a second pass
// that recomputes each chunk's logits and turns them into loss_scale * (softmax - onehot).
Status CudaBackend::head_forward(double* loss_sum, int64_t* kept, float* lse, float* dhidden, float* logits, const float* hidden, const int32_t* targets, ConstTensorRef head, float loss_scale, int64_t K,
                                 int C, int V) {
  *loss_sum = 0;
  *kept = 0;
  if (K <= 0) return Status::Ok;
  const int Vc = (int)std::max<int64_t>(1, std::min<int64_t>(V, kHeadChunkFloats / K));
  // the loss parts (K doubles) and the two totals, then run_max, run_sum, target logit (K floats each)
  double* parts = static_cast<double*>(scratch(kScratchHead, sizeof(double) * ((size_t)K + 2) + sizeof(float) * 3 * (size_t)K));
  float* chunk = static_cast<float*>(scratch(kScratchChunk, sizeof(float) * (size_t)K * Vc));
  if (!parts || !chunk) return Status::OutOfMemory;
  double* total = parts + K;
  float *run_max = reinterpret_cast<float*>(parts + K + 2), *run_sum = run_max + K, *tl = run_sum + K;
  cuk::head_init(stream_, run_max, run_sum, tl, K);
  for (int v0 = 0; v0 < V; v0 += Vc) {
    const int n = std::min(Vc, V - v0);
    gemm_forward(chunk, hidden, head.at((int64_t)v0 * C), K, C, n, 0.0f);
    if (logits) check(cudaMemcpy2DAsync(logits + v0, sizeof(float) * (size_t)V, chunk, sizeof(float) * (size_t)n, sizeof(float) * (size_t)n, (size_t)K, cudaMemcpyDeviceToDevice, stream_), "head logits");
    cuk::head_chunk_stats(stream_, run_max, run_sum, tl, chunk, targets, K, n, v0);
  }
  cuk::head_finish(stream_, lse, parts, run_max, run_sum, tl, targets, K);
  cuk::head_total(stream_, total, reinterpret_cast<long long*>(total + 1), parts, targets, K);
  launched("head_forward");
  if (dhidden) {
    for (int v0 = 0; v0 < V; v0 += Vc) {
      const int n = std::min(Vc, V - v0);
      gemm_forward(chunk, hidden, head.at((int64_t)v0 * C), K, C, n, 0.0f);
      cuk::head_chunk_grad(stream_, chunk, lse, targets, loss_scale, K, n, v0);
      gemm_dinp(dhidden, chunk, head.at((int64_t)v0 * C), K, C, n);
    }
    launched("head_forward dhidden");
  }
  double host[2];
  download(host, total, sizeof host);
  long long kk;
  std::memcpy(&kk, &host[1], sizeof kk);
  *loss_sum = host[0];
  *kept = kk;
  std::string err;
  const Status s = sync(&err);
  if (s != Status::Ok) record(s, err);  // keep it for the caller's next sync as well
  return s;
}

void CudaBackend::head_backward(float* dhead, float* dhidden, const float* hidden, const int32_t* targets, const float* lse, const float* logits, const float* head, float loss_scale, int64_t K, int C, int V) {
  if (K <= 0) return;
  const int Vc = (int)std::max<int64_t>(1, std::min<int64_t>(V, kHeadChunkFloats / K));
  float* chunk = static_cast<float*>(scratch(kScratchChunk, sizeof(float) * (size_t)K * Vc));
  if (!chunk) return;
  const ConstTensorRef w{head, DType::F32};
  for (int v0 = 0; v0 < V; v0 += Vc) {
    const int n = std::min(Vc, V - v0);
    if (logits) check(cudaMemcpy2DAsync(chunk, sizeof(float) * (size_t)n, logits + v0, sizeof(float) * (size_t)V, sizeof(float) * (size_t)n, (size_t)K, cudaMemcpyDeviceToDevice, stream_), "head logits");
    else gemm_forward(chunk, hidden, w.at((int64_t)v0 * C), K, C, n, 0.0f);
    cuk::head_chunk_grad(stream_, chunk, lse, targets, loss_scale, K, n, v0);
    if (dhead) gemm_dweight(dhead + (int64_t)v0 * C, chunk, hidden, K, C, n);
    if (dhidden) gemm_dinp(dhidden, chunk, w.at((int64_t)v0 * C), K, C, n);
  }
  launched("head_backward");
}

}  // namespace

Status create_cuda_backend(const BackendOptions& opt, std::unique_ptr<Backend>* out, std::string* error) { return CudaBackend::create(opt, out, error); }

}  // namespace vlatext
