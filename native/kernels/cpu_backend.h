// The CPU backend: device memory is host memory (64-byte aligned), kernels are the ones in
// native/kernels/ on this backend's thread pool, at the instruction-set cap it was made with.
#pragma once

#include <memory>

#include "../core/backend.h"
#include "../core/threadpool.h"

namespace vlatext {

Status create_cpu_backend(int threads, Isa isa, std::unique_ptr<Backend>* out, std::string* error);

}  // namespace vlatext
