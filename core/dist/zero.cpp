#include "dist/zero.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <string>

#include "scion/error.h"

namespace scion::runtime {

ZeroShards::ZeroShards(Communicator& comm, const std::vector<Tensor>& params) : comm_(comm), params_(params) {
  const int W = comm_.world();
  std::vector<int64_t> load(size_t(W), 0);
  owner_.resize(params_.size());
  for (size_t k = 0; k < params_.size(); ++k) {  // the least-loaded rank takes the next parameter
    const int r = int(std::min_element(load.begin(), load.end()) - load.begin());
    owner_[k] = r;
    load[size_t(r)] += params_[k].numel();
  }
  for (int r = 0; r < W; ++r) flat_.push_back(Tensor::zeros({std::max<int64_t>(1, load[size_t(r)])}));
}

size_t ZeroShards::owned_elements() const {
  size_t n = 0;
  for (size_t k = 0; k < params_.size(); ++k)
    if (mine(k)) n += size_t(params_[k].numel());
  return n;
}

void ZeroShards::share_parameters() {
  for (int r = 0; r < comm_.world(); ++r) {
    float* flat = static_cast<float*>(flat_[size_t(r)].raw_data());
    int64_t at = 0;
    if (r == comm_.rank())
      for (size_t k = 0; k < params_.size(); ++k)
        if (owner_[k] == r) {
          std::memcpy(flat + at, params_[k].raw_data(), params_[k].nbytes());
          at += params_[k].numel();
        }
    comm_.broadcast(flat_[size_t(r)], r);
    if (r == comm_.rank()) continue;
    at = 0;
    for (size_t k = 0; k < params_.size(); ++k)
      if (owner_[k] == r) {
        std::memcpy(params_[k].raw_data(), flat + at, params_[k].nbytes());
        ++params_[k].impl().version;
        at += params_[k].numel();
      }
  }
}

// Serialised as: per tensor, name length, name, dtype, rank, dims, then the bytes; each
// rank's blob broadcast in turn (sizes first). Checkpoint time only.
namespace {
void put(std::vector<uint8_t>& b, const void* p, size_t n) {
  const auto* c = static_cast<const uint8_t*>(p);
  b.insert(b.end(), c, c + n);
}
template <class T>
T take(const uint8_t*& p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  p += sizeof v;
  return v;
}
}  // namespace

nn::NamedTensors ZeroShards::gather_state(const nn::NamedTensors& mine, bool every_rank) const {
  const bool receives = every_rank || comm_.rank() == 0;
  nn::NamedTensors all;
  std::set<std::string> seen;
  auto add = [&](std::string name, Tensor t, int from) {
    SCION_CHECK(seen.insert(name).second, "zero-1: optimizer state '", name, "' is kept by rank ", from,
                " and by another rank: a rank must keep only its own shard's state");
    all.emplace_back(std::move(name), std::move(t));
  };
  for (int r = 0; r < comm_.world(); ++r) {
    if (r == 0 && !every_rank) {  // rank 0 alone receives: its own state needs no sending
      if (comm_.rank() == 0)
        for (const auto& [name, t] : mine) add(name, t, 0);
      continue;
    }
    std::vector<uint8_t> blob;
    if (comm_.rank() == r)
      for (const auto& [name, t0] : mine) {
        const Tensor t = t0.contiguous();
        const uint64_t nl = name.size();
        put(blob, &nl, sizeof nl);
        put(blob, name.data(), nl);
        const uint8_t dt = uint8_t(t.dtype());
        put(blob, &dt, 1);
        const uint64_t nd = t.shape().size();
        put(blob, &nd, sizeof nd);
        for (int64_t d : t.shape()) put(blob, &d, sizeof d);
        put(blob, t.raw_data(), t.nbytes());
      }
    Tensor size = Tensor::from_vector_i64({int64_t(blob.size())}, {1});
    comm_.broadcast(size, r);
    const int64_t n = size.to_vector_i64()[0];
    Tensor bytes = Tensor::zeros({std::max<int64_t>(1, n)}, DType::u8);
    if (comm_.rank() == r && n > 0) std::memcpy(bytes.raw_data(), blob.data(), size_t(n));
    comm_.broadcast(bytes, r);
    if (!receives) continue;
    if (comm_.rank() == r) {
      for (const auto& [name, t] : mine) add(name, t, r);
      continue;
    }
    const uint8_t* p = static_cast<const uint8_t*>(bytes.raw_data());
    const uint8_t* end = p + n;
    while (p < end) {
      const uint64_t nl = take<uint64_t>(p);
      std::string name(reinterpret_cast<const char*>(p), nl);
      p += nl;
      const DType dt = DType(take<uint8_t>(p));
      const uint64_t nd = take<uint64_t>(p);
      Shape shape;
      for (uint64_t i = 0; i < nd; ++i) shape.push_back(take<int64_t>(p));
      Tensor t = Tensor::empty(shape, dt);
      std::memcpy(t.raw_data(), p, t.nbytes());
      p += t.nbytes();
      add(std::move(name), t, r);
    }
  }
  return all;
}

}  // namespace scion::runtime
