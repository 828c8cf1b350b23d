// CoFi's masks over one transformer: log α for every attention sublayer, head, FFN sublayer,
// FFN unit and hidden dimension; their hard-concrete samples set as the model's structural
// gates; the expected sparsity computed analytically from the keep probabilities.
#pragma once
#include <string>
#include <vector>

#include "scion/surgery.h"

namespace scion::prune {

struct MaskInit {
  float log_alpha = 10.f;  // mean log α of heads, sublayers and hidden dimensions (nearly always on)
  // Mean log α of FFN units. The reference initialises them from droprate 0.5 (log α = 0, about
  // 83% expected on), which its maintainer calls "mostly a typo" (issue #51); 0 keeps that.
  float ffn_unit_log_alpha = 0.f;
  float std = 0.01f;
  uint64_t seed = 0;
};

class CofiMasks {
 public:
  CofiMasks() = default;
  // Masks for `arch` (every layer must have both sublayers: CoFi prunes a dense model).
  CofiMasks(const Architecture& arch, const MaskInit& init);

  // The log α tensors by name ("head.3", "attention.3", "ffn_unit.3", "ffn.3", "hidden"):
  // leaves that require grad, the same tensors for the masks' life.
  nn::NamedTensors log_alphas() const;
  const Architecture& architecture() const { return arch_; }

  // Sets one hard-concrete sample per gate (seeded by `seed`) as the model's gates, on the tape.
  void set_sampled(TransformerModel& m, uint64_t seed) const;
  // Sets the deterministic (evaluation) masks as the model's gates, off the tape.
  void set_deterministic(TransformerModel& m) const;
  // Clamps every log α into [log 0.01, log 100].
  void clamp();

  // Expected number of prunable parameters, Σ over layers of 4·d_h·E[hidden kept]·E[heads
  // kept] + 2·E[hidden kept]·E[FFN units kept] (the weight matrices of the blocks; embeddings,
  // LayerNorms and biases excluded, as the reference counts), on the tape.
  Tensor expected_params() const;
  // The same count for the dense architecture the masks were made for.
  double dense_params() const;
  // ŝ = 1 − expected_params / dense_params, on the tape.
  Tensor expected_sparsity() const;

 private:
  Architecture arch_;
  std::vector<Tensor> head_, attention_, ffn_unit_, ffn_;  // per layer
  Tensor hidden_;
};

// The prunable parameters a model has now: Σ 4·d·d_h·heads + 2·d·ffn over its blocks.
double prunable_params(const Architecture& a);

}  // namespace scion::prune
