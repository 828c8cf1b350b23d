// BERT's masked-LM corruption (scion/data.h).
#include <algorithm>

#include "scion/data.h"
#include "scion/error.h"
#include "scion/random.h"

namespace scion::data {

MlmBatch mask_tokens(const Tensor& tokens, const MlmConfig& cfg, uint64_t seed) {
  SCION_CHECK(cfg.prob > 0.f && cfg.prob <= 1.f, "loss.mlm: mask probability must be in (0, 1], got ", cfg.prob);
  SCION_CHECK(cfg.mask_fraction >= 0.f && cfg.random_fraction >= 0.f && cfg.mask_fraction + cfg.random_fraction <= 1.f,
              "loss.mlm: mask and random fractions must be >= 0 and add up to at most 1");
  SCION_CHECK(tokens.dtype() == DType::i64 || tokens.dtype() == DType::i32, "loss.mlm: tokens must be integer, got ",
              tokens.desc());
  std::vector<int64_t> ids = tokens.to_vector_i64();
  std::vector<int64_t> inputs = ids, targets(ids.size(), -100);
  const uint64_t s_select = derive_seed(seed, 1), s_kind = derive_seed(seed, 2), s_token = derive_seed(seed, 3);
  MlmBatch out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (std::find(cfg.never_mask.begin(), cfg.never_mask.end(), ids[i]) != cfg.never_mask.end()) continue;
    if (random_uniform(s_select, i) >= cfg.prob) continue;
    targets[i] = ids[i];
    ++out.selected;
    const float k = random_uniform(s_kind, i);
    if (k < cfg.mask_fraction) inputs[i] = cfg.mask_id;
    else if (k < cfg.mask_fraction + cfg.random_fraction) inputs[i] = int64_t(random_bits(s_token, i) % uint64_t(cfg.vocab));
  }
  out.inputs = Tensor::from_vector_i64(inputs, tokens.shape());
  out.targets = Tensor::from_vector_i64(targets, tokens.shape());
  return out;
}

}  // namespace scion::data
