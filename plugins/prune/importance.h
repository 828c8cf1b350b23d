// Minitron's activation-based importance (Muralidharan et al., NeurIPS 2024; the aggregation
// of NVIDIA ModelOpt's implementation, docs/methods.md): heads, FFN units, hidden channels and
// whole layers of a pre-norm transformer scored from what its blocks compute on calibration
// batches (scion/activations.h), and the one-shot pruning to a target shape they rank.
#pragma once
#include <cstdint>
#include <vector>

#include "scion/activations.h"
#include "scion/surgery.h"

namespace scion::prune {

struct ImportanceScores {
  std::vector<std::vector<double>> heads;  // [layer][query head]
  std::vector<std::vector<double>> ffn;    // [layer][unit]
  std::vector<double> hidden;              // [channel]
  std::vector<double> layers;              // [layer]: 1 − mean cosine of the block's input and output
};

// Sums over calibration batches. For an activation A [B, T, N] each channel c is scored
// sqrt(Σ_rows (mean_t |A[b, t, c]|)²) over every row of every batch (mean over the sequence,
// L2 over the batch); a head is the L2 norm of its head_size channels' scores in the output
// projection's input; a hidden channel is the sum of its scores in every norm's output (the
// attention's and the FFN's norm of every layer); a layer is one minus the cosine similarity
// of its input and output, averaged over all tokens.
class ImportanceAccumulator {
 public:
  explicit ImportanceAccumulator(const Architecture& a);
  void add(const nn::ActivationRecord& batch);  // one forward pass's blocks, in layer order
  ImportanceScores scores() const;
  int64_t rows() const { return rows_; }

 private:
  Architecture arch_;
  std::vector<std::vector<double>> context_sq_, ffn_sq_;  // per layer: Σ_rows (mean_t |A|)² per channel
  std::vector<std::vector<double>> norm_sq_;              // per norm (2 per layer): the same per hidden channel
  std::vector<double> cos_sum_;                           // per layer: Σ_tokens cos(in, out)
  int64_t rows_ = 0, tokens_ = 0;
};

// A target shape: each field 0 keeps the model's.
struct PruneTarget {
  int64_t layers = 0, heads = 0, kv_heads = 0, ffn = 0, width = 0;
};

// The `n` indices with the highest scores, in ascending index order (ties: the lower index).
std::vector<int64_t> top_indices(const std::vector<double>& score, int64_t n);

// Prunes `m` (dense, uniform, pre-norm) to `target` by `s`: the least important layers go
// first, then in every kept layer the least important heads (in a grouped-query layer whole
// key/value groups, ranked by the L2 norm of their query heads' scores, so the group size is
// kept) and FFN units, then the least important hidden channels. Every ranking is the dense
// model's (one shot). Throws naming `who` on a target the model cannot take.
void prune_to_target(TransformerModel& m, const ImportanceScores& s, const PruneTarget& target, uint64_t seed,
                     const char* who);

// What prune_to_target would refuse, as a message ("" when the target is possible).
std::string target_problem(const Architecture& a, const PruneTarget& t);

}  // namespace scion::prune
