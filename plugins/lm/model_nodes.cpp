// model.gpt and model.bert.
#include "growth.h"
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
  return it == metadata.end() ? Json() : Json::parse(it->second, path + " (" + checkpoint::kConfigKey + ")");
}
}  // namespace

namespace {
// GPT and BERT configs share these fields; the checkpoint metadata carries them as JSON.
template <class C>
C config_from_json(const Json& j, C c) {
  if (j.contains("vocab")) c.vocab = j.at("vocab").as_int();
  if (j.contains("context")) c.context = j.at("context").as_int();
  if (j.contains("layers")) c.layers = j.at("layers").as_int();
  if (j.contains("width")) c.width = j.at("width").as_int();
  if (j.contains("heads")) c.heads = j.at("heads").as_int();
  if (j.contains("ffn")) c.ffn = j.at("ffn").as_int();
  if (j.contains("tied")) c.tied = j.at("tied").as_bool();
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
  return j;
}

// The node's parameters, then the checkpoint's config when `load` names one that has it.
template <class C>
C config_from_params(const Params& p, uint64_t seed) {
  C c;
  c.vocab = p.i("vocab");
  c.context = p.i("context");
  c.layers = p.i("layers");
  c.width = p.i("width");
  c.heads = p.i("heads");
  c.ffn = p.i("ffn");
  c.dropout = float(p.f("dropout"));
  c.tied = p.b("tied");
  c.seed = p.has("init_seed") ? uint64_t(p.i("init_seed")) : seed;
  const std::string load = p.s("load");
  if (!load.empty()) {
    const Json saved = checkpoint_config(load);
    if (!saved.is_null()) c = config_from_json(saved, c);
  }
  return c;
}
}  // namespace

GptConfig gpt_config_from_json(const Json& j, GptConfig base) { return config_from_json(j, base); }
BertConfig bert_config_from_json(const Json& j, BertConfig base) { return config_from_json(j, base); }

GptNode::GptNode(const Params& p) : frozen_(p.b("frozen")), seed_(uint64_t(p.i("__seed"))) {
  model_ = std::make_unique<GptModel>(config_from_params<GptConfig>(p, seed_));
  const std::string load = p.s("load");
  if (!load.empty()) model_->load_hf_state_dict(safetensors::load(load).tensors);
  if (frozen_) model_->set_training(false);
}

TensorMap GptNode::forward(const TensorMap& in, const StepContext& ctx) {
  model_->set_training(!frozen_ && ctx.training);
  growth::set_mask_progress(*model_, masked_, ctx.step - masked_.at_step);
  const int64_t depth = subnets_.enabled && ctx.training ? subnets_.depth(model_->config().layers, seed_, ctx.step) : -1;
  Tensor h = model_->hidden(in.at("tokens"), derive_seed(seed_, uint64_t(ctx.step)), depth);
  return {{"logits", model_->logits_from_hidden(h)}, {"hidden", h}};
}

Json GptNode::config() const { return config_to_json(model_->config()); }

// llm.c's count for the whole model, less the layers a sub-model step skips on average.
double GptNode::flops_per_token(int64_t) {
  const GptConfig& c = model_->config();
  const double full = model_->train_flops_per_token(c.context);
  if (model_->blocks.empty()) return full;
  const double per_layer = 6.0 * double(model_->blocks[0]->parameter_count()) + 6.0 * double(c.width * c.context);
  return full - (double(c.layers) - subnets_.mean_depth(c.layers)) * per_layer;
}

BertNode::BertNode(const Params& p) : frozen_(p.b("frozen")), seed_(uint64_t(p.i("__seed"))) {
  model_ = std::make_unique<BertModel>(config_from_params<BertConfig>(p, seed_));
  const std::string load = p.s("load");
  if (!load.empty()) model_->load_state_dict(safetensors::load(load).tensors);
  if (frozen_) model_->set_training(false);
}

TensorMap BertNode::forward(const TensorMap& in, const StepContext& ctx) {
  model_->set_training(!frozen_ && ctx.training);
  growth::set_mask_progress(*model_, masked_, ctx.step - masked_.at_step);
  auto mask = in.find("attention_mask");
  const int64_t depth = subnets_.enabled && ctx.training ? subnets_.depth(model_->config().layers, seed_, ctx.step) : -1;
  Tensor h = model_->hidden(in.at("tokens"), Tensor(), mask == in.end() ? Tensor() : mask->second,
                            derive_seed(seed_, uint64_t(ctx.step)), depth);
  return {{"logits", model_->mlm_logits(h)}, {"hidden", h}};
}

Json BertNode::config() const { return config_to_json(model_->config()); }

double BertNode::flops_per_token(int64_t) {
  const double full = 6.0 * double(model_->parameter_count());
  if (model_->layers.empty()) return full;
  const int64_t L = model_->config().layers;
  return full - (double(L) - subnets_.mean_depth(L)) * 6.0 * double(model_->layers[0]->parameter_count());
}

namespace {
std::vector<ParamSpec> model_params(int64_t vocab, int64_t ctx, bool gpt) {
  return {{"vocab", ParamType::integer, Json(vocab), false, "vocabulary size (match the tokenizer)"},
          {"context", ParamType::integer, Json(ctx), false, "positions (maximum sequence length)"},
          {"layers", ParamType::integer, Json(gpt ? 12 : 12), false, "transformer blocks"},
          {"width", ParamType::integer, Json(768), false, "hidden size"},
          {"heads", ParamType::integer, Json(12), false, "attention heads (width must divide)"},
          {"ffn", ParamType::integer, Json(0), false, "MLP hidden size (0 = 4 * width)"},
          {"dropout", ParamType::number, Json(0.0), false, "residual and embedding dropout"},
          {"tied", ParamType::boolean, Json(true), false, "tie the output head to the input embedding"},
          {"init_seed", ParamType::integer, Json(), false, "initialisation seed (default: derived from the run seed)"},
          {"load", ParamType::string, Json(""), false, "safetensors file to load (config read from it when it has one)",
           true}};
}

PluginEntry gpt_entry() {
  PluginEntry e;
  e.name = "model.gpt";
  e.kind = PluginKind::model;
  e.version = "1.0.0";
  e.description = "GPT-2 (pre-LN, learned positions, tanh GELU, tied head) with Hugging Face names";
  e.params = model_params(50257, 1024, true);
  e.inputs = {{"tokens", "tokens", false, "token ids [B, T]"}};
  e.outputs = {{"logits", "logits", false, "next-token logits [B, T, V]"},
               {"hidden", "hidden", false, "final hidden states [B, T, C]"}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<GptNode>(p); };
  return e;
}

PluginEntry bert_entry() {
  PluginEntry e;
  e.name = "model.bert";
  e.kind = PluginKind::model;
  e.version = "1.0.0";
  e.description = "BERT encoder (post-LN, padding mask) with its masked-LM head, Hugging Face names";
  e.params = model_params(30522, 512, false);
  e.inputs = {{"tokens", "tokens", false, "token ids [B, T]"},
              {"attention_mask", "mask", true, "1 for real tokens, 0 for padding [B, T]"}};
  e.outputs = {{"logits", "logits", false, "masked-LM logits [B, T, V]"},
               {"hidden", "hidden", false, "encoder output [B, T, C]"}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<BertNode>(p); };
  return e;
}
}  // namespace

}  // namespace scion::lm

using scion::lm::bert_entry;
using scion::lm::gpt_entry;
SCION_REGISTER_PLUGIN(gpt_entry)
SCION_REGISTER_PLUGIN(bert_entry)
