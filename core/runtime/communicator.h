// The data-parallel seam. Every rank runs the same graph on its own share of the data; the
// executor reduces gradients, losses and metrics through a Communicator. One process is rank
// 0 of 1 and needs no communication (SingleProcess); MPI (CPU tensors, core/dist/mpi.cpp) and
// NCCL (CUDA tensors, core/dist/nccl.cpp) plug in here. docs/distributed.md.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "graph/run_spec.h"
#include "scion/tensor.h"

namespace scion::runtime {

enum class Reduce { sum, mean, max };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual int local_rank() const { return rank(); }
  virtual std::string name() const = 0;  // "single", "mpi", "nccl"
  bool is_writer() const { return rank() == 0; }  // only rank 0 writes files

  // In place, over every rank; the same call order on every rank. Contiguous f32 tensors
  // (allreduce), any dtype (broadcast, allgather: bytes).
  virtual void allreduce(const Tensor& t, Reduce op) = 0;
  virtual void broadcast(const Tensor& t, int root) = 0;
  // `out` holds world() copies of `in`'s bytes, rank by rank.
  virtual void allgather(const Tensor& in, const Tensor& out) = 0;
  virtual void barrier() = 0;

  // A non-blocking all-reduce (sum) of a flat f32 buffer, for gradient buckets launched
  // during backward; wait() completes every one started, in order.
  virtual void start_allreduce_sum(const Tensor& flat) { allreduce(flat, Reduce::sum); }
  virtual void wait_all() {}

  // Doubles on the host (losses, metric sums, a stop flag), whatever the device.
  virtual void allreduce_host(double* v, size_t n, Reduce op) = 0;
  void allreduce(std::vector<double>& v, Reduce op) { allreduce_host(v.data(), v.size(), op); }
  // Each gradient becomes the mean over ranks (one call per tensor; the executor's bucketed
  // path is in core/dist/buckets.h).
  void allreduce_mean(const std::vector<Tensor>& grads);
};

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  std::string name() const override { return "single"; }
  void allreduce(const Tensor&, Reduce) override {}
  void broadcast(const Tensor&, int) override {}
  void allgather(const Tensor& in, const Tensor& out) override;
  void barrier() override {}
  void allreduce_host(double*, size_t, Reduce) override {}
};

// Where this process stands in a launch: mpirun (OpenMPI's OMPI_COMM_WORLD_*), srun (Slurm's
// SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID), or a PMI launcher (PMI_RANK / PMI_SIZE).
// world 1 when none of them is set.
struct LaunchInfo {
  int rank = 0, world = 1, local_rank = 0;
  std::string launcher = "none";  // "mpirun", "srun", "pmi", "none"
};
LaunchInfo launch_info();

// The communicator for this process: `choice` is "auto" (MPI when launched with world > 1, for
// CPU runs; NCCL for CUDA runs), "single", "mpi" or "nccl". A plain `scion run` gets
// SingleProcess and never initialises MPI. Throws naming what is missing (no MPI launch, a
// build without NCCL).
std::shared_ptr<Communicator> make_communicator(CommChoice choice, bool cuda);

// Ends every rank of a multi-rank job with `code` (MPI_Abort), so that one rank's error does
// not leave the others waiting in a collective; nothing when MPI was never initialised.
void abort_distributed(int code);

}  // namespace scion::runtime
