// The MPI communicator (Debian's OpenMPI): CPU tensors, MPI_COMM_WORLD. MPI is initialised
// only when a run is launched on several ranks, so a plain `scion run` pays nothing for it.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "dist/mpi.h"
#include "runtime/stop_signals.h"
#include "scion/error.h"

namespace scion::runtime {

namespace {
MPI_Datatype mpi_type(const Tensor& t) {
  SCION_CHECK(t.dtype() == DType::f32, "mpi: allreduce of ", t.desc(), ": only f32 tensors are reduced");
  return MPI_FLOAT;
}
MPI_Op mpi_op(Reduce op) { return op == Reduce::max ? MPI_MAX : MPI_SUM; }
void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(rc, msg, &n);
  throw Error(std::string("mpi: ") + what + " failed: " + std::string(msg, size_t(n)));
}
void check_host(const Tensor& t, const char* what) {
  SCION_CHECK(t.defined() && t.device().is_cpu() && t.is_contiguous(), "mpi: ", what, " needs a contiguous CPU tensor, got ",
              t.defined() ? t.desc() : std::string("an undefined tensor"), " (CUDA tensors go through the NCCL communicator)");
}
// Divides in place by the world size (mean = sum / world).
void scale(const Tensor& t, int world) {
  float* p = static_cast<float*>(t.raw_data());
  const float s = 1.0f / float(world);
  for (int64_t i = 0; i < t.numel(); ++i) p[i] *= s;
}
}  // namespace

bool mpi_initialized() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

MpiCommunicator::MpiCommunicator() {
  if (!mpi_initialized()) {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    owns_ = true;
  }
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  threaded_ = level >= MPI_THREAD_SERIALIZED;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_free(&local);
  if (const char* v = std::getenv("SCION_COLLECTIVE_TIMEOUT_S")) {
    char* end = nullptr;
    const double s = std::strtod(v, &end);
    SCION_CHECK(end != v && *end == 0 && s > 0 && s < 1e9, "SCION_COLLECTIVE_TIMEOUT_S='", v,
                "': expected a number of seconds above 0");
    timeout_ = std::chrono::duration<double>(s);
  }
  // A rank whose mpirun (or srun step) was killed stops instead of training on unsupervised.
  if (world_ > 1) watch_launcher("rank " + std::to_string(rank_));
}

MpiCommunicator::~MpiCommunicator() {
  if (worker_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    worker_.join();
  }
  // Without its launcher, MPI_Finalize would wait for it forever.
  if (owns_ && mpi_initialized() && !launcher_gone()) MPI_Finalize();
}

void MpiCommunicator::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ and nothing left
    Tensor flat = queue_.front();
    queue_.pop_front();
    const bool failed = error_ != nullptr;  // after an error no MPI call but MPI_Abort's
    lock.unlock();
    std::exception_ptr error;
    if (!failed) try {
        // Every rank at this bucket first (a barrier waited for without spinning, with the
        // limit), then the tuned blocking all-reduce, which then has nobody to wait for.
        MPI_Request r;
        check(MPI_Ibarrier(MPI_COMM_WORLD, &r), "MPI_Ibarrier");
        wait(r, "MPI_Ibarrier (before a gradient bucket's all-reduce)");
        check(MPI_Allreduce(MPI_IN_PLACE, flat.raw_data(), int(flat.numel()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
              "MPI_Allreduce (gradient bucket)");
      } catch (...) {
        error = std::current_exception();
      }
    lock.lock();
    if (error && !error_) error_ = error;
    if (--in_flight_ == 0) idle_cv_.notify_all();
  }
}

void MpiCommunicator::allreduce(const Tensor& t, Reduce op) {
  wait_all();
  check_host(t, "allreduce");
  if (world_ == 1 || t.numel() == 0) return;
  MPI_Request r;
  check(MPI_Iallreduce(MPI_IN_PLACE, t.raw_data(), int(t.numel()), mpi_type(t), mpi_op(op), MPI_COMM_WORLD, &r),
        "MPI_Iallreduce");
  wait(r, "MPI_Iallreduce");
  if (op == Reduce::mean) scale(t, world_);
}

void MpiCommunicator::broadcast(const Tensor& t, int root) {
  wait_all();
  check_host(t, "broadcast");
  if (world_ == 1 || t.nbytes() == 0) return;
  MPI_Request r;
  check(MPI_Ibcast(t.raw_data(), int(t.nbytes()), MPI_BYTE, root, MPI_COMM_WORLD, &r), "MPI_Ibcast");
  wait(r, "MPI_Ibcast");
}

void MpiCommunicator::allgather(const Tensor& in, const Tensor& out) {
  wait_all();
  check_host(in, "allgather");
  check_host(out, "allgather");
  SCION_CHECK(out.nbytes() == in.nbytes() * size_t(world_), "allgather: out holds ", out.nbytes(), " bytes, not ",
              in.nbytes() * size_t(world_));
  MPI_Request r;
  check(MPI_Iallgather(in.raw_data(), int(in.nbytes()), MPI_BYTE, out.raw_data(), int(in.nbytes()), MPI_BYTE,
                       MPI_COMM_WORLD, &r),
        "MPI_Iallgather");
  wait(r, "MPI_Iallgather");
}

void MpiCommunicator::allreduce_host(double* v, size_t n, Reduce op) {
  wait_all();
  if (world_ == 1 || n == 0) return;
  MPI_Request r;
  check(MPI_Iallreduce(MPI_IN_PLACE, v, int(n), MPI_DOUBLE, mpi_op(op), MPI_COMM_WORLD, &r), "MPI_Iallreduce");
  wait(r, "MPI_Iallreduce (host values)");
  if (op == Reduce::mean)
    for (size_t i = 0; i < n; ++i) v[i] /= double(world_);
}

void MpiCommunicator::barrier() {
  wait_all();
  MPI_Request r;
  check(MPI_Ibarrier(MPI_COMM_WORLD, &r), "MPI_Ibarrier");
  wait(r, "MPI_Ibarrier");
}

void MpiCommunicator::start_allreduce_sum(const Tensor& flat) {
  check_host(flat, "allreduce");
  SCION_CHECK(flat.dtype() == DType::f32, "mpi: a gradient bucket is f32, got ", flat.desc());
  if (world_ == 1) return;
  if (threaded_) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!worker_.joinable()) worker_ = std::thread([this] { worker_loop(); });
      queue_.push_back(flat);
      ++in_flight_;
    }
    work_cv_.notify_one();
    return;
  }
  MPI_Request r;
  check(MPI_Iallreduce(MPI_IN_PLACE, flat.raw_data(), int(flat.numel()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &r),
        "MPI_Iallreduce");
  pending_.push_back(r);
  // OpenMPI progresses non-blocking collectives inside MPI calls: testing the ones in flight
  // moves them on while backward computes the next bucket.
  int done = 0;
  MPI_Testall(int(pending_.size()), pending_.data(), &done, MPI_STATUSES_IGNORE);
}

void MpiCommunicator::wait_all() {
  if (threaded_) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!idle_cv_.wait_for(lock, timeout_, [&] { return in_flight_ == 0; }))
      collective_stalled("MPI_Allreduce (gradient bucket)");
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    return;
  }
  if (pending_.empty()) return;
  for (MPI_Request& r : pending_) wait(r, "MPI_Iallreduce (gradient bucket)");
  pending_.clear();
}

void MpiCommunicator::wait(MPI_Request& r, const char* what) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto nap = std::chrono::microseconds(50);
  for (;;) {
    int done = 0;
    check(MPI_Test(&r, &done, MPI_STATUS_IGNORE), what);
    if (done) return;
    const auto waited = Clock::now() - start;
    if (waited > timeout_) collective_stalled(what);
    if (waited > std::chrono::milliseconds(1)) {
      std::this_thread::sleep_for(nap);
      nap = std::min(nap * 2, std::chrono::microseconds(10000));
    }
  }
}

void MpiCommunicator::collective_stalled(const char* what) const {
  std::string others;
  for (int r = 0; r < world_; ++r)
    if (r != rank_) others += (others.empty() ? "" : ", ") + std::to_string(r);
  throw Error("mpi: rank " + std::to_string(rank_) + ": " + what + " has not completed in " +
              std::to_string(int(timeout_.count())) + " s: " + (world_ == 2 ? "rank " : "one of ranks ") + others +
              " stopped responding (stopped, hung or lost); ending the job (hint: SCION_COLLECTIVE_TIMEOUT_S sets "
              "the limit, in seconds)");
}

void abort_distributed(int code) {
  if (mpi_initialized()) MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace scion::runtime
