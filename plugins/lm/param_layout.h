// Parameter layouts (scion::ParamLayout) read off the families' name table: what each axis of
// a block's projection or norm indexes follows from its role (q, k, v, fused qkv, o, up, gate,
// down, norm) and the family's weight layout, so GPT-2, BERT and Llama need no hand-written
// table each.
#pragma once
#include <optional>
#include <string>

#include "scion/nn.h"
#include "scion/surgery.h"

namespace scion::lm {

// The layout of block parameter `rest` (the name after the block prefix, e.g.
// "self_attn.k_proj.weight"), or nullopt when it is not one of the family's. `grouped`: the
// layer's key/value heads are fewer than its query heads (k and v rows are Unit::kv_head).
std::optional<ParamLayout> block_param_layout(const nn::TransformerNames& names, const std::string& rest, bool grouped);

// Parses "<prefix><layer>.<rest>"; false when `name` is not a block parameter.
bool split_block_name(const std::string& name, const std::string& prefix, int64_t& layer, std::string& rest);

}  // namespace scion::lm
