// The one table of Hugging Face tensor names per transformer family, and each family's usual
// choices. A model names its parameters from here, so its state dict is its Hugging Face
// twin's (GPT2LMHeadModel, BertForMaskedLM, LlamaForCausalLM and its Qwen2/Mistral kin).
#include <array>

#include "scion/nn.h"

namespace scion::nn {

namespace {
TransformerNames gpt2() {
  TransformerNames n;
  n.family = "gpt2";
  n.embed = "transformer.wte", n.positions = "transformer.wpe", n.final_norm = "transformer.ln_f";
  n.head = "lm_head", n.block_prefix = "transformer.h.";
  n.attn_norm = "ln_1", n.ffn_norm = "ln_2";
  n.attention = "attn", n.qkv = "c_attn", n.o = "c_proj";
  n.mlp = "mlp", n.up = "c_fc", n.down = "c_proj";
  n.conv1d = true;
  return n;
}
TransformerNames bert() {
  TransformerNames n;
  n.family = "bert";
  n.embed = "bert.embeddings.word_embeddings", n.positions = "bert.embeddings.position_embeddings";
  n.head = "cls.predictions.decoder", n.block_prefix = "bert.encoder.layer.";
  n.attn_norm = "attention.output.LayerNorm", n.ffn_norm = "output.LayerNorm";
  n.attention = "attention", n.q = "self.query", n.k = "self.key", n.v = "self.value", n.o = "output.dense";
  n.mlp = "", n.up = "intermediate.dense", n.down = "output.dense";
  return n;
}
TransformerNames llama() {
  TransformerNames n;
  n.family = "llama";
  n.embed = "model.embed_tokens", n.final_norm = "model.norm", n.head = "lm_head", n.block_prefix = "model.layers.";
  n.attn_norm = "input_layernorm", n.ffn_norm = "post_attention_layernorm";
  n.attention = "self_attn", n.q = "q_proj", n.k = "k_proj", n.v = "v_proj", n.o = "o_proj";
  n.mlp = "mlp", n.up = "up_proj", n.gate = "gate_proj", n.down = "down_proj";
  return n;
}
}  // namespace

const TransformerNames& transformer_names(const std::string& family) {
  static const std::array<TransformerNames, 3> table{gpt2(), bert(), llama()};
  for (const TransformerNames& n : table)
    if (n.family == family) return n;
  throw Error("transformer: unknown family '" + family + "' (known: gpt2, bert, llama)");
}

BlockConfig BlockConfig::of_family(const std::string& family) {
  transformer_names(family);  // checks the name
  BlockConfig c;
  c.family = family;
  if (family == "bert") {
    c.pre_norm = false;
    c.causal = false;
    c.ln_eps = 1e-12f;
  } else if (family == "llama") {
    // Llama: RMSNorm, SwiGLU, rotary positions, no biases (attention_bias and mlp_bias false).
    c.norm = NormKind::rms_norm;
    c.mlp = MlpKind::swiglu;
    c.rotary = true;
    c.qkv_bias = c.o_bias = c.mlp_bias = false;
    c.ln_eps = 1e-6f;
  }
  return c;
}

}  // namespace scion::nn
