// Sampling from a GPT: temperature, top-k, seeded. Greedy when temperature is 0.
#pragma once
#include <cstdint>
#include <vector>

#include "gpt_model.h"

namespace scion::lm {

struct SampleConfig {
  int64_t max_tokens = 64;
  float temperature = 1.0f;
  int64_t top_k = 0;  // 0 = whole vocabulary
  uint64_t seed = 0;
  int64_t stop_id = -1;  // stop after emitting this id (e.g. end-of-text); -1 = never
};

// Returns the prompt followed by the generated ids. The context window slides when the
// sequence outgrows the model's context.
std::vector<int32_t> generate(const GptModel& model, std::vector<int32_t> prompt, const SampleConfig& cfg);

}  // namespace scion::lm
