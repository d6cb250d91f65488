// cuBLASLt, loaded at run time: vlatext ships no cuBLAS and links none. The CUDA backend's
// large GEMMs call libcublasLt.so.13 (CUDA 13) or .so.12 (CUDA 12), found in the CUDA
// installation or in NVIDIA's Python wheels (what PyTorch installs), through our own minimal
// declarations of the few entry points and constants we use. The values below are those of
// NVIDIA's cublasLt.h / cublas_api.h / library_types.h (stable across CUDA 11.4 .. 13);
// scripts/gpu-check/cublaslt_abi.cpp checks them against the real header where one exists.
//
// Plain C++ with no CUDA headers: the search list and the loader's errors are tested on
// machines without a GPU (native/tests/test_cuda_host.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/status.h"

namespace vlatext {
namespace lt {

// cublasStatus_t
constexpr int kStatusSuccess = 0;
// cudaDataType_t (library_types.h)
constexpr int kR32F = 0, kR16BF = 14;
// cublasComputeType_t
constexpr int kCompute32F = 68, kCompute32FFastTF32 = 77;
// cublasOperation_t
constexpr int kOpN = 0, kOpT = 1;
// cublasLtMatmulDescAttributes_t
constexpr int kDescComputeType = 0, kDescScaleType = 1, kDescTransA = 3, kDescTransB = 4;
// cublasLtMatmulPreferenceAttributes_t
constexpr int kPrefMaxWorkspaceBytes = 1;
// MIN_ALIGNMENT_A_BYTES .. _D_BYTES are 5, 6, 7, 8 (uint32_t each)
constexpr int kPrefMinAlignmentABytes = 5;

using Handle = void*;
using MatmulDesc = void*;
using MatrixLayout = void*;
using Preference = void*;
using Stream = void*;  // cudaStream_t

struct MatmulAlgo {
  uint64_t data[8];
};
struct HeuristicResult {
  MatmulAlgo algo;
  size_t workspaceSize;
  int state;  // cublasStatus_t
  float wavesCount;
  int reserved[4];
};

// The entry points, as cublasLt.h declares them (enums are int-sized).
struct Api {
  void* lib = nullptr;
  std::string path;     // the file that was loaded
  size_t version = 0;   // cublasLtGetVersion(), e.g. 130001
  size_t (*GetVersion)() = nullptr;
  int (*Create)(Handle*) = nullptr;
  int (*Destroy)(Handle) = nullptr;
  int (*MatmulDescCreate)(MatmulDesc*, int compute_type, int scale_type) = nullptr;
  int (*MatmulDescDestroy)(MatmulDesc) = nullptr;
  int (*MatmulDescSetAttribute)(MatmulDesc, int attr, const void* buf, size_t size) = nullptr;
  int (*MatrixLayoutCreate)(MatrixLayout*, int type, uint64_t rows, uint64_t cols, int64_t ld) = nullptr;
  int (*MatrixLayoutDestroy)(MatrixLayout) = nullptr;
  int (*MatmulPreferenceCreate)(Preference*) = nullptr;
  int (*MatmulPreferenceDestroy)(Preference) = nullptr;
  int (*MatmulPreferenceSetAttribute)(Preference, int attr, const void* buf, size_t size) = nullptr;
  int (*MatmulAlgoGetHeuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c, MatrixLayout d, Preference, int requested, HeuristicResult* results, int* returned) = nullptr;
  int (*Matmul)(Handle, MatmulDesc, const void* alpha, const void* A, MatrixLayout, const void* B, MatrixLayout, const void* beta, const void* C, MatrixLayout, void* D, MatrixLayout, const MatmulAlgo* algo,
                void* workspace, size_t workspace_bytes, Stream) = nullptr;
};

// Where to look, from the environment (read once by the caller, passed in: nothing global here).
struct SearchEnv {
  std::string explicit_path;  // $VLATEXT_CUBLASLT: a file, or a folder holding libcublasLt.so.*
  std::string cuda_home;      // $CUDA_HOME
  std::string cuda_path;      // $CUDA_PATH
  std::string virtual_env;    // $VIRTUAL_ENV
  std::string conda_prefix;   // $CONDA_PREFIX
  std::string home;           // $HOME
  static SearchEnv from_process();
};

// The files to try, in order: $VLATEXT_CUBLASLT; the bare sonames (the dynamic loader's own
// search: LD_LIBRARY_PATH, ldconfig); the CUDA installations ($CUDA_HOME, $CUDA_PATH,
// /usr/local/cuda, /usr/local/cuda-13*, -12*); NVIDIA's Python wheels (nvidia/cu13/lib,
// nvidia/cublas/lib) under the active virtualenv or conda prefix, ~/.local, /usr/local, /usr
// and /opt/*/.venv. Globs are expanded here (only existing paths are listed), except the
// sonames. .so.13 before .so.12 within each place.
std::vector<std::string> candidates(const SearchEnv& env);

// Loads the first candidate that opens and has every entry point. On failure (NoDevice),
// `error` names the library, every place tried (and why each failed) and how to install it.
Status load(const std::vector<std::string>& candidates, Api* api, std::string* error);
void unload(Api* api);

// A cublasStatus_t as text ("CUBLAS_STATUS_NOT_SUPPORTED (15)").
std::string status_text(int status);

}  // namespace lt
}  // namespace vlatext
