// CUDA sum of a host float array (copied to the device), accumulated in double.
#pragma once

#include <cstdint>

#include "../core/status.h"

namespace vlatext {

// Number of CUDA devices, or 0 when none can be used (no driver, no GPU).
int cuda_device_count();

// *out = sum(x[0..n)); Status::NoDevice when no GPU is present.
Status cuda_reduce_sum(const float* host_x, int64_t n, double* out);

}  // namespace vlatext
