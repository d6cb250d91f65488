#include "safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace vlatext {

MappedFile::~MappedFile() {
  if (data_) munmap(data_, size_);
}

Status MappedFile::open(const std::string& path, std::string* error) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    *error = "cannot open " + path + ": " + std::strerror(errno);
    return Status::InvalidArgument;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    *error = "cannot stat " + path + " (or it is empty)";
    return Status::InvalidArgument;
  }
  void* p = mmap(nullptr, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);  // the mapping stays valid
  if (p == MAP_FAILED) {
    *error = "cannot map " + path + ": " + std::strerror(errno);
    return Status::OutOfMemory;
  }
  data_ = (uint8_t*)p;
  size_ = (size_t)st.st_size;
  return Status::Ok;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        exp--;
      }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000 | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

Status load_tensor(const MappedFile& f, size_t offset, StDtype dtype, int64_t count, float* dst, std::string* error) {
  return read_tensor_range(f, offset, dtype, count, 0, count, dst, DType::F32, error);
}

Status read_tensor_range(const MappedFile& f, size_t offset, StDtype dtype, int64_t total, int64_t first, int64_t count, void* dst, DType dst_type, std::string* error) {
  const size_t elem = dtype == StDtype::F32 ? 4 : 2;
  if (total < 0 || offset > f.size() || (size_t)total * elem > f.size() - offset) {
    *error = "tensor bytes [" + std::to_string(offset) + ", +" + std::to_string((size_t)total * elem) + ") run past the end of the file (" + std::to_string(f.size()) + " bytes; truncated?)";
    return Status::InvalidArgument;
  }
  if (first < 0 || count < 0 || first + count > total) {
    *error = "elements [" + std::to_string(first) + ", " + std::to_string(first + count) + ") are outside the tensor's " + std::to_string(total);
    return Status::InvalidArgument;
  }
  const uint8_t* src = f.data() + offset + (size_t)first * elem;
  if (dst_type == DType::F32) {
    float* d = static_cast<float*>(dst);
    if (dtype == StDtype::F32) {
      std::memcpy(d, src, (size_t)count * 4);
      return Status::Ok;
    }
    for (int64_t i = 0; i < count; i++) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      d[i] = dtype == StDtype::F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
    return Status::Ok;
  }
  uint16_t* d = static_cast<uint16_t*>(dst);
  if (dtype == StDtype::BF16) {
    std::memcpy(d, src, (size_t)count * 2);
    return Status::Ok;
  }
  for (int64_t i = 0; i < count; i++) {
    float x;
    if (dtype == StDtype::F32) {
      std::memcpy(&x, src + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      x = f16_to_f32(h);
    }
    d[i] = f32_to_bf16(x);
  }
  return Status::Ok;
}

}  // namespace vlatext
