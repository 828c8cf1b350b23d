// The data-parallel seam: between backward and the optimizer step, every rank's gradients
// are averaged. One process is rank 0 of 1 and needs no communication; the MPI (CPU) and
// NCCL (GPU) communicators plug in here (Distributed section of the architecture guide).
#pragma once
#include <vector>

#include "scion/tensor.h"

namespace scion::runtime {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // In place: each gradient becomes the mean over ranks.
  virtual void allreduce_mean(const std::vector<Tensor>& grads) = 0;
  bool is_writer() const { return rank() == 0; }  // only rank 0 writes files
};

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  void allreduce_mean(const std::vector<Tensor>&) override {}
};

}  // namespace scion::runtime
