// model.gpt and model.bert: the node classes (the plugin entries are in model_entries.cpp).
#include "lm_nodes.h"
#include "scion/checkpoint.h"
#include "scion/random.h"
#include "scion/safetensors.h"

namespace scion::lm {

namespace {
// Reads the model config a Scion checkpoint carries (metadata checkpoint::kConfigKey); files
// from elsewhere (Hugging Face) carry none and the node's parameters give the config. Only the
// header is read: the weights are read once, by the constructor.
Json checkpoint_config(const std::string& path) {
  const safetensors::Metadata metadata = safetensors::load_metadata(path);
  auto it = metadata.find(checkpoint::kConfigKey);
  return it == metadata.end() ? Json() : json_parse(it->second, path + " (" + checkpoint::kConfigKey + ")");
}
}  // namespace

namespace {
// GPT and BERT configs share these fields; the checkpoint metadata carries them as JSON,
// per-layer sizes and the head size once a method made them differ from the defaults.
template <class C>
C config_from_json(const Json& j, C c) {
  if (j.contains("vocab")) c.vocab = json_int(j.at("vocab"));
  if (j.contains("context")) c.context = json_int(j.at("context"));
  if (j.contains("layers")) c.layers = json_int(j.at("layers"));
  if (j.contains("width")) c.width = json_int(j.at("width"));
  if (j.contains("heads")) c.heads = json_int(j.at("heads"));
  if (j.contains("ffn")) c.ffn = json_int(j.at("ffn"));
  if (j.contains("tied")) c.tied = json_bool(j.at("tied"));
  c.head_size = j.contains("head_size") ? json_int(j.at("head_size")) : 0;
  c.layer_heads.clear();
  c.layer_ffn.clear();
  if (j.contains("layer_heads"))
    for (const Json& v : json_array(j.at("layer_heads"))) c.layer_heads.push_back(json_int(v));
  if (j.contains("layer_ffn"))
    for (const Json& v : json_array(j.at("layer_ffn"))) c.layer_ffn.push_back(json_int(v));
  return c;
}

template <class C>
Json config_to_json(const C& c) {
  Json j;
  j["vocab"] = Json(c.vocab);
  j["context"] = Json(c.context);
  j["layers"] = Json(c.layers);
  j["width"] = Json(c.width);
  j["heads"] = Json(c.heads);
  j["ffn"] = Json(c.ffn);
  j["tied"] = Json(c.tied);
  if (c.head_size > 0 && c.head_size * c.heads != c.width) j["head_size"] = Json(c.head_size);
  auto list = [](const std::vector<int64_t>& v) {
    Json::array_t a;
    for (int64_t x : v) a.push_back(Json(x));
    return Json(a);
  };
  if (!c.layer_heads.empty()) j["layer_heads"] = list(c.layer_heads);
  if (!c.layer_ffn.empty()) j["layer_ffn"] = list(c.layer_ffn);
  return j;
}

// The node's parameters, then the checkpoint's config when `load` names one that has it.
template <class C>
C config_from_params(const Params& p, uint64_t seed) {
  C c;
  c.vocab = p.integer("vocab");
  c.context = p.integer("context");
  c.layers = p.integer("layers");
  c.width = p.integer("width");
  c.heads = p.integer("heads");
  c.ffn = p.integer("ffn");
  c.dropout = float(p.number("dropout"));
  c.tied = p.boolean("tied");
  c.seed = p.has("init_seed") ? uint64_t(p.integer("init_seed")) : seed;
  const std::string load = p.string("load");
  if (!load.empty()) {
    const Json saved = checkpoint_config(load);
    if (!saved.is_null()) c = config_from_json(saved, c);
  }
  return c;
}

template <class M>
void load_weights(M& m, const nn::NamedTensors& t);
template <>
void load_weights(GptModel& m, const nn::NamedTensors& t) { m.load_hf_state_dict(t); }
template <>
void load_weights(BertModel& m, const nn::NamedTensors& t) { m.load_state_dict(t); }

constexpr bool is_gpt(const GptConfig*) { return true; }
constexpr bool is_gpt(const BertConfig*) { return false; }
}  // namespace

GptConfig gpt_config_from_json(const Json& j, GptConfig base) { return config_from_json(j, base); }
BertConfig bert_config_from_json(const Json& j, BertConfig base) { return config_from_json(j, base); }

// ---- the twins' shared implementation ---------------------------------------------------
template <class M, class C>
TransformerNode<M, C>::TransformerNode(const Params& p) : frozen_(p.boolean("frozen")), seed_(p.context().seed) {
  model_ = std::make_unique<M>(config_from_params<C>(p, seed_));
  const std::string load = p.string("load");
  if (!load.empty()) load_weights(*model_, safetensors::load(load).tensors);
  if (frozen_) model_->set_training(false);
  layer_outputs_ = p.has("layer_outputs") && p.boolean("layer_outputs");
}

template <class M, class C>
Json TransformerNode<M, C>::config() const {
  return config_to_json(model_->config());
}

template <class M, class C>
Architecture TransformerNode<M, C>::architecture() const {
  const C& c = model_->config();
  Architecture a;
  a.family = is_gpt(&c) ? "gpt2" : "bert";
  a.vocab = c.vocab;
  a.context = c.context;
  a.width = c.width;
  a.head_size = c.head_dim();
  for (int64_t l = 0; l < c.layers; ++l) {
    a.heads.push_back(c.heads_at(l));
    a.ffn.push_back(c.ffn_at(l));
  }
  a.pre_ln = is_gpt(&c);
  a.tied = c.tied;
  return a;
}

template <class M, class C>
C TransformerNode<M, C>::config_for(const Architecture& a) const {
  SCION_CHECK(a.family == architecture().family, "model: cannot become a ", a.family, " model (this is ",
              architecture().family, ")");
  C c = model_->config();
  c.vocab = a.vocab;
  c.context = a.context;
  c.width = a.width;
  c.layers = a.layers();
  c.head_size = a.head_size;
  c.tied = a.tied;
  c.layer_heads.clear();
  c.layer_ffn.clear();
  const bool uniform = a.uniform() && a.layers() > 0 && a.heads[0] > 0 && a.ffn[0] > 0;
  if (uniform) {
    c.heads = a.heads[0];
    c.ffn = a.ffn[0];
  } else {
    c.layer_heads = a.heads;
    c.layer_ffn = a.ffn;
    c.heads = std::max<int64_t>(1, a.heads.empty() ? 1 : *std::max_element(a.heads.begin(), a.heads.end()));
    c.ffn = a.ffn.empty() ? 0 : std::max<int64_t>(1, *std::max_element(a.ffn.begin(), a.ffn.end()));
  }
  if (c.head_size * c.heads == c.width) c.head_size = 0;  // the default: recorded only when it differs
  return c;
}

template <class M, class C>
nn::NamedTensors TransformerNode<M, C>::initial_parameters(const Architecture& a, uint64_t seed) const {
  C c = config_for(a);
  c.seed = seed;
  M fresh(c);
  return fresh.named_parameters();
}

template <class M, class C>
void TransformerNode<M, C>::rebuild(const Architecture& a, const nn::NamedTensors& params) {
  auto m = std::make_unique<M>(config_for(a));
  m->load_state_dict(params, /*strict=*/true);
  m->set_training(model_->training());
  model_ = std::move(m);
  ramp_start_.clear();
  ramp_steps_ = 0;
}

template <class M, class C>
void TransformerNode<M, C>::set_gate(GateKind kind, int64_t layer, const Tensor& v) {
  const Architecture a = architecture();
  const int64_t n = gate_size(a, kind, layer);
  SCION_CHECK(!v.defined() || v.numel() == n, "model: a ", gate_kind_name(kind), " gate of layer ", layer, " has ",
              n, " elements, got ", v.desc());
  if (kind == GateKind::hidden || kind == GateKind::hidden_kept) {
    const bool kept = kind == GateKind::hidden_kept;
    SCION_CHECK(!v.defined() || !gate(kept ? GateKind::hidden : GateKind::hidden_kept, -1).defined(), "model: a ",
                gate_kind_name(kind), " gate on a model whose hidden gate follows the other rule (hint: clear the ",
                gate_kind_name(kept ? GateKind::hidden : GateKind::hidden_kept), " gate first)");
    for (nn::LayerNorm* ln : model_->hidden_norms()) (kept ? ln->kept_gate : ln->gate) = v.defined() ? v.view({n}) : Tensor();
    return;
  }
  nn::TransformerBlock& b = *model_->block_list()[size_t(layer)];
  auto scalar = [&] { return v.defined() ? v.view({}) : Tensor(); };
  switch (kind) {
    case GateKind::layer: b.layer_gate = scalar(); return;
    case GateKind::attention: b.attention_gate = scalar(); return;
    case GateKind::ffn: b.ffn_gate = scalar(); return;
    case GateKind::head:
      SCION_CHECK(b.attn || !v.defined(), "model: layer ", layer, " has no attention sublayer to gate");
      if (b.attn) b.attn->head_gate = v.defined() ? v.view({n}) : Tensor();
      return;
    case GateKind::ffn_unit:
      SCION_CHECK(b.mlp || !v.defined(), "model: layer ", layer, " has no FFN sublayer to gate");
      if (b.mlp) b.mlp->unit_gate = v.defined() ? v.view({n}) : Tensor();
      return;
    case GateKind::hidden:
    case GateKind::hidden_kept: return;
  }
}

template <class M, class C>
Tensor TransformerNode<M, C>::gate(GateKind kind, int64_t layer) const {
  if (kind == GateKind::hidden) return model_->hidden_norms().back()->gate;
  if (kind == GateKind::hidden_kept) return model_->hidden_norms().back()->kept_gate;
  gate_size(architecture(), kind, layer);  // checks the layer
  const nn::TransformerBlock& b = *model_->block_list()[size_t(layer)];
  switch (kind) {
    case GateKind::layer: return b.layer_gate;
    case GateKind::attention: return b.attention_gate;
    case GateKind::ffn: return b.ffn_gate;
    case GateKind::head: return b.attn ? b.attn->head_gate : Tensor();
    case GateKind::ffn_unit: return b.mlp ? b.mlp->unit_gate : Tensor();
    case GateKind::hidden:
    case GateKind::hidden_kept: break;
  }
  return Tensor();
}

template <class M, class C>
void TransformerNode<M, C>::set_gate_ramp(int64_t at_step, int64_t steps) {
  SCION_CHECK(steps >= 0, "model: a gate ramp of ", steps, " updates");
  ramp_start_.clear();
  ramp_at_ = at_step;
  ramp_steps_ = steps;
  if (steps == 0) return;
  for (surgery::GateEntry& g : surgery::gates(*this)) ramp_start_.push_back({g.kind, g.layer, g.value.detach().clone()});
}

template <class M, class C>
int64_t TransformerNode<M, C>::gate_ramp_progress(int64_t step) const {
  const int64_t t = std::max<int64_t>(0, step - ramp_at_);
  return ramp_steps_ > 0 && t < ramp_steps_ ? t : -1;
}

template <class M, class C>
void TransformerNode<M, C>::apply_gate_ramp(int64_t step) {
  if (ramp_steps_ > 0) {
    // g = start + (1 - start) * progress; the ramp ends (and its gates go) at progress 1.
    const float p = std::min(1.f, float(std::max<int64_t>(0, step - ramp_at_)) / float(ramp_steps_));
    for (const surgery::GateEntry& g : ramp_start_)
      set_gate(g.kind, g.layer, p >= 1.f ? Tensor() : ops::add_scalar(ops::mul_scalar(g.value, 1.f - p), p));
    if (p >= 1.f) ramp_start_.clear(), ramp_steps_ = 0;
  }
}

template <class M, class C>
int64_t TransformerNode<M, C>::prepare(const StepContext& ctx) {
  model_->set_training(!frozen_ && ctx.training);
  apply_gate_ramp(ctx.step);
  const int64_t L = model_->config().layers;
  return subnets_.enabled && ctx.training ? subnets_.depth(L, seed_, ctx.step) : -1;
}

// Training FLOPs per token (forward + backward) at sequence length T, GPT and BERT alike, by
// PaLM's count (Chowdhery et al. 2022, appendix B): 6N for the matrix products of the N
// parameters (embeddings included, as llm.c counts them) plus 12·L·C·T for attention's
// scores (Q·Kᵀ) and weighted values (A·V): 2·T·C each per token and layer in the forward
// pass, three times that with the backward. Causal attention is not halved (PaLM does not).
// A sub-model step (grow.subnets) runs mean_depth of the L blocks: the rest comes off.
template <class M, class C>
double TransformerNode<M, C>::flops_with_subnets(int64_t seq_len) const {
  const C& c = model_->config();
  const double attention = 12.0 * double(c.width) * double(seq_len);
  const double full = 6.0 * double(model_->parameter_count()) + double(c.layers) * attention;
  auto& blocks = model_->block_list();
  if (blocks.empty()) return full;
  const double per_layer = 6.0 * double(blocks[0]->parameter_count()) + attention;
  return full - (double(c.layers) - subnets_.mean_depth(c.layers)) * per_layer;
}

template class TransformerNode<GptModel, GptConfig>;
template class TransformerNode<BertModel, BertConfig>;

namespace {
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
}  // namespace

// ---- GPT ------------------------------------------------------------------------------------
TensorMap GptNode::forward(const TensorMap& in, const StepContext& ctx) {
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

Model::LmHead GptNode::lm_head(const Tensor& hidden) { return {hidden, model_->head_weight(), Tensor()}; }

namespace {
// Parses "<prefix><layer>.<rest>"; false when `name` is not a block parameter.
bool split_block(const std::string& name, const std::string& prefix, int64_t& layer, std::string& rest) {
  if (name.rfind(prefix, 0) != 0) return false;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos) return false;
  layer = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
  rest = name.substr(dot + 1);
  return true;
}
constexpr AxisLayout kHidden{Unit::hidden, false}, kHiddenIn{Unit::hidden, true};
}  // namespace

// GPT-2's tensors (Conv1D weights are [in, out]).
ParamLayout GptNode::layout(const std::string& name) const {
  ParamLayout r;
  std::string s;
  if (split_block(name, "transformer.h.", r.layer, s)) {
    if (s == "ln_1.weight" || s == "ln_1.bias" || s == "ln_2.weight" || s == "ln_2.bias")
      r.axis[0] = kHidden, r.hidden_fold = true;
    else if (s == "attn.c_proj.bias" || s == "mlp.c_proj.bias")
      r.axis[0] = kHidden, r.residual_write = r.hidden_fold = true;
    else if (s == "attn.c_attn.weight") r.axis[0] = kHiddenIn, r.axis[1] = {Unit::qkv, false};
    else if (s == "attn.c_attn.bias") r.axis[0] = {Unit::qkv, false};
    else if (s == "attn.c_proj.weight")
      r.axis[0] = {Unit::head, true}, r.axis[1] = kHidden, r.residual_write = r.hidden_fold = true;
    else if (s == "mlp.c_fc.weight") r.axis[0] = kHiddenIn, r.axis[1] = {Unit::ffn, false};
    else if (s == "mlp.c_fc.bias") r.axis[0] = {Unit::ffn, false};
    else if (s == "mlp.c_proj.weight")
      r.axis[0] = {Unit::ffn, true}, r.axis[1] = kHidden, r.residual_write = r.hidden_fold = true;
    else throw Error("model.gpt: no layout for parameter '" + name + "'");
    return r;
  }
  // The tied head reads ln_f's output through wte, which carries the hidden gate already.
  if (name == "transformer.wte.weight" || name == "transformer.wpe.weight") r.axis[1] = kHidden, r.hidden_fold = true;
  else if (name == "transformer.ln_f.weight" || name == "transformer.ln_f.bias")
    r.axis[0] = kHidden, r.hidden_fold = !model_->config().tied;
  else if (name == "lm_head.weight") r.axis[1] = kHiddenIn;
  else throw Error("model.gpt: no layout for parameter '" + name + "'");
  return r;
}

// ---- BERT -----------------------------------------------------------------------------------
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

// BERT's tensors (nn.Linear weights are [out, in]).
ParamLayout BertNode::layout(const std::string& name) const {
  ParamLayout r;
  std::string s;
  if (split_block(name, "bert.encoder.layer.", r.layer, s)) {
    if (s.find("LayerNorm") != std::string::npos) r.axis[0] = kHidden, r.hidden_fold = true;
    else if (s == "attention.output.dense.bias" || s == "output.dense.bias")
      r.axis[0] = kHidden, r.residual_write = r.hidden_fold = true;
    else if (s == "attention.self.query.weight" || s == "attention.self.key.weight" || s == "attention.self.value.weight")
      r.axis[0] = {Unit::head, false}, r.axis[1] = kHiddenIn;
    else if (s == "attention.self.query.bias" || s == "attention.self.key.bias" || s == "attention.self.value.bias")
      r.axis[0] = {Unit::head, false};
    else if (s == "attention.output.dense.weight")
      r.axis[0] = kHidden, r.axis[1] = {Unit::head, true}, r.residual_write = r.hidden_fold = true;
    else if (s == "intermediate.dense.weight") r.axis[0] = {Unit::ffn, false}, r.axis[1] = kHiddenIn;
    else if (s == "intermediate.dense.bias") r.axis[0] = {Unit::ffn, false};
    else if (s == "output.dense.weight")
      r.axis[0] = kHidden, r.axis[1] = {Unit::ffn, true}, r.residual_write = r.hidden_fold = true;
    else throw Error("model.bert: no layout for parameter '" + name + "'");
    return r;
  }
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
