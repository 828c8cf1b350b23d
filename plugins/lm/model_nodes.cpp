// The transformer model nodes' shared implementation and their configs' JSON (the decoder and
// BERT specifics are in decoder_node.cpp and bert_node.cpp, the plugin entries in
// model_entries.cpp).
#include "hf_config.h"
#include "lm_nodes.h"
#include "scion/checkpoint.h"
#include "scion/hf_directory.h"
#include "scion/random.h"
#include "scion/safetensors.h"

namespace scion::lm {

namespace {
const char* plugin_of(const DecoderConfig& c) { return c.family == "llama" ? "model.llama" : "model.gpt"; }
const char* plugin_of(const BertConfig&) { return "model.bert"; }

// The model config `load` carries: a Hugging Face directory's config.json mapped to the node's
// config (refused when it describes another family's model), or what a Scion checkpoint's
// metadata holds (checkpoint::kConfigKey); a safetensors file from elsewhere carries none and
// the node's parameters give the config. Only headers and config.json are read here: the
// weights are read once, by the constructor.
template <class C>
Json checkpoint_config(const std::string& path, const C& node_config) {
  if (hf::is_model_directory(path)) {
    const Json config = hf::read_config(path);
    const HfImported imported = scion_config_from_hf(config, path + "/" + hf::kConfigFile);
    SCION_CHECK(imported.plugin == plugin_of(node_config), "'", path, "' holds a ", imported.plugin, " model (",
                config.value("architectures", Json::array()).dump(), "), but this node is ",
                plugin_of(node_config), " (hint: plugin = \"", imported.plugin, "\")");
    return imported.config;
  }
  const safetensors::Metadata metadata = safetensors::load_metadata(path);
  auto it = metadata.find(checkpoint::kConfigKey);
  return it == metadata.end() ? Json() : json_parse(it->second, path + " (" + checkpoint::kConfigKey + ")");
}

// The weights `load` names: a Hugging Face directory's (bf16 and f16 widened to f32), or a
// safetensors file's.
safetensors::Named checkpoint_weights(const std::string& path) {
  return hf::is_model_directory(path) ? hf::read(path).tensors : safetensors::load(path).tensors;
}
}  // namespace

namespace {
// The sizes every config shares; the checkpoint metadata carries them as JSON, per-layer
// sizes and the head size once a method made them differ from the defaults.
void sizes_from_json(const Json& j, LayerSizes& c) {
  if (j.contains("layers")) c.layers = json_int(j.at("layers"));
  if (j.contains("width")) c.width = json_int(j.at("width"));
  if (j.contains("heads")) c.heads = json_int(j.at("heads"));
  c.kv_heads = j.contains("kv_heads") ? json_int(j.at("kv_heads")) : 0;
  if (j.contains("ffn")) c.ffn = json_int(j.at("ffn"));
  c.head_size = j.contains("head_size") ? json_int(j.at("head_size")) : 0;
  auto list = [&](const char* key, std::vector<int64_t>& v) {
    v.clear();
    if (j.contains(key))
      for (const Json& x : json_array(j.at(key))) v.push_back(json_int(x));
  };
  list("layer_heads", c.layer_heads);
  list("layer_kv_heads", c.layer_kv_heads);
  list("layer_ffn", c.layer_ffn);
  c.layer_kv_map.clear();
  if (j.contains("layer_kv_map"))
    for (const Json& m : json_array(j.at("layer_kv_map"))) {
      c.layer_kv_map.emplace_back();
      for (const Json& x : json_array(m)) c.layer_kv_map.back().push_back(json_int(x));
    }
}

Json sizes_to_json(const LayerSizes& c) {
  Json j;
  j["layers"] = Json(c.layers);
  j["width"] = Json(c.width);
  j["heads"] = Json(c.heads);
  if (c.kv_heads > 0 && c.kv_heads != c.heads) j["kv_heads"] = Json(c.kv_heads);
  j["ffn"] = Json(c.ffn);
  if (c.head_size > 0 && c.head_size * c.heads != c.width) j["head_size"] = Json(c.head_size);
  auto list = [](const std::vector<int64_t>& v) {
    Json::array_t a;
    for (int64_t x : v) a.push_back(Json(x));
    return Json(a);
  };
  if (!c.layer_heads.empty()) j["layer_heads"] = list(c.layer_heads);
  if (!c.layer_kv_heads.empty()) j["layer_kv_heads"] = list(c.layer_kv_heads);
  if (!c.layer_ffn.empty()) j["layer_ffn"] = list(c.layer_ffn);
  bool ragged = false;
  for (const auto& m : c.layer_kv_map) ragged = ragged || !m.empty();
  if (ragged) {
    Json::array_t maps;
    for (const auto& m : c.layer_kv_map) maps.push_back(list(m));
    j["layer_kv_map"] = Json(maps);
  }
  return j;
}

template <class C>
void common_from_json(const Json& j, C& c) {
  if (j.contains("vocab")) c.vocab = json_int(j.at("vocab"));
  if (j.contains("context")) c.context = json_int(j.at("context"));
  if (j.contains("tied")) c.tied = json_bool(j.at("tied"));
  sizes_from_json(j, c);
}

template <class C>
Json common_to_json(const C& c) {
  Json j = sizes_to_json(c);
  j["vocab"] = Json(c.vocab);
  j["context"] = Json(c.context);
  j["tied"] = Json(c.tied);
  return j;
}

// The node's parameters over the family's defaults, then the checkpoint's config when `load`
// names one that has it.
template <class C>
C config_from_params(const Params& p, C c, uint64_t seed) {
  c.vocab = p.integer("vocab");
  c.context = p.integer("context");
  c.layers = p.integer("layers");
  c.width = p.integer("width");
  c.heads = p.integer("heads");
  if (p.has("kv_heads")) c.kv_heads = p.integer("kv_heads");
  c.ffn = p.integer("ffn");
  c.dropout = float(p.number("dropout"));
  c.tied = p.boolean("tied");
  c.seed = p.has("init_seed") ? uint64_t(p.integer("init_seed")) : seed;
  if constexpr (std::is_same_v<C, DecoderConfig>) {
    if (p.has("norm_eps")) c.norm_eps = p.number("norm_eps");
    if (p.has("rope_theta")) c.rope_theta = p.number("rope_theta");
  }
  const std::string load = p.string("load");
  if (!load.empty()) {
    const Json saved = checkpoint_config(load, c);
    if (!saved.is_null()) {
      if constexpr (std::is_same_v<C, DecoderConfig>) c = decoder_config_from_json(saved, c);
      else c = bert_config_from_json(saved, c);
    }
  }
  return c;
}

template <class M>
void load_weights(M& m, const nn::NamedTensors& t);
template <>
void load_weights(DecoderModel& m, const nn::NamedTensors& t) { m.load_hf_state_dict(t); }
template <>
void load_weights(BertModel& m, const nn::NamedTensors& t) { m.load_state_dict(t); }

const char* family_of(const DecoderConfig& c) { return c.family.c_str(); }
const char* family_of(const BertConfig&) { return "bert"; }
}  // namespace

DecoderConfig decoder_config_from_json(const Json& j, DecoderConfig c) {
  common_from_json(j, c);
  if (j.contains("norm_eps")) c.norm_eps = json_number(j.at("norm_eps"));
  if (j.contains("hf_architecture")) c.hf_architecture = json_string(j.at("hf_architecture"));
  if (j.contains("hf_extra")) c.hf_extra = j.at("hf_extra").dump();
  if (c.family != "llama") return c;
  if (j.contains("rope_theta")) c.rope_theta = json_number(j.at("rope_theta"));
  c.rope_scaling.reset();
  if (j.contains("rope_scaling") && !j.at("rope_scaling").is_null()) {
    const Json& r = j.at("rope_scaling");
    ops::Llama3RopeScaling s;
    s.factor = json_number(r.at("factor"));
    s.low_freq_factor = json_number(r.at("low_freq_factor"));
    s.high_freq_factor = json_number(r.at("high_freq_factor"));
    s.original_max_position_embeddings = json_int(r.at("original_max_position_embeddings"));
    c.rope_scaling = s;
  }
  if (j.contains("qkv_bias")) c.qkv_bias = json_bool(j.at("qkv_bias"));
  if (j.contains("o_bias")) c.o_bias = json_bool(j.at("o_bias"));
  if (j.contains("mlp_bias")) c.mlp_bias = json_bool(j.at("mlp_bias"));
  return c;
}

BertConfig bert_config_from_json(const Json& j, BertConfig c) {
  common_from_json(j, c);
  return c;
}

Json config_to_json(const DecoderConfig& c) {
  Json j = common_to_json(c);
  if (!c.hf_architecture.empty()) j["hf_architecture"] = Json(c.hf_architecture);
  if (!c.hf_extra.empty()) j["hf_extra"] = json_parse(c.hf_extra, "hf_extra");
  if (c.family != "llama") return j;
  j["norm_eps"] = Json(c.norm_eps);
  j["rope_theta"] = Json(c.rope_theta);
  if (c.rope_scaling) {
    Json r;
    r["factor"] = Json(c.rope_scaling->factor);
    r["low_freq_factor"] = Json(c.rope_scaling->low_freq_factor);
    r["high_freq_factor"] = Json(c.rope_scaling->high_freq_factor);
    r["original_max_position_embeddings"] = Json(c.rope_scaling->original_max_position_embeddings);
    j["rope_scaling"] = r;
  }
  j["qkv_bias"] = Json(c.qkv_bias);
  j["o_bias"] = Json(c.o_bias);
  j["mlp_bias"] = Json(c.mlp_bias);
  return j;
}

Json config_to_json(const BertConfig& c) { return common_to_json(c); }

// ---- the twins' shared implementation ---------------------------------------------------
template <class M, class C>
TransformerNode<M, C>::TransformerNode(const Params& p, const C& base)
    : frozen_(p.boolean("frozen")), seed_(p.context().seed) {
  model_ = std::make_unique<M>(config_from_params<C>(p, base, seed_));
  const std::string load = p.string("load");
  if (!load.empty()) load_weights(*model_, checkpoint_weights(load));
  if (frozen_) model_->set_training(false);
  layer_outputs_ = p.has("layer_outputs") && p.boolean("layer_outputs");
}

template <class M, class C>
Json TransformerNode<M, C>::config() const {
  return config_to_json(model_->config());
}

template <class M, class C>
Json TransformerNode<M, C>::hf_config() const {
  return hf_config_for(plugin_of(model_->config()), config());
}

template <class M, class C>
Architecture TransformerNode<M, C>::architecture() const {
  const C& c = model_->config();
  Architecture a;
  a.family = family_of(c);
  a.vocab = c.vocab;
  a.context = c.context;
  a.width = c.width;
  a.head_size = c.head_dim();
  bool grouped = false;
  for (int64_t l = 0; l < c.layers; ++l) {
    a.heads.push_back(c.heads_at(l));
    a.kv_heads.push_back(c.kv_heads_at(l));
    a.ffn.push_back(c.ffn_at(l));
    grouped = grouped || a.kv_heads.back() != a.heads.back();
  }
  if (!grouped) a.kv_heads.clear();
  for (int64_t l = 0; l < c.layers; ++l)
    if (!c.kv_map_at(l).empty()) {
      a.kv_map.resize(size_t(c.layers));
      a.kv_map[size_t(l)] = c.kv_map_at(l);
    }
  a.pre_ln = nn::BlockConfig::of_family(a.family).pre_norm;
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
  c.layer_kv_heads.clear();
  c.layer_ffn.clear();
  c.layer_kv_map.clear();
  c.kv_heads = 0;
  const bool uniform = a.uniform() && a.layers() > 0 && a.heads[0] > 0 && a.ffn[0] > 0;
  if (uniform) {
    c.heads = a.heads[0];
    if (a.kv_heads_at(0) != a.heads[0]) c.kv_heads = a.kv_heads_at(0);
    c.ffn = a.ffn[0];
  } else {
    c.layer_heads = a.heads;
    if (!a.kv_heads.empty()) c.layer_kv_heads = a.kv_heads;
    for (int64_t l = 0; l < a.layers(); ++l)
      if (a.ragged(l)) {
        c.layer_kv_map.resize(size_t(a.layers()));
        c.layer_kv_map[size_t(l)] = a.kv_map[size_t(l)];
      }
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
    for (nn::Norm* ln : model_->hidden_norms()) (kept ? ln->kept_gate : ln->gate) = v.defined() ? v.view({n}) : Tensor();
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

template class TransformerNode<DecoderModel, DecoderConfig>;
template class TransformerNode<BertModel, BertConfig>;

}  // namespace scion::lm
