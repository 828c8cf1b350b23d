// The prompt injectors: prompt.domain puts the domain token first and no target on it, and the
// model sees it; prompt_embeds in model.gpt/model.bert equal the same vectors fed as token
// embeddings, with gradients checked against finite differences.
#include <gtest/gtest.h>

#include "lm_nodes.h"
#include "runtime/registry.h"
#include "scion/ops.h"
#include "scion/safetensors.h"

#include <filesystem>
#include <unistd.h>
#include "runtime/in_process.h"
namespace fs = std::filesystem;

using namespace scion;

namespace {
class NoNodes final : public NodeResolver {
 public:
  std::shared_ptr<Plugin> node(const std::string& n) const override { throw Error("no node " + n); }
};
std::shared_ptr<PromptInjector> make_prompt(const std::string& plugin, Json params) {
  return std::dynamic_pointer_cast<PromptInjector>(scion::tests::in_tree_registry().create(plugin, Params(params, plugin, NodeContext{3, 0, 1, {}}), NoNodes()));
}
Tensor i64(const std::vector<int64_t>& v, Shape s) {
  Tensor t = Tensor::empty(s, DType::i64);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}
// [a | b] along the sequence of two i64 [B, *] id tensors.
Tensor cat_ids(const Tensor& a, const Tensor& b) {
  const int64_t B = a.size(0), n = a.size(1), m = b.size(1);
  Tensor t = Tensor::empty({B, n + m}, DType::i64);
  for (int64_t r = 0; r < B; ++r) {
    std::copy_n(a.data<int64_t>() + r * n, n, t.data<int64_t>() + r * (n + m));
    std::copy_n(b.data<int64_t>() + r * m, m, t.data<int64_t>() + r * (n + m) + n);
  }
  return t;
}
double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::fabs(double(x[i]) - y[i]));
  return d;
}
}  // namespace

TEST(DomainPrompt, TheDomainTokenComesFirstPredictsTheFirstTokenAndNoTargetPointsAtIt) {
  Json p;
  p["first_id"] = Json(int64_t(37));
  p["first_target"] = Json(true);  // the default (the graph fills it)
  auto pr = make_prompt("prompt.domain", p);
  ASSERT_TRUE(pr);
  // Two windows of 5 tokens, domains 0 and 2.
  Tensor x = i64({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {2, 5}), y = i64({2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {2, 5});
  TensorMap out = pr->inject({{"tokens", x}, {"targets", y}, {"domain", i64({0, 2}, {2})}}, StepContext());
  EXPECT_EQ(out.at("tokens").to_vector_i64(), (std::vector<int64_t>{37, 1, 2, 3, 4, 39, 6, 7, 8, 9}));
  // ELLE's target at the prompt is the window's first token.
  EXPECT_EQ(out.at("targets").to_vector_i64(), (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  for (int64_t t : out.at("targets").to_vector_i64()) EXPECT_TRUE(t < 37 || t > 39);
  Json q = p;
  q["first_target"] = Json(false);  // MLM windows: no target at the prompt
  TensorMap mlm = make_prompt("prompt.domain", q)->inject({{"tokens", x}, {"targets", y}, {"domain", i64({0, 2}, {2})}}, StepContext());
  EXPECT_EQ(mlm.at("targets").to_vector_i64(), (std::vector<int64_t>{-100, 2, 3, 4, 5, -100, 7, 8, 9, 10}));

  // The model sees it: the same window under two domains gives other logits everywhere.
  lm::DecoderConfig c;
  c.vocab = 40, c.context = 8, c.layers = 1, c.width = 16, c.heads = 2, c.seed = 1;
  lm::DecoderModel m(c);
  Tensor same = i64({1, 2, 3, 4, 5, 1, 2, 3, 4, 5}, {2, 5});
  TensorMap o = pr->inject({{"tokens", same}, {"targets", same}, {"domain", i64({0, 1}, {2})}}, StepContext());
  auto logits = m.forward(o.at("tokens")).to_vector();
  const size_t per_row = 5 * 40;
  for (size_t t = 0; t < 5; ++t) {
    double d = 0;
    for (size_t v = 0; v < 40; ++v) d = std::max(d, std::fabs(double(logits[t * 40 + v]) - logits[per_row + t * 40 + v]));
    EXPECT_GT(d, 1e-4) << "position " << t;
  }
}

TEST(SoftPrompt, GptPromptEmbeddingsActAsTokenEmbeddings) {
  lm::DecoderConfig c;
  c.vocab = 30, c.context = 10, c.layers = 2, c.width = 16, c.heads = 2, c.seed = 4;
  lm::DecoderModel m(c);
  Tensor ids = Tensor::randint({2, 6}, 5, 0, 30), pre = Tensor::randint({2, 3}, 6, 0, 30);
  Tensor prompt = ops::embedding(m.wte->weight, pre).detach();
  const Tensor with = m.hidden_with_prompt(ids, prompt);
  const Tensor whole = ops::split(m.hidden(cat_ids(pre, ids)), {3, 6}, 1)[1];
  EXPECT_EQ(with.shape(), (Shape{2, 6, 16}));
  EXPECT_LT(max_abs_diff(with, whole), 1e-5);
}

TEST(SoftPrompt, BertPromptEmbeddingsActAsWordEmbeddings) {
  lm::BertConfig c;
  c.vocab = 30, c.context = 10, c.layers = 2, c.width = 16, c.heads = 2, c.seed = 4;
  lm::BertModel m(c);
  Tensor ids = Tensor::randint({2, 6}, 5, 0, 30), pre = Tensor::randint({2, 3}, 6, 0, 30);
  Tensor prompt = ops::embedding(m.word->weight, pre).detach();
  const Tensor with = m.hidden_with_prompt(ids, prompt, Tensor());
  const Tensor whole = ops::split(m.hidden(cat_ids(pre, ids), Tensor(), Tensor()), {3, 6}, 1)[1];
  EXPECT_LT(max_abs_diff(with, whole), 1e-5);
  // A padding mask over the tokens: the prompt positions are attended, padded tokens are not.
  Tensor mask = Tensor::empty({2, 6}, DType::u8);
  for (int i = 0; i < 12; ++i) mask.data<uint8_t>()[i] = (i % 6) < 4;
  Tensor full_mask = Tensor::empty({2, 9}, DType::u8);
  for (int i = 0; i < 18; ++i) full_mask.data<uint8_t>()[i] = (i % 9) < 7;
  const Tensor wm = m.hidden_with_prompt(ids, prompt, mask);
  const Tensor hm = ops::split(m.hidden(cat_ids(pre, ids), Tensor(), full_mask), {3, 6}, 1)[1];
  EXPECT_LT(max_abs_diff(wm, hm), 1e-5);
}

// d loss / d prompt against central finite differences (float64 is not available: the step
// and tolerance are for float32).
template <class F>
void check_prompt_gradient(F loss_of, Tensor prompt) {
  Tensor p = prompt.clone();
  p.set_requires_grad(true);
  Tensor l = loss_of(p);
  l.backward();
  const auto g = p.grad().to_vector();
  auto base = prompt.to_vector();
  const float h = 1e-2f;
  for (size_t i = 0; i < base.size(); i += 7) {
    auto plus = base, minus = base;
    plus[i] += h, minus[i] -= h;
    Tensor tp = Tensor::empty(prompt.shape()), tm = Tensor::empty(prompt.shape());
    std::copy(plus.begin(), plus.end(), tp.data<float>());
    std::copy(minus.begin(), minus.end(), tm.data<float>());
    NoGradGuard ng;
    const double fd = (double(loss_of(tp).item()) - double(loss_of(tm).item())) / (2.0 * h);
    EXPECT_NEAR(g[i], fd, 2e-3 + 2e-2 * std::fabs(fd)) << "element " << i;
  }
}

TEST(SoftPrompt, GradientsMatchFiniteDifferences) {
  lm::DecoderConfig gc;
  gc.vocab = 20, gc.context = 8, gc.layers = 1, gc.width = 8, gc.heads = 2, gc.seed = 2;
  lm::DecoderModel g(gc);
  Tensor ids = Tensor::randint({2, 4}, 8, 0, 20), tgt = Tensor::randint({2, 4}, 9, 0, 20);
  check_prompt_gradient([&](const Tensor& p) { return ops::cross_entropy(g.logits_from_hidden(g.hidden_with_prompt(ids, p)), tgt); },
                        Tensor::randn({2, 3, 8}, 10, 0.f, 0.5f));
  lm::BertConfig bc;
  bc.vocab = 20, bc.context = 8, bc.layers = 1, bc.width = 8, bc.heads = 2, bc.seed = 2;
  lm::BertModel b(bc);
  check_prompt_gradient([&](const Tensor& p) { return ops::cross_entropy(b.mlm_logits(b.hidden_with_prompt(ids, p, Tensor())), tgt); },
                        Tensor::randn({2, 3, 8}, 11, 0.f, 0.5f));
}

TEST(SoftPrompt, ModelNodesTakeThePromptPortAndAPromptLoadsFromItsFile) {
  // model.bert's node with prompt_embeds: the logits of the token positions of the model's
  // own prompt path (the node routes the port, nothing else changes).
  lm::BertConfig c;
  c.vocab = 30, c.context = 12, c.layers = 1, c.width = 16, c.heads = 2, c.seed = 8;
  lm::BertNode node(c);
  Tensor ids = Tensor::randint({2, 5}, 3, 0, 30), pe = Tensor::randn({2, 4, 16}, 4, 0.f, 0.1f);
  StepContext ctx;
  ctx.training = false;
  const Tensor via_node = node.forward({{"tokens", ids}, {"prompt_embeds", pe}}, ctx).at("logits");
  EXPECT_EQ(via_node.shape(), (Shape{2, 5, 30}));
  const Tensor direct = node.impl().mlm_logits(node.impl().hidden_with_prompt(ids, pe, Tensor()));
  EXPECT_LT(max_abs_diff(via_node, direct), 1e-6);
  // prompt.tuning: a saved prompt is where a new node starts; a wrong shape is refused.
  Json p;
  p["length"] = Json(int64_t(4)), p["width"] = Json(int64_t(16)), p["init_std"] = Json(0.02), p["load"] = Json("");
  auto a = make_prompt("prompt.tuning", p);
  const fs::path f = fs::temp_directory_path() / ("scion_prompt_" + std::to_string(::getpid()) + ".safetensors");
  Tensor saved = Tensor::randn({4, 16}, 12, 0.f, 1.f);
  safetensors::save(f.string(), {{"embeddings", saved}});
  p["load"] = Json(f.string());
  auto b = make_prompt("prompt.tuning", p);
  EXPECT_EQ(b->owned_parameters()[0].second.to_vector(), saved.to_vector());
  EXPECT_NE(a->owned_parameters()[0].second.to_vector(), saved.to_vector());
  const TensorMap out = b->inject({{"tokens", ids}}, ctx);
  EXPECT_EQ(out.at("prompt_embeds").shape(), (Shape{2, 4, 16}));
  p["width"] = Json(int64_t(8));
  EXPECT_THROW(make_prompt("prompt.tuning", p), Error);
  fs::remove(f);
}
