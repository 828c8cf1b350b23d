// The MPI communicator (core/dist/mpi.cpp).
#pragma once
#include <mpi.h>

#include <vector>

#include "runtime/communicator.h"

namespace scion::runtime {

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator();  // MPI_Init_thread unless MPI is already initialised
  ~MpiCommunicator() override;
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  std::string name() const override { return "mpi"; }
  void allreduce(const Tensor& t, Reduce op) override;
  void broadcast(const Tensor& t, int root) override;
  void allgather(const Tensor& in, const Tensor& out) override;
  void barrier() override;
  void allreduce_host(double* v, size_t n, Reduce op) override;
  void start_allreduce_sum(const Tensor& flat) override;
  void wait_all() override;

 private:
  int rank_ = 0, world_ = 1, local_rank_ = 0;
  bool owns_ = false;
  std::vector<MPI_Request> pending_;
};

bool mpi_initialized();

}  // namespace scion::runtime
