// The model.gpt and model.bert plugin entries: schemas and ports.
#include "lm_nodes.h"

namespace scion::lm {

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
