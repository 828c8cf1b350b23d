// The model.gpt and model.bert plugin entries: schemas and ports.
#include "lm_nodes.h"

namespace scion::lm {

namespace {
std::vector<ParamSpec> model_params(int64_t vocab, int64_t ctx, bool gpt) {
  return {int_param("vocab", vocab, "vocabulary size (match the tokenizer)").at_least(1),
          int_param("context", ctx, "positions (maximum sequence length)").at_least(1),
          int_param("layers", gpt ? 12 : 12, "transformer blocks").at_least(0),
          int_param("width", 768, "hidden size").at_least(1),
          int_param("heads", 12, "attention heads (width must divide)").at_least(1),
          int_param("ffn", 0, "MLP hidden size (0 = 4 * width)").at_least(0),
          num_param("dropout", 0.0, "residual and embedding dropout").at_least(0).below(1),
          bool_param("tied", true, "tie the output head to the input embedding"),
          {"init_seed", ParamType::integer, Json(), false, "initialisation seed (default: derived from the run seed)"},
          {"load", ParamType::string, Json(""), false, "safetensors file to load (config read from it when it has one)",
           true},
          bool_param("layer_outputs", false, "also give every block's output on port 'layers' (layerwise distillation)")};
}

// What the model's constructor and first forward pass would refuse. A model that loads a
// checkpoint takes its config from the file, so its own parameters are checked only without.
std::vector<GraphProblem> check_model(const GraphView& g, const GraphNodeView& self) {
  std::vector<GraphProblem> out;
  const Params& p = self.params;
  if (!p.s("load").empty()) return out;
  if (p.i("width") % p.i("heads") != 0)
    out.push_back({"heads", "width " + std::to_string(p.i("width")) + " is not divisible by heads " +
                                std::to_string(p.i("heads")),
                   "choose heads that divide the width (head size = width / heads)"});
  // The windows fed to the model must fit its positions.
  auto in = self.inputs.find("tokens");
  const GraphNodeView* src = in == self.inputs.end() ? nullptr : g.node(in->second.substr(0, in->second.find('.')));
  if (src && src->params.all().contains("seq_len") && src->params.all().at("seq_len").is_number() &&
      src->params.i("seq_len") > p.i("context"))
    out.push_back({"context", "node '" + src->name + "' feeds windows of " + std::to_string(src->params.i("seq_len")) +
                                  " tokens, more than the context of " + std::to_string(p.i("context")),
                   "set context >= " + std::to_string(src->params.i("seq_len")) + ", or seq_len of '" + src->name +
                       "' <= " + std::to_string(p.i("context"))});
  return out;
}

PluginEntry gpt_entry() {
  PluginEntry e;
  e.name = "model.gpt";
  e.kind = PluginKind::model;
  e.version = "1.0.0";
  e.description = "GPT-2 (pre-LN, learned positions, tanh GELU, tied head) with Hugging Face names";
  e.params = model_params(50257, 1024, true);
  e.inputs = {{"tokens", "tokens:i64[B,T]", false, "token ids [B, T]"}};
  e.outputs = {{"logits", "logits:f32[B,T,{vocab}]", false, "next-token logits [B, T, V]"},
               {"hidden", "hidden:f32[B,T,{width}]", false, "final hidden states [B, T, C]"},
               {"layers", "layers:f32[?,B,T,?]", true, "every block's output [L, B, T, C] (with layer_outputs = true)"}};
  e.check = check_model;
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
  e.inputs = {{"tokens", "tokens:i64[B,T]", false, "token ids [B, T]"},
              {"attention_mask", "mask:u8[B,T]", true, "1 for real tokens, 0 for padding [B, T]"}};
  e.outputs = {{"logits", "logits:f32[B,T,{vocab}]", false, "masked-LM logits [B, T, V]"},
               {"hidden", "hidden:f32[B,T,{width}]", false, "encoder output [B, T, C]"},
               {"layers", "layers:f32[?,B,T,?]", true, "every layer's output [L, B, T, C] (with layer_outputs = true)"}};
  e.check = check_model;
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<BertNode>(p); };
  return e;
}
}  // namespace

}  // namespace scion::lm

using scion::lm::bert_entry;
using scion::lm::gpt_entry;
SCION_REGISTER_PLUGIN(gpt_entry)
SCION_REGISTER_PLUGIN(bert_entry)
