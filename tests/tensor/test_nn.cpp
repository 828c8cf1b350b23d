// nn blocks: Hugging Face names, state dicts, and the block maths.
#include <gtest/gtest.h>

#include <algorithm>

#include "scion/nn.h"
#include "scion/ops.h"

using namespace scion;

namespace {
std::vector<std::string> names(const nn::Module& m) {
  std::vector<std::string> out;
  for (auto& [n, t] : m.named_parameters()) out.push_back(n);
  return out;
}
}  // namespace

TEST(NN, Gpt2BlockNamesAndLayouts) {
  nn::BlockConfig c;
  c.width = 16;
  c.heads = 2;
  c.ffn = 64;
  nn::TransformerBlock b(c);
  EXPECT_EQ(names(b), (std::vector<std::string>{
                          "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                          "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                          "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"}));
  EXPECT_EQ(b.parameter("attn.c_attn.weight").shape(), (Shape{16, 48}));  // Conv1D: [in, out]
  EXPECT_EQ(b.parameter("mlp.c_fc.weight").shape(), (Shape{16, 64}));
  auto named = b.named_parameters("transformer.h.3");
  EXPECT_EQ(named[2].first, "transformer.h.3.attn.c_attn.weight");
}

TEST(NN, BertBlockNamesAndLayouts) {
  nn::BlockConfig c = nn::BlockConfig::of_family("bert");
  c.width = 16;
  c.heads = 2;
  c.ffn = 64;
  nn::TransformerBlock b(c);
  EXPECT_EQ(names(b), (std::vector<std::string>{
                          "attention.self.query.weight", "attention.self.query.bias",
                          "attention.self.key.weight", "attention.self.key.bias",
                          "attention.self.value.weight", "attention.self.value.bias",
                          "attention.output.dense.weight", "attention.output.dense.bias",
                          "attention.output.LayerNorm.weight", "attention.output.LayerNorm.bias",
                          "intermediate.dense.weight", "intermediate.dense.bias", "output.dense.weight",
                          "output.dense.bias", "output.LayerNorm.weight", "output.LayerNorm.bias"}));
  EXPECT_EQ(b.parameter("intermediate.dense.weight").shape(), (Shape{64, 16}));  // nn.Linear: [out, in]
}

TEST(NN, StateDictRoundTripAndErrors) {
  nn::BlockConfig c;
  c.width = 8;
  c.heads = 2;
  c.ffn = 16;
  c.init.seed = 1;
  nn::TransformerBlock a(c);
  c.init.seed = 2;
  nn::TransformerBlock b(c);
  Tensor x = Tensor::randn({2, 5, 8}, 3);
  EXPECT_NE(a.forward(x).to_vector(), b.forward(x).to_vector());
  b.load_state_dict(a.state_dict());
  EXPECT_EQ(a.forward(x).to_vector(), b.forward(x).to_vector());
  // A wrong shape names the key and both shapes, and leaves the module untouched.
  nn::NamedTensors bad = a.state_dict();
  const std::vector<float> before = b.parameter("ln_1.weight").to_vector();
  bad[0].second = Tensor::ones({8});
  bad[2].second = Tensor::zeros({3, 3});
  try {
    b.load_state_dict(bad);
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("attn.c_attn.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[3, 3]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[8, 24]"), std::string::npos) << msg;
  }
  EXPECT_EQ(b.parameter("ln_1.weight").to_vector(), before);
  const nn::NamedTensors full = a.state_dict();
  nn::NamedTensors missing(full.begin() + 1, full.end());
  EXPECT_THROW(b.load_state_dict(missing), Error);
  b.load_state_dict(missing, /*strict=*/false);
}

TEST(NN, Gpt2BlockMatchesItsDefinition) {
  // x + attn(ln1(x)), then h + mlp(ln2(h)), rebuilt from the ops by hand.
  nn::BlockConfig c;
  c.width = 12;
  c.heads = 3;
  c.ffn = 20;
  c.init.seed = 11;
  nn::TransformerBlock b(c);
  Tensor x = Tensor::randn({2, 6, 12}, 5);
  auto lin = [&](const Tensor& t, const std::string& p) {
    return ops::linear(t, b.parameter(p + ".weight"), b.parameter(p + ".bias"), true);
  };
  Tensor h1 = ops::layernorm(x, b.parameter("ln_1.weight"), b.parameter("ln_1.bias"));
  Tensor qkv = lin(h1, "attn.c_attn");
  auto parts = ops::split(qkv, {12, 12, 12}, 2);
  // Reference attention from plain ops: softmax(QK^T/sqrt(d) + causal mask) V per head.
  std::vector<Tensor> heads;
  for (int h = 0; h < 3; ++h) {
    Tensor q = parts[0].narrow(2, h * 4, 4), k = parts[1].narrow(2, h * 4, 4), v = parts[2].narrow(2, h * 4, 4);
    Tensor s = ops::mul_scalar(ops::matmul(q, k, false, true), 0.5f);
    Tensor mask = Tensor::zeros({6, 6}, DType::u8);
    for (int i = 0; i < 6; ++i)
      for (int j = i + 1; j < 6; ++j) mask.data<uint8_t>()[i * 6 + j] = 1;
    heads.push_back(ops::matmul(ops::softmax(ops::masked_fill(s, mask, -1e30f)), v));
  }
  Tensor att = lin(ops::concat(heads, 2), "attn.c_proj");
  Tensor h = ops::add(x, att);
  Tensor m = lin(ops::gelu(lin(ops::layernorm(h, b.parameter("ln_2.weight"), b.parameter("ln_2.bias")), "mlp.c_fc")),
                 "mlp.c_proj");
  std::vector<float> want = ops::add(h, m).to_vector(), got = b.forward(x).to_vector();
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5f) << i;
}
