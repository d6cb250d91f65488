// Memory-mapped safetensors tensor loading. The JSON header is parsed (and validated)
// on the TypeScript side; native code maps the file read-only and converts each
// tensor's bytes (F32, F16, BF16, little-endian) into f32 destination memory, so a
// multi-gigabyte shard never passes through the JavaScript heap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../core/dtype.h"
#include "../core/status.h"

namespace vlatext {

enum class StDtype { F32 = 0, F16 = 1, BF16 = 2 };

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  Status open(const std::string& path, std::string* error);
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// dst (count) = convert(file bytes [offset, offset + count * sizeof(dtype))).
Status load_tensor(const MappedFile& f, size_t offset, StDtype dtype, int64_t count, float* dst, std::string* error);

// Elements [first, first + count) of a tensor of `total` elements stored at `offset`, converted
// into dst in dst_type: F32/F16/BF16 to f32 exactly; to bf16 by rounding (BF16 is copied bit for
// bit). InvalidArgument when the tensor runs past the end of the file.
Status read_tensor_range(const MappedFile& f, size_t offset, StDtype dtype, int64_t total, int64_t first, int64_t count, void* dst, DType dst_type, std::string* error);

float f16_to_f32(uint16_t h);

}  // namespace vlatext
