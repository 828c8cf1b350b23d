// [run]: how the whole graph runs (name, seed, device, threads, precision, communicator),
// read once at validation into typed values (run_spec.cpp checks the table).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "scion/device.h"
#include "scion/precision.h"

namespace scion::runtime {

// [run] comm: the data-parallel communicator (runtime/communicator.h, make_communicator).
enum class CommChoice {
  automatic,  // MPI for CPU ranks, NCCL for GPU ranks when launched with mpirun/srun; none for one process
  single,
  mpi,
  nccl
};
std::optional<CommChoice> parse_comm(std::string_view name);  // "auto", "single", "mpi", "nccl"
const char* comm_name(CommChoice c);

// [run] device: a device, or "auto" (the first CUDA device when one is available, else the CPU).
struct DeviceChoice {
  bool automatic = false;
  Device device = Device::cpu();  // when not automatic

  Device resolve() const { return automatic ? (cuda_available() ? Device::cuda(0) : Device::cpu()) : device; }
  std::string str() const { return automatic ? "auto" : device.str(); }
};

struct RunSpec {
  std::string name;  // the run directory is runs/<name>; default: the graph file's stem
  uint64_t seed = 0;
  DeviceChoice device;
  int threads = 0;  // CPU threads, 0 = all
  MatmulPrecision precision = MatmulPrecision::f32;  // f32, or bf16 GEMM inputs (scion/precision.h)
  CommChoice comm = CommChoice::automatic;
  int zero_stage = 0;           // zero = 1 shards the optimizer state over ranks
  bool skip_nonfinite = false;  // on_nonfinite = "skip": drop a step whose loss or gradient is not finite
};

}  // namespace scion::runtime
