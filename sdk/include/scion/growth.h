// Model growth by parameter reuse, done through the SDK's model-surgery interface
// (scion::TransformerModel), so it applies to any transformer model plugin. The grow.* ops
// (plugins/growth) and ELLE's expansion (plugins/lifelong) are built on it.
//
//  * widen():   Net2WiderNet / bert2BERT width growth. The residual width grows by a global
//               unit map g (shared by embeddings, every layer and the head), attention grows
//               by whole heads at a fixed head size, each layer's FFN by its own map. A new
//               unit copies its source's weights on the axes that produce it; on the axes
//               that read it (ParamLayout's in-axes) weights are divided by the copy count.
//               With method = aki (bert2BERT's advanced knowledge initialisation) the new
//               out-units of layer l copy layer l+1's weights instead of layer l's.
//               HyperCloning is widen() by an integer factor with the uniform (tiled) map, its
//               pairwise noise at a signal-to-noise ratio (snr_db), a multi-query model's one
//               key/value head kept (keep_single_kv_head).
//  * deepen():  depth growth from a layer order (scion::surgery::reorder_blocks):
//               StackingBERT's [0..L-1, 0..L-1], G_stack's [0..L-1] repeated g times,
//               bert2BERT's stacking with the top layers repeated, or Net2DeeperNet's identity
//               blocks (order entry -1) — exact only for pre-LN models (GPT).
//
// What is exact (checked in tests/growth): widen with uniform duplication (new width a
// multiple of the old) in fpi mode, for GPT (pre-LN) and BERT (post-LN); deepen with identity
// blocks in GPT. What is not: random duplication under LayerNorm (mean and variance change),
// AKI, stacking, identity blocks in post-LN BERT. Tied input/output embeddings cannot both
// be copied and divided, so widening unties the output head.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "scion/surgery.h"

namespace scion::growth {

// g[j] = the old unit that new unit j copies; count[i] = how many new units copy old unit i.
struct UnitMap {
  std::vector<int64_t> g;
  std::vector<int64_t> count;
  int64_t old_size() const { return int64_t(count.size()); }
  int64_t new_size() const { return int64_t(g.size()); }
};
// New units 0..old-1 keep their index; units beyond copy unit (j mod old) when `uniform`,
// else a unit drawn uniformly at random (seeded), as Net2Net does.
UnitMap make_map(int64_t old_size, int64_t new_size, bool uniform, uint64_t seed);

enum class Method { fpi, aki };

struct WidthOptions {
  int64_t width = 0;     // new residual width; a multiple of the head size
  int64_t ffn = 0;       // new FFN width (0 = keep the FFN/width ratio)
  bool uniform = true;   // uniform duplication (exact under LayerNorm when width is a multiple)
  Method method = Method::fpi;
  float noise = 0.f;     // std of symmetry-breaking noise on divided copies, zero-sum over
                         // each unit's copies, so exactness is kept
  // HyperCloning's noise instead (> 0): on each divided weight (the output head excepted),
  // Gaussian noise at this signal-to-noise ratio (dB, against the weight's mean square) added
  // to the first copy of each pair of copies and subtracted from the second (an odd copy out
  // stays clean): the sums, and so the function, are kept.
  double snr_db = 0;
  // HyperCloning keeps a multi-query model's single key/value head (its query heads grow);
  // otherwise key/value heads grow with their groups.
  bool keep_single_kv_head = false;
  uint64_t seed = 0;
};

// Widens `m` in place. `who` names the op in errors.
void widen(TransformerModel& m, const WidthOptions& opt, const char* who = "grow.net2wider");

// order[i] = the source layer that new layer i copies, or -1 for an identity block.
void deepen(TransformerModel& m, const std::vector<int64_t>& order, uint64_t seed = 0);

std::vector<int64_t> stacking_order(int64_t layers);                   // [0..L-1, 0..L-1]
std::vector<int64_t> gstack_order(int64_t layers, int64_t factor);     // [0..L-1] repeated `factor` times
std::vector<int64_t> bert2bert_depth_order(int64_t from, int64_t to);  // floor(to/from) stacks + top layers
// Identity blocks inserted after each listed source layer (-1 = at the bottom).
std::vector<int64_t> identity_insertion_order(int64_t layers, const std::vector<int64_t>& after);

// G_stack's growth-timing rule (Du et al., NeurIPS 2024; the fit in its README): the tokens d
// to train the small model before stacking, for a target of `params` parameters trained with
// `flops` FLOPs (C ≈ 6·N·D): log10 d = 0.88·log10 N + 163.27 / log10 C − 5.74.
double gstack_growth_tokens(double params, double flops);

// The graph check of an op that grows `target` (its parameters width, ffn and layers, each 0 =
// unchanged): what apply() would refuse or could not hold, known from the target's sizes in
// the graph (a target that loads a checkpoint has them in its file: not checked). An earlier
// op may have grown the target already, so these are bounds every op must meet: a width that
// is a multiple of the head size and not below the model's, an FFN and a depth not below
// the model's, and a grown model whose weights fit in this machine's memory. With ffn = 0
// the FFN keeps its ratio to the width when `keeps_ffn_ratio`, else its size.
std::vector<GraphProblem> check_target(const GraphView& g, const GraphNodeView& op, bool keeps_ffn_ratio);

// At apply(), where the model's own sizes are known (a target that loaded a checkpoint): throws
// naming `who` when a model of `a`'s family grown to width, ffn and layers would not hold its
// weights in this machine's memory, before anything is allocated.
void check_fits(const Architecture& a, int64_t width, int64_t ffn, int64_t layers, const char* who);

}  // namespace scion::growth
