// CoFi's finalisation: the model's gates (the deterministic masks) folded into its weights,
// then every structure whose gate is 0 removed, leaving a smaller dense model that computes
// what the gated one did.
#pragma once
#include "scion/surgery.h"

namespace scion::prune {

struct PruneReport {
  int64_t heads_before = 0, heads_after = 0;
  int64_t ffn_before = 0, ffn_after = 0;
  int64_t width_before = 0, width_after = 0;
  int64_t attention_removed = 0, ffn_removed = 0;
  // Sublayers kept as one dead unit (zero weights) because their units all closed while the
  // sublayer gate stayed open: the sublayer still adds its output bias (reference issue #36).
  int64_t bias_only = 0;
};

// Reads the model's head, attention, FFN-unit, FFN and hidden gates and:
//  * folds each open sublayer's gate and its heads' / units' soft values into the output
//    projection (rows of the heads and units, and its bias), then clears those gates;
//  * removes heads and units whose gate is 0, and a sublayer whose gate is 0 with its
//    LayerNorm (in post-LN BERT the closed gate already skipped both);
//  * keeps one head or unit with zero output weights where a sublayer's gate is open but all
//    its heads or units are closed, so the sublayer's output bias stays (issue #36);
//  * folds CoFi's hidden gate (GateKind::hidden_kept) into the tensors that write the residual
//    stream and into the LayerNorms (ParamLayout::hidden_fold), removes the gate and the
//    hidden dimensions at 0: the pruned model has no gate left.
// Layer gates and MSG's hidden gate (GateKind::hidden) are not CoFi's and are refused.
PruneReport prune_with_gates(TransformerModel& m);

}  // namespace scion::prune
