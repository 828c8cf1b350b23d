// What every communicator shares: the host-side conveniences, the single-process one, and
// reading the launcher's environment.
#include <cstdlib>
#include <cstring>

#include "runtime/communicator.h"
#include "scion/error.h"
#include "scion/ops.h"

namespace scion::runtime {

void Communicator::allreduce_mean(const std::vector<Tensor>& grads) {
  if (world() == 1) return;
  for (const Tensor& g : grads) allreduce(g, Reduce::mean);
}

void SingleProcess::allgather(const Tensor& in, const Tensor& out) {
  SCION_CHECK(in.nbytes() == out.nbytes(), "allgather: out holds ", out.nbytes(), " bytes, not ", in.nbytes());
  std::memcpy(out.raw_data(), in.raw_data(), in.nbytes());
}

namespace {
int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return end && *end == '\0' ? int(x) : dflt;
}
}  // namespace

LaunchInfo launch_info() {
  LaunchInfo l;
  if (std::getenv("OMPI_COMM_WORLD_SIZE")) {  // mpirun (OpenMPI), also under srun with PMIx
    l.launcher = "mpirun";
    l.world = env_int("OMPI_COMM_WORLD_SIZE", 1);
    l.rank = env_int("OMPI_COMM_WORLD_RANK", 0);
    l.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
  } else if (std::getenv("SLURM_PROCID") && std::getenv("SLURM_NTASKS") && std::getenv("SLURM_STEP_ID")) {
    l.launcher = "srun";  // a job step (srun), not just an sbatch script's shell
    l.world = env_int("SLURM_NTASKS", 1);
    l.rank = env_int("SLURM_PROCID", 0);
    l.local_rank = env_int("SLURM_LOCALID", 0);
  } else if (std::getenv("PMI_SIZE")) {  // Hydra / MPICH-style PMI
    l.launcher = "pmi";
    l.world = env_int("PMI_SIZE", 1);
    l.rank = env_int("PMI_RANK", 0);
    l.local_rank = env_int("MPI_LOCALRANKID", 0);
  }
  return l;
}

}  // namespace scion::runtime
