// Sampling from any causal model node (input "tokens", output "logits"): temperature, top-k,
// seeded; greedy at temperature 0. The window slides past the model's context.
#pragma once
#include <cstdint>
#include <vector>

#include "scion/plugin.h"

namespace scion::runtime {

struct SampleOptions {
  int64_t max_tokens = 64;
  double temperature = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 0;
  int64_t context = 1024;
  int64_t stop_id = -1;
};

std::vector<int32_t> sample(Model& model, std::vector<int32_t> prompt, const SampleOptions& o);

}  // namespace scion::runtime
