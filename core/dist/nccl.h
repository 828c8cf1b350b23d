// The NCCL communicator (core/dist/nccl.cpp), present in builds with CUDA.
#pragma once
#include <memory>

#include "runtime/communicator.h"

namespace scion::runtime {

bool nccl_available();  // this build has NCCL (it was built with CUDA)

#ifdef SCION_HAVE_CUDA
class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator();
  ~NcclCommunicator() override;
  int rank() const override;
  int world() const override;
  int local_rank() const override;
  std::string name() const override { return "nccl"; }
  void allreduce(const Tensor& t, Reduce op) override;
  void broadcast(const Tensor& t, int root) override;
  void allgather(const Tensor& in, const Tensor& out) override;
  void barrier() override;
  void allreduce_host(double* v, size_t n, Reduce op) override;
  void start_allreduce_sum(const Tensor& flat) override;
  void wait_all() override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
#endif

}  // namespace scion::runtime
