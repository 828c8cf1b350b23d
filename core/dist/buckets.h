// Data-parallel gradient reduction in buckets (after PyTorch DDP's design): the trained
// parameters, in reverse order (the order backward finishes them), are cut into buckets of
// about `bucket_bytes`; when the last gradient of a bucket is final during backward
// (autograd's leaf-ready hook) its gradients are packed into one preallocated flat buffer and
// its all-reduce starts, while backward goes on. finish() starts what is left (buckets with a
// parameter that got no gradient this step), waits for all and unpacks the means. Which
// parameters have a gradient depends on the graph and the step only, so the flat layout of
// every bucket is the same on every rank, and the result is deterministic for a world size.
#pragma once
#include <cstddef>
#include <unordered_map>
#include <vector>

#include "runtime/communicator.h"
#include "scion/tensor.h"

namespace scion::runtime {

class GradBuckets {
 public:
  GradBuckets(Communicator& comm, const std::vector<Tensor>& params, size_t bucket_bytes = 4u << 20);
  void begin_step();
  void on_ready(const TensorImpl* leaf);  // the leaf-ready hook
  void finish();                          // after backward: every bucket reduced, grads = mean over ranks
  size_t buckets() const { return buckets_.size(); }
  size_t started_during_backward() const { return early_; }

 private:
  struct Bucket {
    std::vector<size_t> members;  // indices into params_
    Tensor flat;                  // f32 [capacity], allocated once
    size_t ready = 0;
    bool started = false;
  };
  void start(Bucket& b);
  Communicator& comm_;
  std::vector<Tensor> params_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const TensorImpl*, size_t> bucket_of_;
  size_t early_ = 0;
};

}  // namespace scion::runtime
