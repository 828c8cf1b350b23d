#include "decoder_model.h"

#include <string>

#include "scion/random.h"

namespace scion::lm {

DecoderConfig DecoderConfig::of_family(const std::string& family) {
  SCION_CHECK(family == "gpt2" || family == "llama", "decoder: unknown family '", family, "' (gpt2 or llama)");
  DecoderConfig c;
  c.family = family;
  if (family == "llama") {
    const nn::BlockConfig b = nn::BlockConfig::of_family(family);
    c.norm_eps = 1e-6;  // LlamaConfig's rms_norm_eps default (Llama 2 and 3 files say 1e-5)
    c.qkv_bias = b.qkv_bias, c.o_bias = b.o_bias, c.mlp_bias = b.mlp_bias;
    c.tied = false;
    c.vocab = 32000;
    c.context = 2048;
  }
  return c;
}

nn::BlockConfig DecoderConfig::block(int64_t l) const {
  nn::BlockConfig b = nn::BlockConfig::of_family(family);
  b.width = width;
  b.heads = heads_at(l);
  b.kv_heads = kv_heads_at(l);
  b.kv_map = kv_map_at(l);
  b.head_size = head_dim();
  b.ffn = ffn_at(l);
  b.dropout = dropout;
  b.ln_eps = float(norm_eps);
  b.qkv_bias = qkv_bias, b.o_bias = o_bias, b.mlp_bias = mlp_bias;
  b.init = {derive_seed(seed, 100 + uint64_t(l)), 0.02f};
  b.layers_for_init = layers;
  return b;
}

DecoderModel::DecoderModel(const DecoderConfig& c) : cfg_(c) {
  const std::string who = "model." + std::string(c.family == "gpt2" ? "gpt" : c.family);
  SCION_CHECK(c.vocab > 0 && c.context > 0 && c.layers >= 0 && c.width > 0, who, ": vocab, context and width must be "
              "positive and layers >= 0 (got vocab=", c.vocab, " context=", c.context, " layers=", c.layers,
              " width=", c.width, ")");
  c.check(who.c_str());
  if (cfg_.ffn == 0) cfg_.ffn = 4 * c.width;
  const nn::TransformerNames& n = nn::transformer_names(c.family);
  const bool learned_positions = !nn::BlockConfig::of_family(c.family).rotary;
  wte = register_module(n.embed, std::make_shared<nn::Embedding>(c.vocab, c.width, nn::InitConfig{derive_seed(c.seed, 1), 0.02f}));
  if (learned_positions)
    wpe = register_module(n.positions, std::make_shared<nn::Embedding>(c.context, c.width,
                                                                        nn::InitConfig{derive_seed(c.seed, 2), 0.01f}));
  for (int64_t i = 0; i < c.layers; ++i)
    blocks.push_back(register_module(n.block_prefix + std::to_string(i),
                                     std::make_shared<nn::TransformerBlock>(cfg_.block(i))));
  ln_f = register_module(n.final_norm,
                         std::make_shared<nn::Norm>(c.width, float(c.norm_eps), nn::BlockConfig::of_family(c.family).norm));
  if (!c.tied)
    lm_head = register_module(n.head, std::make_shared<nn::Linear>(c.width, c.vocab, false, false,
                                                                   nn::InitConfig{derive_seed(c.seed, 3), 0.02f}));
}

Tensor DecoderModel::stream_gated(const Tensor& x) const {
  return ln_f->kept_gate.defined() ? ops::mul(x, ln_f->kept_gate) : x;
}

const ops::RopeTables* DecoderModel::rope(int64_t positions, Device device) const {
  if (wpe) return nullptr;
  if (!rope_.cos.defined() || rope_.cos.size(0) < positions || rope_.cos.device() != device)
    rope_ = ops::rope_tables(cfg_.head_dim(), cfg_.rope_theta, positions, 0, cfg_.rope_scaling, device);
  return &rope_;
}

Tensor DecoderModel::run_blocks(Tensor x, uint64_t dropout_seed, size_t n, std::vector<Tensor>* layer_states,
                                Tensor* last_ffn_input) const {
  x = stream_gated(x);
  if (training_ && cfg_.dropout > 0.f) x = ops::dropout(x, cfg_.dropout, derive_seed(dropout_seed, 0));
  nn::BlockInputs in;
  in.rope = rope(x.size(1), x.device());
  for (size_t i = 0; i < n; ++i) {
    in.dropout_seed = derive_seed(dropout_seed, 1 + i);
    in.ffn_input = i + 1 == n ? last_ffn_input : nullptr;
    x = blocks[i]->forward(x, in);
    if (layer_states) layer_states->push_back(x);
  }
  return x;
}

Tensor DecoderModel::hidden(const Tensor& ids, uint64_t dropout_seed, int64_t max_layers,
                            std::vector<Tensor>* layer_states, Tensor* last_ffn_input) const {
  SCION_CHECK(ids.defined() && ids.dim() == 2, "model: tokens must be [B, T], got ", ids.desc());
  const int64_t T = ids.size(1);
  SCION_CHECK(T <= cfg_.context, "model: sequence length ", T, " exceeds the context of ", cfg_.context,
              " positions (tokens ", ids.desc(), ")");
  Tensor x = wte->forward(ids);
  if (wpe) x = ops::add(x, wpe->forward(Tensor::arange(T, DType::i64, ids.device())));
  const size_t n = max_layers < 0 ? blocks.size() : std::min(blocks.size(), size_t(max_layers));
  return ln_f->forward(run_blocks(x, dropout_seed, n, layer_states, last_ffn_input));
}

Tensor DecoderModel::hidden_with_prompt(const Tensor& ids, const Tensor& prompt, uint64_t dropout_seed) const {
  SCION_CHECK(ids.defined() && ids.dim() == 2 && prompt.dim() == 3 && prompt.size(0) == ids.size(0) &&
                  prompt.size(2) == cfg_.width,
              "model: a prompt [B, k, ", cfg_.width, "] for tokens [B, T] expected, got ", prompt.desc(), " and ",
              ids.desc());
  const int64_t k = prompt.size(1), T = ids.size(1);
  SCION_CHECK(k + T <= cfg_.context, "model: a prompt of ", k, " and ", T, " tokens exceed the context of ",
              cfg_.context, " positions");
  Tensor x = ops::concat({prompt, wte->forward(ids)}, 1);
  if (wpe) x = ops::add(x, wpe->forward(Tensor::arange(k + T, DType::i64, ids.device())));
  x = run_blocks(x, dropout_seed, blocks.size(), nullptr, nullptr);
  return ln_f->forward(ops::split(x, {k, T}, 1)[1]);
}

Tensor DecoderModel::logits_from_hidden(const Tensor& h) const {
  if (lm_head) return lm_head->forward(h);
  return ops::matmul(h, wte->weight, false, true);  // tied: h · wte^T, one GEMM over all rows
}

Tensor DecoderModel::forward(const Tensor& ids, uint64_t dropout_seed) const {
  return logits_from_hidden(hidden(ids, dropout_seed));
}

void DecoderModel::load_hf_state_dict(const nn::NamedTensors& state) {
  const nn::TransformerNames& n = nn::transformer_names(cfg_.family);
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  nn::NamedTensors fixed;
  for (const auto& [name, t] : state) {
    if (name == n.head + ".weight" && cfg_.tied) continue;  // the tied copy of the embedding
    // Buffers, not parameters: GPT-2's causal masks, older Llama files' rotary frequencies.
    if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias") || ends_with(name, "rotary_emb.inv_freq"))
      continue;
    const bool bare_gpt2 = cfg_.family == "gpt2" && name.rfind("transformer.", 0) != 0 && name.rfind("lm_head.", 0) != 0;
    fixed.emplace_back(bare_gpt2 ? "transformer." + name : name, t);
  }
  load_state_dict(fixed, /*strict=*/true);
}

std::vector<nn::Norm*> DecoderModel::hidden_norms() const {
  std::vector<nn::Norm*> out;
  for (const auto& b : blocks)
    for (const auto& ln : {b->ln_1, b->ln_2})
      if (ln) out.push_back(ln.get());
  out.push_back(ln_f.get());
  return out;
}

}  // namespace scion::lm
