// MSG, Masked Structural Growth (Yao et al., ICLR 2024), through the model's structural gates:
// every new head, FFN unit, hidden unit and layer enters behind a gate that rises linearly
// from 0 to 1 over `ramp_steps` updates (a scheduled gate ramp of the model). At gate 0 the
// grown model computes exactly what the source computed, whatever the new weights are (here:
// the model's own seeded initialisation of the grown architecture):
//
//  * hidden width: the hidden gate (LayerNorm statistics over the kept dimensions, outputs
//    multiplied by it). In GPT (pre-LN) the residual stream is read only through LayerNorms,
//    in BERT (post-LN) every sub-layer ends in one, so new hidden dimensions are invisible at
//    gate 0 in both;
//  * heads: grow at a fixed head size (heads = width / head size), behind head gates;
//  * FFN units: behind FFN-unit gates;
//  * layers: appended on top behind layer gates (GPT: gated residual writes; BERT:
//    gate · block(x) + (1 − gate) · x).
//
// Old tensors keep their names and occupy the leading slice of their grown tensors (for
// GPT's fused c_attn, the leading slice of each of the q, k, v blocks). place_old() is that
// map; the grow.masked op applies it to the optimizer moments too, so the moments of the old
// parameters carry over (the reference code's transfer_states). Tied embeddings stay tied:
// the new columns of the tied head only ever meet gated (zero) features.
#pragma once
#include <string>

#include "scion/surgery.h"

namespace scion::growth {

struct MaskedOptions {
  int64_t width = 0;   // new hidden width, a multiple of the head size (0 = unchanged)
  int64_t ffn = 0;     // new FFN width (0 = unchanged)
  int64_t layers = 0;  // new layer count, new layers on top (0 = unchanged)
  int64_t ramp_steps = 1000;
  uint64_t seed = 0;   // initialisation of the new weights
  bool stack_new_layers = false;  // new layer l starts from old layer l mod L (else fresh)
};

// Grows `m` in place and starts its gate ramp at update `at_step`.
void grow_masked(TransformerModel& m, const MaskedOptions& opt, int64_t at_step);

// Copies `old` (a tensor of layout `lay` in the source model) into its place in `dst` (the
// grown tensor of the same name). Throws naming `name` if `old` does not fit.
void place_old(const std::string& name, const ParamLayout& lay, const Tensor& old, Tensor& dst);

}  // namespace scion::growth
