#include "bert_model.h"

#include <string>

#include "scion/random.h"

namespace scion::lm {

BertModel::BertModel(const BertConfig& c) : cfg_(c) {
  SCION_CHECK(c.vocab > 0 && c.context > 0 && c.width > 0 && c.layers >= 0, "model.bert: vocab, context and width must "
              "be positive (got vocab=", c.vocab, " context=", c.context, " width=", c.width, ")");
  c.check("model.bert");
  if (cfg_.ffn == 0) cfg_.ffn = 4 * c.width;
  word = register_module("bert.embeddings.word_embeddings",
                         std::make_shared<nn::Embedding>(c.vocab, c.width, nn::InitConfig{derive_seed(c.seed, 1), 0.02f}));
  position = register_module("bert.embeddings.position_embeddings",
                             std::make_shared<nn::Embedding>(c.context, c.width, nn::InitConfig{derive_seed(c.seed, 2), 0.02f}));
  token_type = register_module("bert.embeddings.token_type_embeddings",
                               std::make_shared<nn::Embedding>(c.type_vocab, c.width, nn::InitConfig{derive_seed(c.seed, 3), 0.02f}));
  emb_ln = register_module("bert.embeddings.LayerNorm", std::make_shared<nn::Norm>(c.width, c.ln_eps));
  for (int64_t i = 0; i < c.layers; ++i) {
    nn::BlockConfig b = nn::BlockConfig::of_family("bert");
    b.width = c.width;
    b.heads = cfg_.heads_at(i);
    b.head_size = cfg_.head_dim();
    b.ffn = cfg_.ffn_at(i);
    b.dropout = c.dropout;
    b.ln_eps = c.ln_eps;
    b.init = {derive_seed(c.seed, 100 + uint64_t(i)), 0.02f};
    layers.push_back(register_module("bert.encoder.layer." + std::to_string(i), std::make_shared<nn::TransformerBlock>(b)));
  }
  transform = register_module("cls.predictions.transform.dense",
                              std::make_shared<nn::Linear>(c.width, c.width, true, false, nn::InitConfig{derive_seed(c.seed, 4), 0.02f}));
  transform_ln = register_module("cls.predictions.transform.LayerNorm", std::make_shared<nn::Norm>(c.width, c.ln_eps));
  if (!c.tied)
    register_parameter("cls.predictions.decoder.weight", &decoder_weight,
                       Tensor::randn({c.vocab, c.width}, derive_seed(c.seed, 5), 0.f, 0.02f));
  register_parameter("cls.predictions.bias", &decoder_bias, Tensor::zeros({c.vocab}));
}

Tensor BertModel::stream_gated(const Tensor& x) const {
  return emb_ln->kept_gate.defined() ? ops::mul(x, emb_ln->kept_gate) : x;
}

Tensor BertModel::hidden(const Tensor& ids, const Tensor& token_types, const Tensor& attention_mask,
                         uint64_t dropout_seed, int64_t max_layers, std::vector<Tensor>* layer_states) const {
  SCION_CHECK(ids.defined() && ids.dim() == 2, "model.bert: tokens must be [B, T], got ", ids.desc());
  const int64_t B = ids.size(0), T = ids.size(1);
  SCION_CHECK(T <= cfg_.context, "model.bert: sequence length ", T, " exceeds the context of ", cfg_.context,
              " positions");
  Tensor types = token_types.defined() ? token_types : Tensor::zeros({B, T}, DType::i64, ids.device());
  SCION_CHECK(types.shape() == ids.shape(), "model.bert: token types ", types.desc(), " do not match tokens ", ids.desc());
  Tensor x = ops::add(ops::add(word->forward(ids), position->forward(Tensor::arange(T, DType::i64, ids.device()))),
                      token_type->forward(types));
  x = emb_ln->forward(stream_gated(x));
  if (training_ && cfg_.dropout > 0.f) x = ops::dropout(x, cfg_.dropout, derive_seed(dropout_seed, 0));
  const size_t n = max_layers < 0 ? layers.size() : std::min(layers.size(), size_t(max_layers));
  for (size_t i = 0; i < n; ++i) {
    x = layers[i]->forward(x, {attention_mask, derive_seed(dropout_seed, 1 + i)});
    if (layer_states) layer_states->push_back(x);
  }
  return x;
}

Tensor BertModel::hidden_with_prompt(const Tensor& ids, const Tensor& prompt, const Tensor& attention_mask,
                                     uint64_t dropout_seed) const {
  SCION_CHECK(ids.defined() && ids.dim() == 2 && prompt.dim() == 3 && prompt.size(0) == ids.size(0) &&
                  prompt.size(2) == cfg_.width,
              "model.bert: a prompt [B, k, ", cfg_.width, "] for tokens [B, T] expected, got ", prompt.desc(), " and ",
              ids.desc());
  const int64_t B = ids.size(0), k = prompt.size(1), T = ids.size(1);
  SCION_CHECK(k + T <= cfg_.context, "model.bert: a prompt of ", k, " and ", T, " tokens exceed the context of ",
              cfg_.context, " positions");
  Tensor x = ops::add(ops::add(ops::concat({prompt, word->forward(ids)}, 1),
                               position->forward(Tensor::arange(k + T, DType::i64, ids.device()))),
                      token_type->forward(Tensor::zeros({B, k + T}, DType::i64, ids.device())));
  x = emb_ln->forward(stream_gated(x));
  if (training_ && cfg_.dropout > 0.f) x = ops::dropout(x, cfg_.dropout, derive_seed(dropout_seed, 0));
  Tensor mask;
  if (attention_mask.defined()) {  // the prompt positions are always attended
    Tensor m = attention_mask.contiguous();
    mask = Tensor::empty({B, k + T}, DType::u8);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < k + T; ++t) mask.data<uint8_t>()[b * (k + T) + t] = t < k ? 1 : m.data<uint8_t>()[b * T + t - k];
  }
  for (size_t i = 0; i < layers.size(); ++i) x = layers[i]->forward(x, {mask, derive_seed(dropout_seed, 1 + i)});
  return ops::split(x, {k, T}, 1)[1];
}

std::vector<nn::Norm*> BertModel::hidden_norms() const {
  std::vector<nn::Norm*> out{emb_ln.get()};
  for (const auto& b : layers)
    for (const auto& ln : {b->ln_1, b->ln_2})
      if (ln) out.push_back(ln.get());
  out.push_back(transform_ln.get());
  return out;
}

Tensor BertModel::mlm_transform(const Tensor& h) const { return transform_ln->forward(ops::gelu(transform->forward(h))); }

Tensor BertModel::mlm_logits(const Tensor& h) const {
  return ops::linear(mlm_transform(h), decoder(), decoder_bias, /*w_in_out=*/false);
}

Tensor BertModel::forward(const Tensor& ids, const Tensor& token_types, const Tensor& attention_mask,
                          uint64_t dropout_seed) const {
  return mlm_logits(hidden(ids, token_types, attention_mask, dropout_seed));
}

}  // namespace scion::lm
