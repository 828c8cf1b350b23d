// The NCCL communicator: CUDA tensors, one GPU per rank (cudaSetDevice(local rank)), its
// unique id made on rank 0 and broadcast over MPI (the usual bootstrap). Compiled whenever
// CUDA is; it runs where a GPU is lent (scripts/device-check.sh), never on the CPU CI.
#include "dist/nccl.h"

#ifdef SCION_HAVE_CUDA
#include <cuda_runtime.h>
#include <mpi.h>
#include <nccl.h>

#include "dist/mpi.h"
#include "scion/error.h"

namespace scion::runtime {

namespace {
void check_nccl(ncclResult_t r, const char* what) {
  if (r != ncclSuccess) throw Error(std::string("nccl: ") + what + " failed: " + ncclGetErrorString(r));
}
void check_cuda(cudaError_t r, const char* what) {
  if (r != cudaSuccess) throw Error(std::string("nccl: ") + what + " failed: " + cudaGetErrorString(r));
}
ncclDataType_t nccl_type(const Tensor& t) {
  switch (t.dtype()) {
    case DType::f32: return ncclFloat32;
    case DType::bf16: return ncclBfloat16;
    default: throw Error("nccl: allreduce of " + t.desc() + ": only f32 and bf16 tensors are reduced");
  }
}
void check_device(const Tensor& t, const char* what) {
  SCION_CHECK(t.defined() && t.device().is_cuda() && t.is_contiguous(), "nccl: ", what,
              " needs a contiguous CUDA tensor, got ", t.defined() ? t.desc() : std::string("an undefined tensor"),
              " (CPU tensors go through the MPI communicator)");
}
}  // namespace

struct NcclCommunicator::Impl {
  MpiCommunicator mpi;  // bootstrap, barrier
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
};

NcclCommunicator::NcclCommunicator() : impl_(std::make_unique<Impl>()) {
  check_cuda(cudaSetDevice(impl_->mpi.local_rank()), "cudaSetDevice(local rank)");
  ncclUniqueId id;
  if (impl_->mpi.rank() == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
  MPI_Bcast(&id, int(sizeof id), MPI_BYTE, 0, MPI_COMM_WORLD);
  check_nccl(ncclCommInitRank(&impl_->comm, impl_->mpi.world(), id, impl_->mpi.rank()), "ncclCommInitRank");
  check_cuda(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking), "cudaStreamCreate");
}

NcclCommunicator::~NcclCommunicator() {
  if (impl_->comm) ncclCommDestroy(impl_->comm);
  if (impl_->stream) cudaStreamDestroy(impl_->stream);
}

int NcclCommunicator::rank() const { return impl_->mpi.rank(); }
int NcclCommunicator::world() const { return impl_->mpi.world(); }
int NcclCommunicator::local_rank() const { return impl_->mpi.local_rank(); }

void NcclCommunicator::allreduce(const Tensor& t, Reduce op) {
  check_device(t, "allreduce");
  const ncclRedOp_t o = op == Reduce::max ? ncclMax : op == Reduce::mean ? ncclAvg : ncclSum;
  check_nccl(ncclAllReduce(t.raw_data(), t.raw_data(), size_t(t.numel()), nccl_type(t), o, impl_->comm, impl_->stream),
             "ncclAllReduce");
  check_cuda(cudaStreamSynchronize(impl_->stream), "cudaStreamSynchronize");
}

void NcclCommunicator::broadcast(const Tensor& t, int root) {
  check_device(t, "broadcast");
  check_nccl(ncclBroadcast(t.raw_data(), t.raw_data(), t.nbytes(), ncclInt8, root, impl_->comm, impl_->stream),
             "ncclBroadcast");
  check_cuda(cudaStreamSynchronize(impl_->stream), "cudaStreamSynchronize");
}

void NcclCommunicator::allgather(const Tensor& in, const Tensor& out) {
  check_device(in, "allgather");
  check_device(out, "allgather");
  SCION_CHECK(out.nbytes() == in.nbytes() * size_t(world()), "allgather: out holds ", out.nbytes(), " bytes, not ",
              in.nbytes() * size_t(world()));
  check_nccl(ncclAllGather(in.raw_data(), out.raw_data(), in.nbytes(), ncclInt8, impl_->comm, impl_->stream),
             "ncclAllGather");
  check_cuda(cudaStreamSynchronize(impl_->stream), "cudaStreamSynchronize");
}

void NcclCommunicator::barrier() { impl_->mpi.barrier(); }
void NcclCommunicator::allreduce_host(double* v, size_t n, Reduce op) { impl_->mpi.allreduce_host(v, n, op); }

// Buckets are queued on the communicator's stream and overlap the rest of backward.
void NcclCommunicator::start_allreduce_sum(const Tensor& flat) {
  check_device(flat, "allreduce");
  check_nccl(ncclAllReduce(flat.raw_data(), flat.raw_data(), size_t(flat.numel()), nccl_type(flat), ncclSum,
                           impl_->comm, impl_->stream),
             "ncclAllReduce");
}

void NcclCommunicator::wait_all() { check_cuda(cudaStreamSynchronize(impl_->stream), "cudaStreamSynchronize"); }

bool nccl_available() { return true; }

}  // namespace scion::runtime

#else

namespace scion::runtime {
bool nccl_available() { return false; }
}  // namespace scion::runtime

#endif
