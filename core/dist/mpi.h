// The MPI communicator (core/dist/mpi.cpp).
#pragma once
#include <mpi.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
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
  // Every collective is nonblocking and waited for with a limit (wait()); a gradient bucket's
  // blocking all-reduce runs once a nonblocking barrier says every rank reached it.
  // Gradient buckets: handed to a communication thread that runs a blocking MPI_Allreduce
  // on each, in the order given, while backward goes on. OpenMPI's non-blocking
  // MPI_Iallreduce (libnbc) moves only inside MPI calls and runs a slower algorithm than its
  // tuned blocking one (bench_allreduce: about 3x on 64 MB); a thread gets both the overlap
  // and the tuned speed. Needs MPI_THREAD_SERIALIZED; with less, MPI_Iallreduce.
  void start_allreduce_sum(const Tensor& flat) override;
  void wait_all() override;

 private:
  void worker_loop();
  // Waits for a nonblocking collective: MPI_Test, spinning for a millisecond, then sleeping in
  // growing naps (up to 10 ms), so a rank waiting for a stalled one does not burn a core; after
  // timeout_ an error names the ranks waited for (collective_stalled).
  void wait(MPI_Request& r, const char* what);
  [[noreturn]] void collective_stalled(const char* what) const;
  int rank_ = 0, world_ = 1, local_rank_ = 0;
  std::chrono::duration<double> timeout_{600.0};  // SCION_COLLECTIVE_TIMEOUT_S
  bool owns_ = false;
  bool threaded_ = false;  // MPI_THREAD_SERIALIZED or more was provided
  std::vector<MPI_Request> pending_;  // MPI_Iallreduce fallback
  // The communication thread: every other method waits for its queue to drain first, so two
  // threads never call MPI at once.
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable work_cv_, idle_cv_;
  std::deque<Tensor> queue_;
  size_t in_flight_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

bool mpi_initialized();

}  // namespace scion::runtime
