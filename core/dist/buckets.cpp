#include "dist/buckets.h"

#include <cstring>

#include "scion/error.h"

namespace scion::runtime {

GradBuckets::GradBuckets(Communicator& comm, const std::vector<Tensor>& params, size_t bucket_bytes)
    : comm_(comm), params_(params) {
  Bucket cur;
  size_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    cur.members.push_back(k);
    bytes += size_t(params_[k].numel()) * sizeof(float);
    if (bytes >= bucket_bytes) {
      buckets_.push_back(std::move(cur));
      cur = Bucket();
      bytes = 0;
    }
  }
  if (!cur.members.empty()) buckets_.push_back(std::move(cur));
  for (size_t b = 0; b < buckets_.size(); ++b) {
    int64_t n = 0;
    for (size_t k : buckets_[b].members) {
      SCION_CHECK(params_[k].dtype() == DType::f32, "data parallel: parameter ", params_[k].desc(),
                  " is not f32 (gradients are reduced in f32)");
      n += params_[k].numel();
      bucket_of_[&params_[k].impl()] = b;
    }
    buckets_[b].flat = Tensor::zeros({n}, DType::f32, params_.empty() ? Device::cpu() : params_[0].device());
  }
}

void GradBuckets::begin_step() {
  for (Bucket& b : buckets_) b.ready = 0, b.started = false;
  early_ = 0;
}

void GradBuckets::on_ready(const TensorImpl* leaf) {
  auto it = bucket_of_.find(leaf);
  if (it == bucket_of_.end()) return;  // not a trained parameter (a frozen model's, an input)
  Bucket& b = buckets_[it->second];
  if (++b.ready == b.members.size()) {
    start(b);
    ++early_;
  }
}

// Packs the members that have a gradient, in member order, and starts the all-reduce of
// that prefix of the flat buffer.
void GradBuckets::start(Bucket& b) {
  if (b.started) return;
  b.started = true;
  float* flat = static_cast<float*>(b.flat.raw_data());
  int64_t at = 0;
  for (size_t k : b.members) {
    const Tensor g = params_[k].grad();
    if (!g.defined()) continue;
    const Tensor c = g.contiguous();
    std::memcpy(flat + at, c.raw_data(), size_t(c.numel()) * sizeof(float));
    at += c.numel();
  }
  if (at > 0) comm_.start_allreduce_sum(b.flat.narrow(0, 0, at));
}

void GradBuckets::finish() {
  for (Bucket& b : buckets_) start(b);
  comm_.wait_all();
  const float scale = 1.0f / float(comm_.world());
  for (Bucket& b : buckets_) {
    const float* flat = static_cast<const float*>(b.flat.raw_data());
    int64_t at = 0;
    for (size_t k : b.members) {
      Tensor g = params_[k].grad();
      if (!g.defined()) continue;
      SCION_CHECK(g.is_contiguous(), "data parallel: the gradient of ", params_[k].desc(), " is not contiguous");
      float* dst = static_cast<float*>(g.raw_data());
      for (int64_t i = 0; i < g.numel(); ++i) dst[i] = flat[at + i] * scale;
      at += g.numel();
    }
  }
}

}  // namespace scion::runtime
