// BERT's masked-LM corruption (scion/data.h).
#include <algorithm>

#include "scion/data.h"
#include "scion/error.h"
#include "scion/random.h"

namespace scion::data {

MlmBatch mask_tokens(const Tensor& tokens, const MlmConfig& cfg, uint64_t seed) { return mask_rows(tokens, cfg, seed, 0, 1); }

MlmBatch mask_rows(const Tensor& tokens, const MlmConfig& cfg, uint64_t seed, int64_t first_row, int64_t row_step) {
  SCION_CHECK(cfg.prob > 0.f && cfg.prob <= 1.f, "loss.mlm: mask probability must be in (0, 1], got ", cfg.prob);
  SCION_CHECK(cfg.mask_fraction >= 0.f && cfg.random_fraction >= 0.f && cfg.mask_fraction + cfg.random_fraction <= 1.f,
              "loss.mlm: mask and random fractions must be >= 0 and add up to at most 1");
  SCION_CHECK(tokens.dtype() == DType::i64 || tokens.dtype() == DType::i32, "loss.mlm: tokens must be integer, got ",
              tokens.desc());
  std::vector<int64_t> ids = tokens.to_vector_i64();
  std::vector<int64_t> inputs = ids, targets(ids.size(), -100);
  const uint64_t s_select = derive_seed(seed, 1), s_kind = derive_seed(seed, 2), s_token = derive_seed(seed, 3);
  MlmBatch out;
  const size_t T = size_t(tokens.dim() > 0 ? std::max<int64_t>(1, tokens.size(-1)) : 1);
  for (size_t k = 0; k < ids.size(); ++k) {
    // The draws of a token are indexed by its window's global row, not its row here.
    const uint64_t i = uint64_t(first_row + int64_t(k / T) * row_step) * T + k % T;
    if (std::find(cfg.never_mask.begin(), cfg.never_mask.end(), ids[k]) != cfg.never_mask.end()) continue;
    if (random_uniform(s_select, i) >= cfg.prob) continue;
    targets[k] = ids[k];
    ++out.selected;
    const float u = random_uniform(s_kind, i);
    if (u < cfg.mask_fraction) inputs[k] = cfg.mask_id;
    else if (u < cfg.mask_fraction + cfg.random_fraction) inputs[k] = int64_t(random_bits(s_token, i) % uint64_t(cfg.vocab));
  }
  out.inputs = Tensor::from_vector_i64(inputs, tokens.shape());
  out.targets = Tensor::from_vector_i64(targets, tokens.shape());
  return out;
}

}  // namespace scion::data
