// model.bert: the encoder node's forward pass and its parameters' layout.
#include "lm_nodes.h"
#include "param_layout.h"

namespace scion::lm {

TensorMap BertNode::forward(const TensorMap& in, const StepContext& ctx) {
  const int64_t depth = prepare(ctx);
  auto mask = in.find("attention_mask");
  auto prompt = in.find("prompt_embeds");  // prompt tuning: the soft prompt before the tokens
  if (prompt != in.end()) {
    Tensor h = model_->hidden_with_prompt(in.at("tokens"), prompt->second, mask == in.end() ? Tensor() : mask->second,
                                          derive_seed(seed_, uint64_t(ctx.step)));
    TensorMap out{{"hidden", h}};
    if (ctx.wants("logits")) out["logits"] = model_->mlm_logits(h);
    return out;
  }
  std::vector<Tensor> layers;
  Tensor h = model_->hidden(in.at("tokens"), Tensor(), mask == in.end() ? Tensor() : mask->second,
                            derive_seed(seed_, uint64_t(ctx.step)), depth, layer_outputs_ ? &layers : nullptr);
  TensorMap out{{"hidden", h}};
  if (ctx.wants("logits")) out["logits"] = model_->mlm_logits(h);
  if (layer_outputs_) out["layers"] = stack_layers(layers);
  return out;
}

Model::LmHead BertNode::lm_head(const Tensor& hidden) {
  return {model_->mlm_transform(hidden), model_->decoder(), model_->decoder_bias};
}

// BERT's tensors: the blocks' from the family's names, the embeddings and the MLM head here.
ParamLayout BertNode::layout(const std::string& name) const {
  const nn::TransformerNames& n = nn::transformer_names("bert");
  ParamLayout r;
  std::string rest;
  if (split_block_name(name, n.block_prefix, r.layer, rest)) {
    const auto lay = block_param_layout(n, rest, false);
    SCION_CHECK(lay, "model.bert: no layout for parameter '", name, "'");
    ParamLayout out = *lay;
    out.layer = r.layer;
    return out;
  }
  constexpr AxisLayout kHidden{Unit::hidden, false}, kHiddenIn{Unit::hidden, true};
  if (name.rfind("bert.embeddings.", 0) == 0) {
    if (name.find("LayerNorm") != std::string::npos) r.axis[0] = kHidden;
    else r.axis[1] = kHidden;
    r.hidden_fold = true;
  } else if (name == "cls.predictions.transform.dense.weight") r.axis[0] = kHidden, r.axis[1] = kHiddenIn;
  else if (name == "cls.predictions.transform.dense.bias") r.axis[0] = kHidden;
  // The tied decoder reads the head's LayerNorm through the word embeddings, which carry the
  // hidden gate already.
  else if (name.find("transform.LayerNorm") != std::string::npos)
    r.axis[0] = kHidden, r.hidden_fold = !model_->config().tied;
  else if (name == "cls.predictions.decoder.weight") r.axis[1] = kHiddenIn;
  else if (name == "cls.predictions.bias") {
  } else throw Error("model.bert: no layout for parameter '" + name + "'");
  return r;
}

}  // namespace scion::lm
