// Compiled (syntax only) by the device check against NVIDIA's real cublasLt.h: our own
// declarations in native/cuda/cublaslt.h must agree with it, constant by constant and in the
// layout of the one struct we pass by pointer. g++ -fsyntax-only -I<cublasLt.h dir> -I<cuda include> -Inative
#include <cublasLt.h>

#include <cstddef>
#include <type_traits>

#include "cuda/cublaslt.h"

namespace lt = vlatext::lt;

static_assert(lt::kStatusSuccess == CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_SUCCESS");
static_assert(lt::kR32F == CUDA_R_32F && lt::kR16BF == CUDA_R_16BF, "cudaDataType_t");
static_assert(lt::kCompute32F == CUBLAS_COMPUTE_32F && lt::kCompute32FFastTF32 == CUBLAS_COMPUTE_32F_FAST_TF32, "cublasComputeType_t");
static_assert(lt::kOpN == CUBLAS_OP_N && lt::kOpT == CUBLAS_OP_T, "cublasOperation_t");
static_assert(lt::kDescComputeType == CUBLASLT_MATMUL_DESC_COMPUTE_TYPE && lt::kDescScaleType == CUBLASLT_MATMUL_DESC_SCALE_TYPE && lt::kDescTransA == CUBLASLT_MATMUL_DESC_TRANSA &&
                  lt::kDescTransB == CUBLASLT_MATMUL_DESC_TRANSB,
              "cublasLtMatmulDescAttributes_t");
static_assert(lt::kPrefMaxWorkspaceBytes == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES && lt::kPrefMinAlignmentABytes == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES &&
                  lt::kPrefMinAlignmentABytes + 1 == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES && lt::kPrefMinAlignmentABytes + 2 == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES &&
                  lt::kPrefMinAlignmentABytes + 3 == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
              "cublasLtMatmulPreferenceAttributes_t");
static_assert(sizeof(lt::MatmulAlgo) == sizeof(cublasLtMatmulAlgo_t), "cublasLtMatmulAlgo_t size");
static_assert(sizeof(lt::HeuristicResult) == sizeof(cublasLtMatmulHeuristicResult_t), "cublasLtMatmulHeuristicResult_t size");
static_assert(offsetof(lt::HeuristicResult, workspaceSize) == offsetof(cublasLtMatmulHeuristicResult_t, workspaceSize), "workspaceSize offset");
static_assert(offsetof(lt::HeuristicResult, state) == offsetof(cublasLtMatmulHeuristicResult_t, state), "state offset");
static_assert(sizeof(cublasStatus_t) == sizeof(int) && sizeof(cublasComputeType_t) == sizeof(int) && sizeof(cudaDataType_t) == sizeof(int), "enums are int-sized");
// the entry points' parameter lists, through the real prototypes
static_assert(std::is_same<decltype(&cublasLtMatmulDescCreate), cublasStatus_t (*)(cublasLtMatmulDesc_t*, cublasComputeType_t, cudaDataType_t)>::value, "cublasLtMatmulDescCreate");
static_assert(std::is_same<decltype(&cublasLtMatrixLayoutCreate), cublasStatus_t (*)(cublasLtMatrixLayout_t*, cudaDataType, uint64_t, uint64_t, int64_t)>::value, "cublasLtMatrixLayoutCreate");
static_assert(std::is_same<decltype(&cublasLtMatmul), cublasStatus_t (*)(cublasLtHandle_t, cublasLtMatmulDesc_t, const void*, const void*, cublasLtMatrixLayout_t, const void*, cublasLtMatrixLayout_t, const void*, const void*,
                                                                         cublasLtMatrixLayout_t, void*, cublasLtMatrixLayout_t, const cublasLtMatmulAlgo_t*, void*, size_t, cudaStream_t)>::value,
              "cublasLtMatmul");
static_assert(std::is_same<decltype(&cublasLtMatmulAlgoGetHeuristic), cublasStatus_t (*)(cublasLtHandle_t, cublasLtMatmulDesc_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                                                                         cublasLtMatrixLayout_t, cublasLtMatmulPreference_t, int, cublasLtMatmulHeuristicResult_t*, int*)>::value,
              "cublasLtMatmulAlgoGetHeuristic");
