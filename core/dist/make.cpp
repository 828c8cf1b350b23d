// Picks the communicator of a run from the launch and the device (communicator.h).
#include "dist/mpi.h"
#include "dist/nccl.h"
#include "scion/error.h"

namespace scion::runtime {

std::shared_ptr<Communicator> make_communicator(CommChoice choice, bool cuda) {
  const LaunchInfo l = launch_info();
  if (choice == CommChoice::automatic) choice = l.world > 1 ? (cuda ? CommChoice::nccl : CommChoice::mpi) : CommChoice::single;
  switch (choice) {
    case CommChoice::single:
      SCION_CHECK(l.world == 1, "comm = \"single\", but this process is rank ", l.rank, " of ", l.world, " (", l.launcher,
                  "): every rank would train alone and write the same run directory (hint: use comm = \"auto\")");
      return std::make_shared<SingleProcess>();
    case CommChoice::mpi: return std::make_shared<MpiCommunicator>();
    case CommChoice::nccl:
#ifdef SCION_HAVE_CUDA
      return std::make_shared<NcclCommunicator>();
#else
      throw Error("comm = \"nccl\": this Scion was built without CUDA, so without NCCL (hint: comm = \"mpi\" for CPU ranks)");
#endif
    case CommChoice::automatic: break;
  }
  throw Error(std::string("unknown communicator '") + comm_name(choice) + "'");
}

}  // namespace scion::runtime
