// Picks the communicator of a run from the launch and the device (communicator.h).
#include "dist/mpi.h"
#include "dist/nccl.h"
#include "scion/error.h"

namespace scion::runtime {

std::shared_ptr<Communicator> make_communicator(const std::string& choice, bool cuda) {
  const LaunchInfo l = launch_info();
  std::string c = choice.empty() ? "auto" : choice;
  if (c == "auto") c = l.world > 1 ? (cuda ? "nccl" : "mpi") : "single";
  if (c == "single") {
    SCION_CHECK(l.world == 1, "comm = \"single\", but this process is rank ", l.rank, " of ", l.world, " (", l.launcher,
                "): every rank would train alone and write the same run directory (hint: use comm = \"auto\")");
    return std::make_shared<SingleProcess>();
  }
  if (c == "mpi") return std::make_shared<MpiCommunicator>();
  if (c == "nccl") {
#ifdef SCION_HAVE_CUDA
    return std::make_shared<NcclCommunicator>();
#else
    throw Error("comm = \"nccl\": this Scion was built without CUDA, so without NCCL (hint: comm = \"mpi\" for CPU ranks)");
#endif
  }
  throw Error("unknown communicator '" + c + "' (auto, single, mpi or nccl)");
}

}  // namespace scion::runtime
