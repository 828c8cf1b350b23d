// The model.gpt, model.llama and model.bert plugin entries: schemas and ports.
#include <algorithm>
#include <cstdio>

#include "graph_facts.h"
#include "hf_config.h"
#include "lm_nodes.h"
#include "scion/sizes.h"

namespace scion::lm {

namespace {
enum class Family { gpt2, bert, llama };

std::vector<ParamSpec> model_params(int64_t vocab, int64_t ctx, Family f) {
  const bool llama = f == Family::llama;
  std::vector<ParamSpec> p{
      int_param("vocab", vocab, "vocabulary size (match the tokenizer)").at_least(1),
      int_param("context", ctx, "positions (maximum sequence length)").at_least(1),
      int_param("layers", 12, "transformer blocks").at_least(0),
      int_param("width", 768, "hidden size").at_least(1),
      int_param("heads", 12, "attention heads (width must divide)").at_least(1),
      int_param("ffn", 0, llama ? "SwiGLU hidden size (0 = 4 * width)" : "MLP hidden size (0 = 4 * width)").at_least(0),
      num_param("dropout", 0.0, "residual and embedding dropout").at_least(0).below(1),
      bool_param("tied", !llama, "tie the output head to the input embedding"),
      {"init_seed", ParamType::integer, Json(), false, "initialisation seed (default: derived from the run seed)"},
      {"load", ParamType::string, Json(""), false,
       llama ? "a Hugging Face model directory (config.json, safetensors) or a Scion .safetensors checkpoint"
             : "safetensors file to load (config read from it when it has one)",
       true},
      bool_param("layer_outputs", false, "also give every block's output on port 'layers' (layerwise distillation)")};
  if (llama) {
    p.push_back(int_param("kv_heads", 0, "key/value heads (grouped-query attention; 0 = heads, 1 = multi-query)")
                    .at_least(0));
    p.push_back(num_param("norm_eps", 1e-6, "RMSNorm epsilon (rms_norm_eps)").above(0));
    p.push_back(num_param("rope_theta", 10000.0, "rotary base (rope_theta)").above(0));
  }
  return p;
}

// What the model's constructor and first forward pass would refuse, and what would make its
// results meaningless: a checkpoint of another kind, a vocabulary that does not cover the
// tokenizer's ids, windows longer than its positions, a size this machine cannot hold. A model
// that loads a Scion checkpoint takes its config from the file, so the file's config is checked.
std::vector<GraphProblem> check_model(const GraphView& g, const GraphNodeView& self) {
  std::vector<GraphProblem> out;
  const Params& p = self.params;
  const std::string load = p.string("load");
  if (!load.empty()) {
    const CheckpointFacts& c = checkpoint_facts(load);
    if (!c.error.empty()) {
      out.push_back({"load", "cannot read the model file '" + load + "': " + c.error,
                     "load = a .safetensors file written by scion (or a Hugging Face one)"});
      return out;
    }
    if (!c.plugin.empty() && c.plugin != self.plugin)
      out.push_back({"load", "'" + load + "' holds a " + c.plugin + " model, but node '" + self.name + "' is " +
                                 self.plugin,
                     "load it into a node with plugin = \"" + c.plugin + "\", or name a " + self.plugin + " checkpoint"});
  } else {
    if (p.integer("width") % p.integer("heads") != 0)
      out.push_back({"heads", "width " + std::to_string(p.integer("width")) + " is not divisible by heads " +
                                  std::to_string(p.integer("heads")),
                     "choose heads that divide the width (head size = width / heads)"});
    if (p.has("kv_heads") && p.integer("kv_heads") > 0 && p.integer("heads") % p.integer("kv_heads") != 0)
      out.push_back({"kv_heads", std::to_string(p.integer("kv_heads")) + " key/value heads do not divide " +
                                     std::to_string(p.integer("heads")) + " heads",
                     "choose kv_heads dividing heads (each key/value head serves heads / kv_heads query heads)"});
    if (p.has("kv_heads") && p.integer("width") % p.integer("heads") == 0 && (p.integer("width") / p.integer("heads")) % 2)
      out.push_back({"heads", "the head size " + std::to_string(p.integer("width") / p.integer("heads")) +
                                  " is odd; rotary positions turn pairs of dimensions",
                     "choose heads so that width / heads is even"});
    // The weights alone (4 bytes each) must fit in this machine's memory; training needs
    // about four times that (gradients, two optimizer moments). Llama's SwiGLU has three
    // FFN matrices, GPT's and BERT's MLP two.
    const double w = double(p.integer("width")), ffn = p.integer("ffn") > 0 ? double(p.integer("ffn")) : 4 * w;
    const double params = transformer_parameters(double(p.integer("layers")), w, ffn, double(p.integer("vocab")),
                                                 double(p.integer("context")), p.boolean("tied"), p.has("kv_heads"));
    char count[32];
    std::snprintf(count, sizeof count, "%.3g", params);
    const std::string problem = memory_problem(4 * params, std::string("a model of ") + count + " parameters",
                                                " for its weights alone");
    if (!problem.empty())
      out.push_back({p.integer("layers") * 4 * w * w > double(p.integer("vocab")) * w ? "layers" : "vocab",
                     problem, "check layers, width, ffn and vocab"});
  }
  const int64_t vocab = model_vocab(self), context = model_context(self);
  const std::string from = load.empty() ? "" : " (from '" + load + "')";
  const std::string at = load.empty() ? "" : "load";
  // The windows fed to the model must fit its positions.
  // Through nodes between (a prompt node rewriting the tokens) to the data node that cuts them.
  const GraphNodeView* src = g.input_source(self, "tokens");
  for (int hop = 0; hop < 8 && src && !src->params.all().contains("seq_len") && src->inputs.count("tokens"); ++hop)
    src = g.input_source(*src, "tokens");
  if (src && context > 0 && src->params.all().contains("seq_len") && src->params.raw("seq_len").is_number_integer() &&
      src->params.integer("seq_len") > context)
    out.push_back({at.empty() ? "context" : at,
                   "node '" + src->name + "' feeds windows of " + std::to_string(src->params.integer("seq_len")) +
                       " tokens, more than the context of " + std::to_string(context) + from,
                   (load.empty() ? "set context >= " + std::to_string(src->params.integer("seq_len")) + ", or seq_len of '"
                                 : "the checkpoint's positions are fixed: seq_len of '") +
                       src->name + "' <= " + std::to_string(context)});
  // Every id the tokenizers that reach the model can give must have an embedding row: the
  // one feeding its tokens, and those of the evaluators scoring it.
  std::vector<const GraphNodeView*> tokenizers;
  if (const GraphNodeView* t = tokenizer_feeding(g, self)) tokenizers.push_back(t);
  for (const auto& n : g.nodes)
    if (n.kind == PluginKind::evaluator && n.params.has("tokenizer") && n.params.raw("tokenizer").is_string())
      for (const char* role : {"model", "teacher"})
        if (n.params.has(role) && n.params.raw(role).is_string() && n.params.string(role) == self.name)
          if (const GraphNodeView* t = g.node(n.params.string("tokenizer")); t && t->kind == PluginKind::tokenizer)
            tokenizers.push_back(t);
  for (size_t i = 0; i < tokenizers.size(); ++i) {
    if (std::find(tokenizers.begin(), tokenizers.begin() + long(i), tokenizers[i]) != tokenizers.begin() + long(i)) continue;
    const GraphNodeView& t = *tokenizers[i];
    const int64_t tv = tokenizer_facts(g, t).vocab();
    if (tv <= 0 || vocab <= 0) continue;
    if (vocab < tv)
      out.push_back({at.empty() ? "vocab" : at,
                     "a vocabulary of " + std::to_string(vocab) + from + " is smaller than tokenizer '" + t.name +
                         "' (" + t.plugin + "), which gives ids up to " + std::to_string(tv - 1),
                     load.empty() ? "set vocab = " + std::to_string(tv) + " (or up to " + std::to_string(padded_vocab(tv)) +
                                        ", padded to a multiple of 128)"
                                  : "this checkpoint was trained with another tokenizer; use that one"});
    else if (!load.empty() && !vocab_fits_tokenizer(vocab, tv))
      out.push_back({at, "'" + load + "' has a vocabulary of " + std::to_string(vocab) + ", far more than the " +
                             std::to_string(tv) + " ids of tokenizer '" + t.name + "' (" + t.plugin + ")",
                     "this checkpoint was trained with another tokenizer (its vocabulary would be " + std::to_string(tv) +
                         " to " + std::to_string(padded_vocab(tv)) + "); use that one"});
  }
  return out;
}

PluginEntry llama_entry() {
  PluginEntry e;
  e.name = "model.llama";
  e.kind = PluginKind::model;
  e.version = "1.0.0";
  e.description = "Llama family (Llama 2/3, Qwen2, Mistral, SmolLM): RMSNorm, SwiGLU, rotary positions, grouped "
                  "key/value heads; loads Hugging Face directories; Hugging Face names";
  e.params = model_params(32000, 2048, Family::llama);
  e.inputs = {{"tokens", "tokens:i64[B,T]", false, "token ids [B, T]"},
              {"prompt_embeds", "embeds:f32[B,?,{width}]", true, "soft prompt [B, k, C] before the token embeddings (prompt.tuning)"}};
  e.outputs = {{"logits", "logits:f32[B,T,{vocab}]", false, "next-token logits [B, T, V]"},
               {"hidden", "hidden:f32[B,T,{width}]", false, "final hidden states [B, T, C] (after model.norm)"},
               {"layers", "layers:f32[?,B,T,?]", true, "every block's output [L, B, T, C] (with layer_outputs = true)"},
               {"ffn_input", "hidden:f32[B,T,{width}]", false,
                "the last block's FFN input after its post_attention_layernorm [B, T, C] (TRIME, kNN-LM keys)"}};
  e.check = check_model;
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<DecoderNode>(p, "llama"); };
  e.hf_architectures = hf_architectures_of("model.llama");
  return e;
}

PluginEntry gpt_entry() {
  PluginEntry e;
  e.name = "model.gpt";
  e.kind = PluginKind::model;
  e.version = "1.0.0";
  e.description = "GPT-2 (pre-LN, learned positions, tanh GELU, tied head) with Hugging Face names";
  e.params = model_params(50257, 1024, Family::gpt2);
  e.inputs = {{"tokens", "tokens:i64[B,T]", false, "token ids [B, T]"},
              {"prompt_embeds", "embeds:f32[B,?,{width}]", true, "soft prompt [B, k, C] before the token embeddings (prompt.tuning)"}};
  e.outputs = {{"logits", "logits:f32[B,T,{vocab}]", false, "next-token logits [B, T, V]"},
               {"hidden", "hidden:f32[B,T,{width}]", false, "final hidden states [B, T, C]"},
               {"layers", "layers:f32[?,B,T,?]", true, "every block's output [L, B, T, C] (with layer_outputs = true)"},
               {"ffn_input", "hidden:f32[B,T,{width}]", false,
                "the last block's FFN input after its LayerNorm [B, T, C] (TRIME, kNN-LM keys)"}};
  e.check = check_model;
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<DecoderNode>(p, "gpt2"); };
  e.hf_architectures = hf_architectures_of("model.gpt");
  return e;
}

PluginEntry bert_entry() {
  PluginEntry e;
  e.name = "model.bert";
  e.kind = PluginKind::model;
  e.version = "1.0.0";
  e.description = "BERT encoder (post-LN, padding mask) with its masked-LM head, Hugging Face names";
  e.params = model_params(30522, 512, Family::bert);
  e.inputs = {{"tokens", "tokens:i64[B,T]", false, "token ids [B, T]"},
              {"attention_mask", "mask:u8[B,T]", true, "1 for real tokens, 0 for padding [B, T]"},
              {"prompt_embeds", "embeds:f32[B,?,{width}]", true, "soft prompt [B, k, C] before the word embeddings (prompt.tuning)"}};
  e.outputs = {{"logits", "logits:f32[B,T,{vocab}]", false, "masked-LM logits [B, T, V]"},
               {"hidden", "hidden:f32[B,T,{width}]", false, "encoder output [B, T, C]"},
               {"layers", "layers:f32[?,B,T,?]", true, "every layer's output [L, B, T, C] (with layer_outputs = true)"}};
  e.check = check_model;
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<BertNode>(p); };
  e.hf_architectures = hf_architectures_of("model.bert");
  return e;
}
}  // namespace

}  // namespace scion::lm

using scion::lm::bert_entry;
using scion::lm::gpt_entry;
using scion::lm::llama_entry;
SCION_REGISTER_PLUGIN(gpt_entry)
SCION_REGISTER_PLUGIN(llama_entry)
SCION_REGISTER_PLUGIN(bert_entry)
