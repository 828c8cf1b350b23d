// A model node's architecture as its graph parameters give it, for the pruning plugins' graph
// checks: none when it loads a checkpoint (its sizes are in the file, checked when it is made)
// or when its own check refuses the sizes.
#pragma once
#include <optional>

#include "scion/plugin.h"
#include "scion/surgery.h"

namespace scion::prune {

std::optional<Architecture> graph_architecture(const GraphNodeView& model);

}  // namespace scion::prune
