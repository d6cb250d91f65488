#include "backend.h"

#include "../kernels/cpu_backend.h"

namespace vlatext {

// VLATEXT_CUDA_BACKEND: defined by CUDA builds (CMake, VLATEXT_CUDA=ON).
#ifdef VLATEXT_CUDA_BACKEND
// native/cuda/: the CUDA backend, in CUDA builds only.
Status create_cuda_backend(const BackendOptions& opt, std::unique_ptr<Backend>* out, std::string* error);
#endif

Status create_backend(const BackendOptions& opt, std::unique_ptr<Backend>* out, std::string* error) {
  if (opt.device == Device::Cpu) return create_cpu_backend(opt.threads, opt.isa, out, error);
#ifdef VLATEXT_CUDA_BACKEND
  return create_cuda_backend(opt, out, error);
#else
  *error = "this build of vlatext has no CUDA backend, so device 'cuda' is not available: build one with `npm run build:cuda` (needs nvcc) and load it with VLATEXT_ADDON=build-cmake/Release/vlatext.node";
  return Status::NoDevice;
#endif
}

}  // namespace vlatext
