// MSG, Masked Structural Growth (Yao et al., ICLR 2024): every new head, FFN unit, hidden
// unit and layer enters behind a mask that rises linearly from 0 to 1 over `ramp_steps`
// updates. At mask 0 the grown model computes exactly what the source computed, whatever the
// new weights are (here: the fresh model's seeded initialisation):
//
//  * hidden width: every LayerNorm weights its statistics by the hidden mask and multiplies
//    its output by it (ops::layernorm_masked). In GPT (pre-LN) the residual stream is read
//    only through LayerNorms, in BERT (post-LN) every sub-layer ends in one, so new hidden
//    dimensions are invisible at mask 0 in both;
//  * heads: grow at a fixed head size, so the head count follows the width
//    (heads = width / head size); head h's output is scaled by its mask before the output
//    projection;
//  * FFN units: scaled after the activation;
//  * layers: appended on top behind a layer gate (GPT: gated residual writes; BERT:
//    gate · block(x) + (1 − gate) · x).
//
// Old tensors keep their names and occupy the leading slice of their grown tensors (for
// GPT's fused c_attn, the leading slice of each of the q, k, v blocks). place_old() is that
// map; the grow.masked op applies it to the optimizer moments too, so the moments of the old
// parameters carry over (the reference code's transfer_states). Tied embeddings stay tied:
// the new columns of the tied head only ever meet masked (zero) features.
#pragma once
#include <memory>
#include <string>

#include "bert_model.h"
#include "gpt_model.h"

namespace scion::growth {

struct MaskedOptions {
  int64_t width = 0;   // new hidden width, a multiple of the head size (0 = unchanged)
  int64_t ffn = 0;     // new FFN width (0 = unchanged)
  int64_t layers = 0;  // new layer count, new layers on top (0 = unchanged)
  int64_t ramp_steps = 1000;
  uint64_t seed = 0;   // initialisation of the new weights
  bool stack_new_layers = false;  // new layer l starts from old layer l mod L (else fresh)
};

// The shape the model had before growth, and the ramp: what the masks need.
struct MaskedFrom {
  int64_t width = 0, heads = 0, ffn = 0, layers = 0;
  int64_t ramp_steps = 0;  // 0 = no masks
  int64_t at_step = 0;     // the run's update count when the model grew (masks key to updates since)
  bool active() const { return ramp_steps > 0; }
};

template <class M>
struct MaskedGrowth {
  std::unique_ptr<M> model;
  MaskedFrom from;
};

MaskedGrowth<lm::GptModel> grow_masked(const lm::GptModel& src, const MaskedOptions& opt);
MaskedGrowth<lm::BertModel> grow_masked(const lm::BertModel& src, const MaskedOptions& opt);

// Sets every mask for `t` updates after growth: min(1, t / ramp_steps) on the new structure.
// Once the ramp is over the masks are removed (no cost left in the forward pass).
void set_mask_progress(lm::GptModel& model, const MaskedFrom& from, int64_t t);
void set_mask_progress(lm::BertModel& model, const MaskedFrom& from, int64_t t);

// Copies `old` (a tensor named `name` of the source model) into its place in `dst` (the
// grown tensor of the same name). Throws if `old` does not fit.
void place_old(const std::string& name, const Tensor& old, Tensor& dst);

}  // namespace scion::growth
