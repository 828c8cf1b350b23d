// Sheared-LLaMA's targeted pruning (loss.sheared): the targeted Lagrangian equals a hand
// computation from the keep probabilities, the final masks leave exactly the target shape in
// every layer (layers, whole key/value groups, FFN units, hidden width) on GPT-2 and Llama,
// the masked model computes what the physically pruned one does, and impossible targets are
// refused at validation.
#include <gtest/gtest.h>

#include <cmath>

#include "finalize.h"
#include "fixtures.h"
#include "growth/tiny_models.h"
#include "hard_concrete.h"
#include "lm_nodes.h"
#include "scion/ops.h"
#include "scion/random.h"
#include "prune_fixtures.h"
#include "scion_cli.h"
#include "shape_masks.h"

using namespace scion;
using prune_fixtures::max_diff;
using prune_fixtures::shapes_of;
using prune_fixtures::stand_in;
using scion::tests::with_data;
using prune::ShapeMasks;
using prune::TargetShape;

namespace {

std::unique_ptr<lm::DecoderNode> tiny_decoder(bool llama) {
  auto c = llama ? tiny::llama_cfg() : tiny::gpt_cfg();
  c.layers = 4;
  auto m = std::make_unique<lm::DecoderNode>(c);
  tiny::scramble(m->module(), llama ? 51 : 53, 0.3f);
  return m;
}

// Every log α set to its own value in [-3, 3] (a pure function of its index).
void spread(const ShapeMasks& masks, uint64_t seed) {
  NoGradGuard g;
  uint64_t k = 0;
  for (auto& [name, t] : masks.log_alphas()) {
    std::vector<float> v(size_t(t.numel()));
    for (auto& x : v) x = 6.f * random_uniform(seed, k++) - 3.f;
    Tensor src = Tensor::from_vector(v, t.shape());
    Tensor dst = t;
    dst.copy_(src);
  }
}

Tensor logits(Model& m, const Tensor& tokens) {
  NoGradGuard g;
  StepContext ctx;
  ctx.training = false;
  return m.forward({{"tokens", tokens}}, ctx).at("logits");
}

}  // namespace

// Σ_m mean_rows[λ₁ₘ(ŝ − tₘ) + λ₂ₘ(ŝ − tₘ)²] with ŝ = 1 − Σ P(z ≠ 0)/size and
// P = σ(log α − β·ln(−l/r)), recomputed here in double from the log α values.
TEST(Sheared, TheTargetedLagrangianIsOneTermPerStructureAveragedOverRows) {
  auto m = tiny_decoder(true);  // 4 layers, 4 query heads on 2 key/value heads, 24 FFN units, width 16
  const TargetShape t{3, 2, 12, 8};
  ShapeMasks masks(m->architecture(), t, 5.f, 0.01f, 3);
  ASSERT_EQ(masks.structures(), (std::vector<std::string>{"layers", "heads", "ffn", "width"}));
  spread(masks, 9);
  const std::vector<float> l1v = {0.5f, -1.f, 2.f, 0.25f}, l2v = {1.f, 3.f, 0.5f, 2.f};
  const Tensor l1 = Tensor::from_vector(l1v, {4}), l2 = Tensor::from_vector(l2v, {4});
  const double ramp = 0.6;
  const double shift = (2.0 / 3.0) * std::log(0.1 / 1.1);
  auto keep = [&](float la) { return 1.0 / (1.0 + std::exp(-(double(la) - shift))); };
  // The rows of each structure, in the order log_alphas() lists them.
  std::map<std::string, std::vector<std::vector<float>>> rows;
  for (const auto& [name, la] : masks.log_alphas()) {
    const std::string kind = name.substr(0, name.find('.'));
    rows[kind == "layer" ? "layers" : kind == "head" ? "heads" : kind == "ffn_unit" ? "ffn" : "width"].push_back(la.to_vector());
  }
  const std::map<std::string, std::pair<double, double>> keep_size = {
      {"layers", {3, 4}}, {"heads", {1, 2}}, {"ffn", {12, 24}}, {"width", {8, 16}}};
  double want = 0;
  for (size_t i = 0; i < 4; ++i) {
    const std::string s = masks.structures()[i];
    const auto [k, n] = keep_size.at(s);
    const double target = ramp * (1.0 - k / n);
    double sum = 0;
    for (const auto& row : rows.at(s)) {
      double kept = 0;
      for (float la : row) kept += keep(la);
      const double gap = 1.0 - kept / n - target;
      sum += l1v[i] * gap + l2v[i] * gap * gap;
    }
    want += sum / double(rows.at(s).size());
  }
  EXPECT_EQ(rows.at("heads").size(), 4u);
  EXPECT_EQ(rows.at("heads")[0].size(), 2u);  // one gate per key/value group
  EXPECT_NEAR(masks.lagrangian(l1, l2, ramp).item(), want, 1e-4 * std::fabs(want) + 1e-5);
}

// Whatever the masks learned, the final cut leaves exactly the target: every layer the same
// number of heads (whole groups on Llama), FFN units and the target width and depth; the model
// gated by the exact masks computes what the physically pruned one does.
TEST(Sheared, TheFinalCutIsExactlyTheTargetShapeAndTheMaskedModelEqualsThePrunedOne) {
  for (bool llama : {false, true}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      auto m = tiny_decoder(llama);
      const Architecture dense = m->architecture();
      const TargetShape t{3, 2, dense.ffn[0] / 2, 12};
      ShapeMasks masks(dense, t, 5.f, 0.01f, seed);
      spread(masks, seed * 17);
      const Tensor tokens = Tensor::randint({2, 9}, 77, 0, 37);
      masks.set_exact(*m);
      const Tensor masked = logits(*m, tokens);
      prune::prune_with_gates(*m);
      prune::drop_empty_layers(*m, 5);
      const Architecture a = m->architecture();
      EXPECT_EQ(a.layers(), 3) << "llama " << llama << " seed " << seed;
      EXPECT_EQ(a.heads, (std::vector<int64_t>(3, 2)));
      if (llama) {
        EXPECT_EQ(a.kv_heads, (std::vector<int64_t>(3, 1)));
      }
      EXPECT_EQ(a.ffn, (std::vector<int64_t>(3, dense.ffn[0] / 2)));
      EXPECT_EQ(a.width, 12);
      EXPECT_TRUE(surgery::gates(*m).empty());
      EXPECT_LT(max_diff(logits(*m, tokens), masked), 2e-4) << "llama " << llama << " seed " << seed;
    }
  }
}

// Refused before anything runs, at the loss's table: a target larger than the model, query
// heads that do not fill whole key/value groups, the model's own shape; and op.cofi_prune on a
// loss without masks.
TEST(Sheared, ImpossibleTargetsAreRefusedAtValidation) {
  const fs::path dir = temp("sheared_refusals");
  const std::string base = with_data(R"([run]
name = "sh"
[nodes.tok]
plugin = "tokenizer.bytes"
[nodes.corpus]
plugin = "data.text"
tokenizer = "tok"
files = ["@DATA@/data/corpus/news/train.txt"]
seq_len = 16
batch_size = 2
[nodes.model]
plugin = "model.llama"
vocab = 257
context = 16
layers = 2
width = 32
heads = 4
kv_heads = 2
ffn = 64
tokens = "corpus.tokens"
[nodes.lm]
plugin = "loss.lm"
logits = "model.logits"
targets = "corpus.targets"
[nodes.shear]
plugin = "loss.sheared"
model = "model"
heads = 2
ffn = 32
warmup = 2
[[stages]]
steps = 3
train = ["model", "shear"]
losses = ["lm", "shear"]
[[stages]]
steps = 1
train = ["model"]
losses = ["lm"]
ops = [{ plugin = "op.cofi_prune", target = "model", masks = "shear" }]
)");
  struct Case {
    std::string from, to, says;
  };
  const std::vector<Case> cases = {
      {"ffn = 32\n", "ffn = 128\n", "ffn 128 is more than the model's 64 (pruning only removes)"},
      {"model = \"model\"\nheads = 2\n", "model = \"model\"\nheads = 3\n", "does not fill whole key/value groups of 2 query heads"},
      {"model = \"model\"\nheads = 2\nffn = 32\n", "model = \"model\"\n", "nothing to prune"},
      {"masks = \"shear\"", "masks = \"lm\"", "is not a loss.cofi or loss.sheared node"},
  };
  for (const Case& c : cases) {
    std::string g = base;
    g.replace(g.find(c.from), c.from.size(), c.to);
    std::ofstream(dir / "g.toml") << g;
    const bool at_run = c.says.find("loss.cofi") != std::string::npos;  // the op's node kind is known when it is made
    const Result r = sh(at_run ? "run " + (dir / "g.toml").string() + " --plain --out " + (dir / "run").string()
                               : "validate " + (dir / "g.toml").string());
    if (!at_run) {
      EXPECT_NE(r.out.find((dir / "g.toml").string() + ":"), std::string::npos) << r.out;
    }
    EXPECT_NE(r.rc, 0) << c.says;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << r.out;
    fs::remove_all(dir / "run");
  }
  // The graph itself runs: pruned to one key/value group of 2 heads and 32 FFN units per layer.
  std::ofstream(dir / "g.toml") << base;
  const Result r = sh("run " + (dir / "g.toml").string() + " --plain --out " + (dir / "run").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto shapes = shapes_of(dir / "run" / "model.safetensors");
  EXPECT_EQ(shapes.at("model.layers.1.mlp.up_proj.weight"), (Shape{32, 32}));
  EXPECT_EQ(shapes.at("model.layers.0.self_attn.k_proj.weight"), (Shape{8, 32}));
  EXPECT_EQ(shapes.at("model.layers.0.self_attn.q_proj.weight"), (Shape{16, 32}));
  // Depth and width too, then out as a Hugging Face directory of exactly that shape.
  const Result deeper = sh("run " + (dir / "g.toml").string() + " --plain --out " + (dir / "run2").string() +
                           " --set nodes.shear.layers=1 --set nodes.shear.width=24");
  ASSERT_EQ(deeper.rc, 0) << deeper.out;
  const Result ex = sh("export --checkpoint " + (dir / "run2" / "model.safetensors").string() + " --out " + (dir / "hf").string());
  ASSERT_EQ(ex.rc, 0) << ex.out;
  std::ifstream cf(dir / "hf" / "config.json");
  const Json hf = json_parse(std::string((std::istreambuf_iterator<char>(cf)), {}));
  EXPECT_EQ(json_int(hf.at("num_hidden_layers")), 1);
  EXPECT_EQ(json_int(hf.at("hidden_size")), 24);
  EXPECT_EQ(json_int(hf.at("num_attention_heads")), 2);
  EXPECT_EQ(json_int(hf.at("num_key_value_heads")), 1);
  EXPECT_EQ(json_int(hf.at("head_dim")), 8);
  EXPECT_EQ(json_int(hf.at("intermediate_size")), 32);
  fs::remove_all(dir);
}

// graphs/sheared_gpt.toml, shortened, on a stand-in for gpt_pretrain's model and its run's
// per-domain evaluation: pruned under dynamic batch loading, cut to exactly the target shape,
// trained on; the result evaluates as a plain model.gpt.
TEST(Sheared, TheShippedGraphPrunesToTheTargetUnderDynamicBatchLoading) {
  const fs::path dir = temp("sheared_shipped");
  const std::string gpt = stand_in(dir, 50257, "gpt.safetensors", 4);
  fs::create_directories(dir / "ref");
  std::ofstream(dir / "ref" / "metrics.jsonl") << R"({"step": 1, "ppl/reference/loss": 9.0, "ppl/news/loss": 9.0, )"
                                                  R"("ppl/literature/loss": 9.0, "ppl/biomedical/loss": 9.0, "ppl/cs/loss": 10.9})"
                                               << "\n";
  const Result r = sh("run graphs/sheared_gpt.toml --plain --out " + (dir / "run").string() + " --set nodes.student.load=" +
                      gpt + " --set nodes.mix.reference_run=" + (dir / "ref").string() +
                      " --set nodes.mix.seq_len=16 --set nodes.mix.batch_size=2 --set nodes.ppl.seq_len=16"
                      " --set nodes.ppl.max_batches=1 --set stages.0.steps=4 --set stages.1.steps=2 --set nodes.shear.warmup=2"
                      " --set stages.0.eval.every=2 --set stages.1.eval.every=2 --set nodes.shear.ffn=32"
                      " --set stages.0.checkpoint.every=0 --set stages.1.checkpoint.every=0");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("op op.cofi_prune applied to student"), std::string::npos) << r.out;
  const auto shapes = shapes_of(dir / "run" / "student.safetensors");
  EXPECT_EQ(shapes.at("transformer.h.1.mlp.c_fc.weight"), (Shape{16, 32}));
  EXPECT_EQ(shapes.at("transformer.h.0.attn.c_attn.weight"), (Shape{16, 3 * 2 * 4}));
  const auto lines = metrics(dir / "run");
  ASSERT_TRUE(lines.back().contains("mix/weight/cs"));
  const std::string pruned = (dir / "run" / "student.safetensors").string();
  const Result ev = sh("eval graphs/gpt_pretrain.toml --checkpoint " + pruned + " --set nodes.student.load=" + pruned +
                       " --set nodes.ppl.max_batches=1 --set nodes.ppl.seq_len=16");
  ASSERT_EQ(ev.rc, 0) << ev.out;
  fs::remove_all(dir);
}
