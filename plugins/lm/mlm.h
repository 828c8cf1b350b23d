// BERT's masked-LM corruption: each maskable token is selected with probability `prob`
// (15%); a selected token becomes [MASK] 80% of the time, a random token 10%, and stays
// itself 10%. Only selected positions carry a target; the rest get ignore_index (-100).
// Every draw is a pure function of (seed, position), so a batch's mask is reproducible.
#pragma once
#include <cstdint>
#include <vector>

#include "scion/tensor.h"

namespace scion::lm {

struct MlmConfig {
  float prob = 0.15f;
  float mask_fraction = 0.8f;    // of selected tokens -> [MASK]
  float random_fraction = 0.1f;  // of selected tokens -> a random token (the rest stay)
  int64_t mask_id = 103;
  int64_t vocab = 30522;
  std::vector<int64_t> never_mask;  // special ids ([CLS], [SEP], [PAD]) are never selected
};

struct MlmBatch {
  Tensor inputs;   // i64, same shape as the tokens
  Tensor targets;  // i64, the original token where selected, -100 elsewhere
  int64_t selected = 0;
};

MlmBatch mask_tokens(const Tensor& tokens, const MlmConfig& cfg, uint64_t seed);

}  // namespace scion::lm
