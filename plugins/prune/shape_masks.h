// Sheared-LLaMA's masks (Xia, Gao, Zeng, Chen, ICLR 2024): hard-concrete gates that drive a
// transformer to a target architecture — a layer mask (both sublayers of a layer), a head
// mask per layer (one per key/value group in a grouped-query layer), an FFN-unit mask per
// layer and a hidden-dimension mask — each structure with its own Lagrangian, so that every
// layer ends with the same counts and the final cut keeps exactly the target shape.
#pragma once
#include <string>
#include <vector>

#include "scion/surgery.h"

namespace scion::prune {

// The target architecture: each field 0 keeps the model's (and that structure gets no mask).
struct TargetShape {
  int64_t layers = 0, heads = 0, ffn = 0, width = 0;
};

// What a dense, uniform model cannot be pruned to, in words ("" when it can): a target larger
// than the model, query heads that do not fill whole key/value groups, nothing to prune.
std::string shape_problem(const Architecture& dense, const TargetShape& t);

class ShapeMasks {
 public:
  ShapeMasks() = default;
  // log α ~ N(log_alpha, std²) per gate (the reference: N(5, 0.01), clamped to [ln 0.01, ln 100]).
  ShapeMasks(const Architecture& dense, const TargetShape& target, float log_alpha, float std, uint64_t seed);

  // "layer", "head.<l>", "ffn_unit.<l>", "hidden": leaves that require grad.
  nn::NamedTensors log_alphas() const;
  const Architecture& architecture() const { return arch_; }
  // The masked structures in the Lagrangian's order ("layers", "heads", "ffn", "width"):
  // entry m of the λ₁ and λ₂ tensors belongs to structures()[m].
  const std::vector<std::string>& structures() const { return names_; }

  // One hard-concrete sample per gate as the model's gates, on the tape.
  void set_sampled(TransformerModel& m, uint64_t seed) const;
  // The evaluation masks (each row keeps round(Σ P(z ≠ 0)) of its gates), off the tape.
  void set_deterministic(TransformerModel& m) const;
  // The final masks: every row keeps exactly its target count, its largest soft values.
  void set_exact(TransformerModel& m) const;
  void clamp();

  // Σ_m mean over rows r of [λ₁[m]·(ŝ_r − t_m) + λ₂[m]·(ŝ_r − t_m)²], with ŝ_r = 1 − Σ P(z ≠ 0) /
  // (the row's gates) and t_m = ramp·(1 − target/size) (ramp in [0, 1]); on the tape.
  Tensor lagrangian(const Tensor& lambda_1, const Tensor& lambda_2, double ramp) const;
  // Per structure: the mean over rows of ŝ_r, and the final target sparsity 1 − target/size.
  std::vector<double> expected_sparsity() const;
  std::vector<double> target_sparsity() const;

 private:
  struct Structure {
    std::string name;
    std::vector<const Tensor*> rows;  // log α of each row
    int64_t keep = 0, size = 0;       // per row
  };
  std::vector<Structure> structures_list() const;
  void set(TransformerModel& m, int mode, uint64_t seed) const;

  Architecture arch_;
  TargetShape target_;
  std::vector<std::string> names_;
  Tensor layer_, hidden_;
  std::vector<Tensor> head_, ffn_;
  int64_t group_ = 1;  // query heads per head gate
};

// Removes the layers whose two sublayers were both pruned away (what a closed layer mask
// leaves), so the model's depth is its number of layers that still compute something.
void drop_empty_layers(TransformerModel& m, uint64_t seed);

}  // namespace scion::prune
