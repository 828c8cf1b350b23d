// GPT-2 and BERT models: names, shapes, and logits rebuilt independently from the weights.
#include <gtest/gtest.h>

#include <cmath>

#include "bert_model.h"
#include "decoder_model.h"

using namespace scion;

namespace {
lm::DecoderConfig tiny_gpt() {
  lm::DecoderConfig c;
  c.vocab = 23;
  c.context = 8;
  c.layers = 2;
  c.width = 12;
  c.heads = 3;
  c.seed = 5;
  return c;
}

// Plain double-precision GPT-2 forward from the state dict (no Scion ops).
std::vector<double> reference_gpt_logits(const lm::DecoderModel& m, const std::vector<int64_t>& ids, int64_t T) {
  const auto& c = m.config();
  const int64_t C = c.width, V = c.vocab, H = c.heads, D = C / H, F = 4 * C;
  auto P = [&](const std::string& n) { return m.parameter(n).to_vector(); };
  auto layernorm = [&](std::vector<double> x, const std::string& n) {
    auto w = P(n + ".weight"), b = P(n + ".bias");
    for (int64_t t = 0; t < T; ++t) {
      double mu = 0, var = 0;
      for (int64_t i = 0; i < C; ++i) mu += x[size_t(t * C + i)];
      mu /= double(C);
      for (int64_t i = 0; i < C; ++i) var += std::pow(x[size_t(t * C + i)] - mu, 2);
      var /= double(C);
      for (int64_t i = 0; i < C; ++i)
        x[size_t(t * C + i)] = (x[size_t(t * C + i)] - mu) / std::sqrt(var + 1e-5) * w[size_t(i)] + b[size_t(i)];
    }
    return x;
  };
  auto conv1d = [&](const std::vector<double>& x, const std::string& n, int64_t in, int64_t out) {
    auto w = P(n + ".weight"), b = P(n + ".bias");
    std::vector<double> y(size_t(T * out));
    for (int64_t t = 0; t < T; ++t)
      for (int64_t o = 0; o < out; ++o) {
        double s = b[size_t(o)];
        for (int64_t i = 0; i < in; ++i) s += x[size_t(t * in + i)] * w[size_t(i * out + o)];
        y[size_t(t * out + o)] = s;
      }
    return y;
  };
  auto wte = P("transformer.wte.weight"), wpe = P("transformer.wpe.weight");
  std::vector<double> x(size_t(T * C));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < C; ++i) x[size_t(t * C + i)] = wte[size_t(ids[size_t(t)] * C + i)] + wpe[size_t(t * C + i)];
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "transformer.h." + std::to_string(l);
    auto qkv = conv1d(layernorm(x, p + ".ln_1"), p + ".attn.c_attn", C, 3 * C);
    std::vector<double> att(size_t(T * C), 0.0);
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(size_t(i + 1));
        double mx = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          double d = 0;
          for (int64_t k = 0; k < D; ++k) d += qkv[size_t(i * 3 * C + h * D + k)] * qkv[size_t(j * 3 * C + C + h * D + k)];
          s[size_t(j)] = d / std::sqrt(double(D));
          mx = std::max(mx, s[size_t(j)]);
        }
        double z = 0;
        for (auto& v : s) z += (v = std::exp(v - mx));
        for (int64_t j = 0; j <= i; ++j)
          for (int64_t k = 0; k < D; ++k)
            att[size_t(i * C + h * D + k)] += s[size_t(j)] / z * qkv[size_t(j * 3 * C + 2 * C + h * D + k)];
      }
    auto proj = conv1d(att, p + ".attn.c_proj", C, C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += proj[i];
    auto f = conv1d(layernorm(x, p + ".ln_2"), p + ".mlp.c_fc", C, F);
    for (auto& v : f) v = 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    auto o = conv1d(f, p + ".mlp.c_proj", F, C);
    for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
  }
  x = layernorm(x, "transformer.ln_f");
  std::vector<double> logits(size_t(T * V));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t v = 0; v < V; ++v) {
      double s = 0;
      for (int64_t i = 0; i < C; ++i) s += x[size_t(t * C + i)] * wte[size_t(v * C + i)];
      logits[size_t(t * V + v)] = s;
    }
  return logits;
}
}  // namespace

TEST(DecoderModel, HuggingFaceNamesAndShapes) {
  lm::DecoderModel m(tiny_gpt());
  auto sd = m.state_dict();
  EXPECT_EQ(sd.front().first, "transformer.wte.weight");
  EXPECT_EQ(sd[1].first, "transformer.wpe.weight");
  EXPECT_EQ(sd[2].first, "transformer.h.0.ln_1.weight");
  EXPECT_EQ(sd.back().first, "transformer.ln_f.bias");
  EXPECT_EQ(m.parameter("transformer.h.1.attn.c_attn.weight").shape(), (Shape{12, 36}));
  EXPECT_EQ(m.parameter("transformer.h.1.mlp.c_proj.weight").shape(), (Shape{48, 12}));
  EXPECT_EQ(sd.size(), size_t(2 + 2 * 12 + 2));
}

TEST(DecoderModel, LogitsMatchAnIndependentForward) {
  lm::DecoderModel m(tiny_gpt());
  // Give the layernorms non-trivial weights so the test covers them.
  m.replace_parameter("transformer.ln_f.weight", Tensor::rand({12}, 9, 0.5f, 1.5f));
  m.replace_parameter("transformer.h.0.ln_1.bias", Tensor::randn({12}, 10, 0.f, 0.1f));
  const std::vector<int64_t> ids = {3, 0, 22, 7, 7, 1};
  Tensor logits = m.forward(Tensor::from_vector_i64(ids, {1, 6}));
  ASSERT_EQ(logits.shape(), (Shape{1, 6, 23}));
  auto want = reference_gpt_logits(m, ids, 6);
  auto got = logits.to_vector();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << i;
}

TEST(DecoderModel, HubNamesLoadAndShapeErrorsNameTheKey) {
  lm::DecoderModel a(tiny_gpt());
  auto cfg = tiny_gpt();
  cfg.seed = 99;
  lm::DecoderModel b(cfg);
  nn::NamedTensors hub;  // Hub files drop the "transformer." prefix and may carry lm_head
  for (auto& [n, t] : a.state_dict()) hub.emplace_back(n.substr(std::string("transformer.").size()), t);
  hub.emplace_back("lm_head.weight", a.parameter("transformer.wte.weight"));
  b.load_hf_state_dict(hub);
  Tensor ids = Tensor::from_vector_i64({1, 2, 3}, {1, 3});
  EXPECT_EQ(a.forward(ids).to_vector(), b.forward(ids).to_vector());
  hub[0].second = Tensor::zeros({5, 12});
  try {
    b.load_hf_state_dict(hub);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("transformer.wte.weight"), std::string::npos) << e.what();
  }
  EXPECT_THROW(a.forward(Tensor::from_vector_i64(std::vector<int64_t>(9, 1), {1, 9})), Error);  // past context
  EXPECT_THROW(a.forward(Tensor::from_vector_i64({30}, {1, 1})), Error);                       // id >= vocab
}

TEST(BertModel, NamesShapesAndPaddingMask) {
  lm::BertConfig c;
  c.vocab = 31;
  c.context = 10;
  c.layers = 2;
  c.width = 8;
  c.heads = 2;
  c.seed = 3;
  lm::BertModel m(c);
  auto sd = m.state_dict();
  EXPECT_EQ(sd[0].first, "bert.embeddings.word_embeddings.weight");
  EXPECT_EQ(sd[3].first, "bert.embeddings.LayerNorm.weight");
  EXPECT_EQ(sd[5].first, "bert.encoder.layer.0.attention.self.query.weight");
  EXPECT_EQ(sd.back().first, "cls.predictions.bias");
  // Padded positions do not change the outputs at real positions.
  Tensor ids = Tensor::from_vector_i64({5, 6, 7, 0, 0, 5, 6, 7, 9, 4}, {2, 5});
  Tensor mask = Tensor::from_vector({1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, {2, 5}).to(DType::u8);
  auto full = m.forward(ids, Tensor(), mask).to_vector();
  Tensor ids_short = Tensor::from_vector_i64({5, 6, 7}, {1, 3});
  auto short_out = m.forward(ids_short).to_vector();
  for (int64_t t = 0; t < 3; ++t)
    for (int64_t v = 0; v < 31; ++v) EXPECT_NEAR(full[size_t(t * 31 + v)], short_out[size_t(t * 31 + v)], 1e-4);
}
