// What `scion validate` refuses about loss.inherit's `cache`, before anything runs.
#pragma once
#include <vector>

#include "scion/plugin.h"

namespace scion::inherit {

// The cache is missing or whole-less, or was written for another graph: other data node
// parameters, data files, tokenizer, seed, stage plan or temperature, or fewer updates than the
// loss reads it for. Each problem names what differs.
std::vector<GraphProblem> check_cache(const GraphView& g, const GraphNodeView& self);

// The run's updates [0, n) at which the loss reads its teacher: n (α > 0 at some update there).
int64_t cache_steps_needed(const GraphView& g, const GraphNodeView& self);

}  // namespace scion::inherit
