// model.gpt and model.llama: the decoder node's forward pass and its parameters' layout.
#include "lm_nodes.h"
#include "param_layout.h"

namespace scion::lm {

// [L, B, T, C]: each block's output, for layerwise distillation (one copy, only when asked for).
Tensor stack_layers(const std::vector<Tensor>& layers) {
  std::vector<Tensor> parts;
  parts.reserve(layers.size());
  for (const Tensor& x : layers) {
    Shape s = x.shape();
    s.insert(s.begin(), 1);
    parts.push_back(x.view(s));
  }
  return ops::concat(parts, 0);
}

TensorMap DecoderNode::forward(const TensorMap& in, const StepContext& ctx) {
  const int64_t depth = prepare(ctx);
  auto prompt = in.find("prompt_embeds");  // prompt tuning: the soft prompt before the tokens
  if (prompt != in.end()) {
    Tensor h = model_->hidden_with_prompt(in.at("tokens"), prompt->second, derive_seed(seed_, uint64_t(ctx.step)));
    TensorMap out{{"hidden", h}, {"ffn_input", h}};
    if (ctx.wants("logits")) out["logits"] = model_->logits_from_hidden(h);
    return out;
  }
  std::vector<Tensor> layers;
  Tensor ffn_input;
  Tensor h = model_->hidden(in.at("tokens"), derive_seed(seed_, uint64_t(ctx.step)), depth,
                            layer_outputs_ ? &layers : nullptr, &ffn_input);
  // A model without blocks (or whose last block lost its FFN) has no FFN input: its final
  // hidden states stand in, so the port always carries [B, T, C].
  TensorMap out{{"hidden", h}, {"ffn_input", ffn_input.defined() ? ffn_input : h}};
  // Not made when only a fused head + loss reads this model (lm_head): 4·B·T·V bytes saved.
  if (ctx.wants("logits")) out["logits"] = model_->logits_from_hidden(h);
  if (layer_outputs_) out["layers"] = stack_layers(layers);
  return out;
}

Model::LmHead DecoderNode::lm_head(const Tensor& hidden) { return {hidden, model_->head_weight(), Tensor()}; }

std::string DecoderNode::block_prefix(int64_t layer) const {
  return nn::transformer_names(model_->config().family).block_prefix + std::to_string(layer) + ".";
}

std::pair<std::string, std::string> DecoderNode::embedding_and_head() const {
  const nn::TransformerNames& n = nn::transformer_names(model_->config().family);
  return {n.embed + ".weight", n.head + ".weight"};
}

ParamLayout DecoderNode::layout(const std::string& name) const {
  const DecoderConfig& c = model_->config();
  const nn::TransformerNames& n = nn::transformer_names(c.family);
  const std::string who = "model." + std::string(c.family == "gpt2" ? "gpt" : c.family);
  ParamLayout r;
  std::string rest;
  if (split_block_name(name, n.block_prefix, r.layer, rest)) {
    // Methods ask for the layout of the blocks of an architecture they are making, which may
    // have more layers than this model: those take the grouping of the model's last layer.
    const int64_t l = c.layers == 0 ? -1 : std::min(r.layer, c.layers - 1);
    const bool grouped = l >= 0 ? c.kv_heads_at(l) != c.heads_at(l) : c.kv_heads > 0 && c.kv_heads != c.heads;
    const auto lay = block_param_layout(n, rest, grouped);
    SCION_CHECK(lay, who, ": no layout for parameter '", name, "'");
    ParamLayout out = *lay;
    out.layer = r.layer;
    return out;
  }
  constexpr AxisLayout kHidden{Unit::hidden, false}, kHiddenIn{Unit::hidden, true};
  // The tied head reads the final norm's output through the embedding, which carries the
  // hidden gate already.
  if (name == n.embed + ".weight" || (!n.positions.empty() && name == n.positions + ".weight"))
    r.axis[1] = kHidden, r.hidden_fold = true;
  else if (name == n.final_norm + ".weight" || name == n.final_norm + ".bias")
    r.axis[0] = kHidden, r.hidden_fold = !c.tied;
  else if (name == n.head + ".weight") r.axis[1] = kHiddenIn;
  else throw Error(who + ": no layout for parameter '" + name + "'");
  return r;
}

}  // namespace scion::lm
