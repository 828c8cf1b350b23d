// ZeRO stage 1 (Rajbhandari et al., 2020): optimizer state sharded over ranks. Each trained
// parameter has one owner rank (balanced by size, in plan order); each rank steps only the
// parameters it owns, so it keeps only their moments, then every owner broadcasts its updated
// parameters in one flat buffer. The arithmetic per parameter is the one a single optimizer
// does, so the losses equal those without ZeRO bit for bit. Checkpoints gather every rank's
// state into rank 0's one optimizer file, which loads on any world size, with or without ZeRO;
// a resumed rank, and a stage that continues the optimizer after ops, keeps only its shard
// (Executor::keep_own_shard_state).
#pragma once
#include <vector>

#include "runtime/communicator.h"
#include "scion/nn.h"

namespace scion::runtime {

class ZeroShards {
 public:
  ZeroShards(Communicator& comm, const std::vector<Tensor>& params);
  int owner(size_t param) const { return owner_[param]; }
  bool mine(size_t param) const { return owner_[param] == comm_.rank(); }
  // After this rank stepped its own parameters: every parameter takes its owner's values.
  void share_parameters();
  // Every rank's optimizer state, on rank 0 (the others get nothing back), or with
  // `every_rank` on every rank; all ranks call it. Each rank passes the state it keeps: its
  // own shard's (a key found on two ranks is an error here, not in the checkpoint file).
  nn::NamedTensors gather_state(const nn::NamedTensors& mine, bool every_rank = false) const;
  size_t owned_elements() const;

 private:
  Communicator& comm_;
  std::vector<Tensor> params_;
  std::vector<int> owner_;
  std::vector<Tensor> flat_;  // per owner rank, f32, allocated once
};

}  // namespace scion::runtime
