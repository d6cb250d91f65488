#include "param_store.h"

#include <algorithm>
#include <cmath>

namespace vlatext {

namespace {
int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}
// Conversion pieces of load(): at most this many elements staged on the host at once.
constexpr int64_t kLoadPiece = 1 << 22;
}  // namespace

void ParamStore::add(const std::string& name, std::vector<int64_t> shape, DType dtype) {
  ParamTensor t;
  t.name = name;
  t.size = numel(shape);
  t.shape = std::move(shape);
  t.dtype = dtype;
  t.segment = (int)segs_.size();
  t_.push_back(std::move(t));
}

Status ParamStore::end_segment(std::string* error) {
  auto seg = std::make_unique<Segment>();
  seg->f32.bind(be_);
  seg->bf16.bind(be_);
  int64_t nf = 0, nb = 0;
  for (size_t i = (size_t)open_first_; i < t_.size(); i++) {
    ParamTensor& t = t_[i];
    t.offset = t.dtype == DType::BF16 ? nb : nf;
    (t.dtype == DType::BF16 ? nb : nf) += t.size;
  }
  if (!seg->f32.resize(nf) || !seg->bf16.resize(nb)) {
    *error = "out of memory for " + std::to_string((nf * 4 + nb * 2) >> 20) + " MiB of parameters on " + be_->describe();
    t_.resize((size_t)open_first_);
    return Status::OutOfMemory;
  }
  segs_.push_back(std::move(seg));
  seg_trainable_.push_back(false);
  open_first_ = (int)t_.size();
  return Status::Ok;
}

void ParamStore::truncate(int keep) {
  if (keep >= (int)segs_.size()) return;
  size_t first = t_.size();
  for (size_t i = 0; i < t_.size(); i++)
    if (t_[i].segment >= keep) {
      first = i;
      break;
    }
  t_.resize(first);
  segs_.resize((size_t)keep);
  seg_trainable_.resize((size_t)keep);
  open_first_ = (int)t_.size();
  carve_grads();
}

const ParamTensor* ParamStore::find(const std::string& name) const {
  const int i = index_of(name);
  return i < 0 ? nullptr : &t_[(size_t)i];
}

int ParamStore::index_of(const std::string& name) const {
  for (size_t i = 0; i < t_.size(); i++)
    if (t_[i].name == name) return (int)i;
  return -1;
}

void* ParamStore::data(int i) const {
  const ParamTensor& t = t_[(size_t)i];
  Segment& s = *segs_[(size_t)t.segment];
  return t.dtype == DType::BF16 ? (void*)(s.bf16.data() + t.offset) : (void*)(s.f32.data() + t.offset);
}

float* ParamStore::f32(int i) { return t_[(size_t)i].dtype == DType::F32 ? static_cast<float*>(data(i)) : nullptr; }
const float* ParamStore::f32(int i) const { return t_[(size_t)i].dtype == DType::F32 ? static_cast<const float*>(data(i)) : nullptr; }
ConstTensorRef ParamStore::ref(int i) const { return {data(i), t_[(size_t)i].dtype}; }
float* ParamStore::grad(int i) { return t_[(size_t)i].trainable ? grad_.data() + t_[(size_t)i].grad_offset : nullptr; }

void ParamStore::set(int i, const float* host) {
  const ParamTensor& t = t_[(size_t)i];
  if (t.dtype == DType::F32) return be_->upload(data(i), host, sizeof(float) * (size_t)t.size);
  std::vector<uint16_t> tmp((size_t)std::min<int64_t>(t.size, kLoadPiece));
  for (int64_t a = 0; a < t.size; a += kLoadPiece) {
    const int64_t n = std::min(kLoadPiece, t.size - a);
    for (int64_t j = 0; j < n; j++) tmp[(size_t)j] = f32_to_bf16(host[a + j]);
    be_->upload(static_cast<uint16_t*>(data(i)) + a, tmp.data(), sizeof(uint16_t) * (size_t)n);
  }
}

void ParamStore::get(int i, float* host) const {
  const ParamTensor& t = t_[(size_t)i];
  if (t.dtype == DType::F32) return be_->download(host, data(i), sizeof(float) * (size_t)t.size);
  std::vector<uint16_t> tmp((size_t)std::min<int64_t>(t.size, kLoadPiece));
  for (int64_t a = 0; a < t.size; a += kLoadPiece) {
    const int64_t n = std::min(kLoadPiece, t.size - a);
    be_->download(tmp.data(), static_cast<const uint16_t*>(data(i)) + a, sizeof(uint16_t) * (size_t)n);
    for (int64_t j = 0; j < n; j++) host[a + j] = bf16_to_f32(tmp[(size_t)j]);
  }
}

void ParamStore::get_grad(int i, float* host) const {
  const ParamTensor& t = t_[(size_t)i];
  if (!t.trainable) {
    std::fill(host, host + t.size, 0.0f);
    return;
  }
  be_->download(host, grad_.data() + t.grad_offset, sizeof(float) * (size_t)t.size);
}

Status ParamStore::load(int i, const MappedFile& f, size_t offset, StDtype dtype, std::string* error) {
  const ParamTensor& t = t_[(size_t)i];
  const size_t esz = dtype_size(t.dtype);
  std::vector<uint8_t> tmp((size_t)std::min<int64_t>(t.size, kLoadPiece) * esz);
  for (int64_t a = 0; a < t.size; a += kLoadPiece) {
    const int64_t n = std::min(kLoadPiece, t.size - a);
    const Status st = read_tensor_range(f, offset, dtype, t.size, a, n, tmp.data(), t.dtype, error);
    if (st != Status::Ok) return st;
    be_->upload(static_cast<uint8_t*>(data(i)) + (size_t)a * esz, tmp.data(), (size_t)n * esz);
  }
  return Status::Ok;
}

Status ParamStore::set_trainable(int segment, bool on, std::string* error) {
  if (segment < 0 || segment >= (int)segs_.size()) {
    *error = "no parameter segment " + std::to_string(segment);
    return Status::InvalidArgument;
  }
  if (on)
    for (const ParamTensor& t : t_)
      if (t.segment == segment && t.dtype != DType::F32) {
        *error = "tensor '" + t.name + "' is stored as " + dtype_name(t.dtype) + " and cannot be trained (trained weights are kept in f32): load the model with dtype f32";
        return Status::InvalidArgument;
      }
  if (seg_trainable_[(size_t)segment] == on) return Status::Ok;
  seg_trainable_[(size_t)segment] = on;
  carve_grads();
  return Status::Ok;
}

bool ParamStore::segment_trainable(int segment) const { return segment >= 0 && segment < (int)seg_trainable_.size() && seg_trainable_[(size_t)segment]; }

// The gradient layout: trained tensors in table order. A new layout has zero gradients and no moments.
void ParamStore::carve_grads() {
  n_train_ = 0;
  for (ParamTensor& t : t_) {
    t.trainable = seg_trainable_[(size_t)t.segment];
    t.grad_offset = t.trainable ? n_train_ : -1;
    if (t.trainable) n_train_ += t.size;
  }
  grad_.bind(be_);
  m_.bind(be_);
  v_.bind(be_);
  grad_.resize(n_train_);
  m_.reset();
  v_.reset();
  step_ = 0;
}

void ParamStore::zero_grad() {
  if (n_train_ > 0) be_->zero(grad_.data(), sizeof(float) * (size_t)n_train_);
}

double ParamStore::grad_sq_norm() { return n_train_ > 0 ? be_->sq_norm(grad_.data(), n_train_) : 0.0; }

void ParamStore::adamw(const AdamWConfig& opt, float grad_scale) {
  if (n_train_ == 0) return;
  if (m_.size() != n_train_) {
    m_.resize(n_train_);
    v_.resize(n_train_);
  }
  step_++;
  for (size_t i = 0; i < t_.size(); i++) {
    const ParamTensor& t = t_[i];
    if (!t.trainable) continue;
    be_->adamw_update(f32((int)i), m_.data() + t.grad_offset, v_.data() + t.grad_offset, grad_.data() + t.grad_offset, t.size, opt, step_, grad_scale);
  }
}

void ParamStore::optimizer_state(std::vector<float>* m, std::vector<float>* v) const {
  m->assign((size_t)m_.size(), 0.0f);
  v->assign((size_t)v_.size(), 0.0f);
  if (m_.size() > 0) {
    be_->download(m->data(), m_.data(), sizeof(float) * (size_t)m_.size());
    be_->download(v->data(), v_.data(), sizeof(float) * (size_t)v_.size());
  }
}

Status ParamStore::set_optimizer_state(int step, const std::vector<float>& m, const std::vector<float>& v, std::string* error) {
  if (m.size() != (size_t)n_train_ || v.size() != m.size()) {
    *error = "optimizer state has " + std::to_string(m.size()) + " values but the trained tensors have " + std::to_string(n_train_) + " (a different LoRA or full/LoRA setting?)";
    return Status::InvalidArgument;
  }
  if (!m_.upload(m.data(), (int64_t)m.size()) || !v_.upload(v.data(), (int64_t)v.size())) {
    *error = "out of memory for the optimizer state";
    return Status::OutOfMemory;
  }
  step_ = step;
  return Status::Ok;
}

int64_t ParamStore::num_elements() const {
  int64_t n = 0;
  for (const ParamTensor& t : t_) n += t.size;
  return n;
}

int64_t ParamStore::bytes() const {
  int64_t b = 0;
  for (const ParamTensor& t : t_) b += t.size * (int64_t)dtype_size(t.dtype);
  return b + 4 * (grad_.size() + m_.size() + v_.size());
}

double optimizer_step(ParamStore* const* stores, int n, const AdamWConfig& opt, float max_norm) {
  double sq = 0;
  for (int i = 0; i < n; i++) sq += stores[i]->grad_sq_norm();
  const float scale = clip_scale(sq, max_norm);
  for (int i = 0; i < n; i++) {
    stores[i]->adamw(opt, scale);
    stores[i]->zero_grad();
  }
  return std::sqrt(sq);
}

}  // namespace vlatext
