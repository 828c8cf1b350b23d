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

  // Expected number of prunable parameters as the reference counts them (l0_module.py,
  // get_num_parameters_and_constraint_for_hidden), on the tape: Σ over layers of
  // E[hidden kept]·E[heads kept]·(4d² + 4d)/(H·d) + 2·E[hidden kept]·E[FFN units kept]. A head's
  // share includes its share of the attention biases; an FFN unit counts its two weights only.
  // A grouped-query layer (Llama with fewer key/value heads) has one mask per query head, and
  // counts E[hidden kept]·E[attention kept]·(2D·E[query heads kept] + 2D·E[key/value heads
  // kept]) with E[key/value heads kept] = Σ_j (1 − Π_{h reads j} (1 − p_h)) (docs/methods.md,
  // CoFi); Llama's SwiGLU units count three.
  Tensor expected_params() const;
  // The reference's prunable_model_size for the dense architecture: Σ over layers of
  // (4d² + 4d) + (2dF + 5d), the attention and FFN sublayers with their biases (embeddings and
  // LayerNorms excluded). At full masks ŝ is 5dL over it, not 0, as in the reference.
  double dense_params() const;
  // ŝ = 1 − expected_params / dense_params, on the tape.
  Tensor expected_sparsity() const;

 private:
  Architecture arch_;
  std::vector<Tensor> head_, attention_, ffn_unit_, ffn_;  // per layer
  Tensor hidden_;
};

// What the reference's expected count gives for a pruned model `a` of the dense `dense` (the
// same depth): Σ_l width·heads_l·(4d² + 4d)/(H·d) + 2·width·ffn_l, d and H the dense width
// and heads; a grouped-query layer counts width·(2D·heads_l + 2D·kv_heads_l) for its attention
// (biases as expected_params shares them). The pruned model's achieved sparsity is
// 1 − kept_params / dense_params.
double kept_params(const Architecture& a, const Architecture& dense);
// The reference's prunable_model_size of a dense architecture (see dense_params()).
double dense_params(const Architecture& dense);

}  // namespace scion::prune
