// Storage types of tensors and their conversions. Compute is always f32 (or f32
// accumulation of bf16 products); bf16 is a storage type for frozen weights (and, on the
// bf16 paths of the GEMM, the rounding of activations before a bf16 x bf16 product).
//   bf16: the top 16 bits of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace vlatext {

enum class DType : uint8_t { F32 = 0, BF16 = 1 };

inline const char* dtype_name(DType t) { return t == DType::BF16 ? "bf16" : "f32"; }
inline size_t dtype_size(DType t) { return t == DType::BF16 ? 2 : 4; }

// Round to nearest, ties to even (what PyTorch's .to(torch.bfloat16) does); NaN stays a
// (quiet) NaN, infinities stay infinite.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);  // NaN: keep it quiet
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

inline float bf16_to_f32(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// f32 rounded through bf16 and back (what a bf16 x bf16 product sees of an f32 value).
inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

// A read-only tensor in either storage type: what a kernel needs to know about a weight.
struct ConstTensorRef {
  const void* data = nullptr;
  DType dtype = DType::F32;
  const float* f32() const { return dtype == DType::F32 ? static_cast<const float*>(data) : nullptr; }
  const uint16_t* bf16() const { return dtype == DType::BF16 ? static_cast<const uint16_t*>(data) : nullptr; }
  // The tensor from element `offset` on (e.g. a block of rows of a weight).
  ConstTensorRef at(int64_t offset) const { return {static_cast<const uint8_t*>(data) + (size_t)offset * (dtype == DType::BF16 ? 2 : 4), dtype}; }
};

}  // namespace vlatext
