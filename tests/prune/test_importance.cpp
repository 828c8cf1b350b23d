// Minitron's importance pruning (op.prune_importance): the recorder captures the tensors the
// scores read (the output and down projections' inputs, the norms' outputs, the blocks' inputs
// and outputs), the aggregation equals a hand computation, and pruning keeps the highest-scored
// heads (whole key/value groups), FFN units, hidden channels and layers, leaving a model of
// exactly the target architecture whose parameter count is that architecture's.
#include <gtest/gtest.h>

#include <cmath>

#include "fixtures.h"
#include "growth/tiny_models.h"
#include "importance.h"
#include "lm_nodes.h"
#include "scion/ops.h"
#include "scion/sizes.h"
#include "prune_fixtures.h"
#include "scion_cli.h"

using namespace scion;
using prune_fixtures::max_diff;
using prune_fixtures::shapes_of;
using prune_fixtures::stand_in;
using scion::tests::with_data;
using prune::ImportanceAccumulator;
using prune::ImportanceScores;

namespace {

nn::ActivationRecord record(lm::DecoderNode& m, const Tensor& tokens) {
  NoGradGuard g;
  StepContext ctx;
  ctx.training = false;
  nn::ActivationRecord rec;
  nn::RecordActivations on(rec);
  m.forward({{"tokens", tokens}}, ctx);
  return rec;
}

std::unique_ptr<lm::DecoderNode> tiny_decoder(bool llama, int64_t layers = 2) {
  auto c = llama ? tiny::llama_cfg() : tiny::gpt_cfg();
  c.layers = layers;
  auto m = std::make_unique<lm::DecoderNode>(c);
  tiny::scramble(m->module(), llama ? 41 : 43, 0.3f);
  return m;
}

}  // namespace

// What the recorder holds is what the blocks compute: each block's output is the next one's
// input; the attention norm's output is ln_1(input); input + o(attention_context) is the
// residual stream after attention, whose ln_2 is the FFN norm's output; and that plus
// down(ffn_hidden) is the block's output. Nothing is recorded without a recorder.
TEST(Importance, TheRecorderHoldsTheProjectionsInputsAndTheNormsOutputs) {
  for (bool llama : {false, true}) {
    auto m = tiny_decoder(llama);
    const Tensor tokens = Tensor::randint({2, 7}, 5, 0, 37);
    const nn::ActivationRecord rec = record(*m, tokens);
    ASSERT_EQ(rec.blocks.size(), 2u);
    NoGradGuard g;
    for (size_t l = 0; l < 2; ++l) {
      const nn::BlockActivations& b = rec.blocks[l];
      const nn::TransformerBlock& blk = *m->impl().block_list()[l];
      EXPECT_LT(max_diff(b.attention_norm, blk.ln_1->forward(b.input)), 1e-6) << "llama " << llama << " layer " << l;
      const Tensor h = ops::add(b.input, blk.attn->o->forward(b.attention_context));
      EXPECT_LT(max_diff(b.ffn_norm, blk.ln_2->forward(h)), 1e-6);
      EXPECT_LT(max_diff(b.output, ops::add(h, blk.mlp->down->forward(b.ffn_hidden))), 1e-5);
      EXPECT_EQ(b.attention_context.size(2), 4 * (16 / 4));
      EXPECT_EQ(b.ffn_hidden.size(2), llama ? 24 : 64);
      if (l == 1) {
        EXPECT_LT(max_diff(b.input, rec.blocks[0].output), 1e-7);
      }
    }
  }
  auto m = tiny_decoder(false);
  nn::ActivationRecord untouched;
  {
    nn::RecordActivations on(untouched);
  }
  NoGradGuard g;
  StepContext ctx;
  m->forward({{"tokens", Tensor::randint({1, 3}, 5, 0, 37)}}, ctx);
  EXPECT_TRUE(untouched.blocks.empty());
  EXPECT_EQ(nn::activation_record(), nullptr);
}

// The aggregation by hand on a one-layer record (width 2, one head of size 2, 2 FFN units),
// two batches of one row of two tokens:
//   channel score = sqrt(Σ_rows (mean_t |A|)²); a head = L2 of its channels' scores;
//   a hidden channel = Σ over the two norms of its score; a layer = 1 − mean_t cos(in, out).
TEST(Importance, ScoresEqualAHandComputation) {
  Architecture a;
  a.family = "gpt2", a.width = 2, a.head_size = 2, a.heads = {1}, a.ffn = {2}, a.pre_ln = true;
  auto t = [](std::vector<float> v) { return Tensor::from_vector(v, {1, 2, 2}); };
  ImportanceAccumulator acc(a);
  nn::ActivationRecord r1, r2;
  // batch 1: context rows (1, -2), (3, 0): means |.| = (2, 1); ffn (0, 4), (2, -4): (1, 4)
  r1.blocks.push_back({t({1, 0, 0, 1}), t({1, 0, 1, 1}), t({1, 1, -1, 1}), t({1, -2, 3, 0}), t({2, 0, 0, 2}), t({0, 4, 2, -4})});
  // batch 2: context (0, 2), (2, 2): (1, 2); ffn (1, 1), (1, 1): (1, 1)
  r2.blocks.push_back({t({1, 1, 1, -1}), t({-1, -1, 1, 1}), t({0, 2, 0, 0}), t({0, 2, 2, 2}), t({1, 0, 1, 0}), t({1, 1, 1, 1})});
  acc.add(r1);
  acc.add(r2);
  const ImportanceScores s = acc.scores();
  // context channels: sqrt(2² + 1²) = √5, sqrt(1² + 2²) = √5; the head: sqrt(5 + 5) = √10
  ASSERT_EQ(s.heads.size(), 1u);
  EXPECT_NEAR(s.heads[0][0], std::sqrt(10.0), 1e-12);
  // ffn units: sqrt(1² + 1²) = √2, sqrt(4² + 1²) = √17
  EXPECT_NEAR(s.ffn[0][0], std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(s.ffn[0][1], std::sqrt(17.0), 1e-12);
  // attention norm: batch 1 rows (1, 1), (-1, 1): means (1, 1); batch 2 (0, 2), (0, 0): (0, 1)
  //   -> channel scores (1, √2); FFN norm: (2, 0), (0, 2): (1, 1); (1, 0), (1, 0): (1, 0) -> (√2, 1)
  EXPECT_NEAR(s.hidden[0], 1.0 + std::sqrt(2.0), 1e-12);
  EXPECT_NEAR(s.hidden[1], std::sqrt(2.0) + 1.0, 1e-12);
  // cosines: batch 1 (1,0)·(1,0) = 1, (0,1)·(1,1) = 1/√2; batch 2 (1,1)·(−1,−1) = −1, (1,−1)·(1,1) = 0
  EXPECT_NEAR(s.layers[0], 1.0 - (1.0 + 1.0 / std::sqrt(2.0) - 1.0 + 0.0) / 4.0, 1e-12);
  EXPECT_EQ(acc.rows(), 2);
}

// Pruned by hand-set scores: the kept heads, units, channels and layers are the highest-scored
// ones (their weights are the dense model's at those indices), a grouped-query layer keeps
// whole groups ranked by the L2 norm of their heads, and the model is exactly the target
// architecture with that architecture's parameter count.
TEST(Importance, PruningKeepsTheHighestScoredStructuresAndIsExactlyTheTarget) {
  for (bool llama : {false, true}) {
    auto m = tiny_decoder(llama, 3);
    const Architecture a = m->architecture();
    std::map<std::string, std::vector<float>> before;  // values, not the tensors pruning replaces
    for (const auto& [name, t] : m->module().named_parameters()) before[name] = t.to_vector();
    ImportanceScores s;
    s.layers = {0.5, 0.1, 0.9};  // layer 1 goes
    // Llama: groups {0,1} and {2,3}; group 1 wins (0.6² + 0.6² > 0.8² + 0.1²) though head 0 is the best.
    for (int l = 0; l < 3; ++l) s.heads.push_back({0.8, 0.1, 0.6, 0.6});
    for (int l = 0; l < 3; ++l) {
      std::vector<double> f(size_t(a.ffn[0]));
      for (size_t u = 0; u < f.size(); ++u) f[u] = double((u * 7) % f.size());  // a permutation
      s.ffn.push_back(f);
    }
    s.hidden.resize(16);
    for (size_t c = 0; c < 16; ++c) s.hidden[c] = double((c * 5) % 16);
    prune::PruneTarget target{2, 2, 0, a.ffn[0] / 2, 12};
    prune::prune_to_target(*m, s, target, 7, "test");
    const Architecture p = m->architecture();
    EXPECT_EQ(p.layers(), 2);
    EXPECT_EQ(p.heads, (std::vector<int64_t>{2, 2}));
    if (llama) {
      EXPECT_EQ(p.kv_heads, (std::vector<int64_t>{1, 1}));
    }
    EXPECT_EQ(p.ffn, (std::vector<int64_t>{a.ffn[0] / 2, a.ffn[0] / 2}));
    EXPECT_EQ(p.width, 12);
    // The parameter count of that architecture, by hand: GPT-2 (Conv1D weights and biases
    // everywhere, learned positions) and Llama (q/k/v biases, no other bias, SwiGLU).
    const int64_t C = 12, H = 2, K = llama ? 1 : 2, D = 4, F = a.ffn[0] / 2, V = 37;
    const int64_t layer = llama ? C + (C * H * D + H * D) + 2 * (C * K * D + K * D) + H * D * C + C + 3 * C * F
                                : 2 * C + (C * 3 * H * D + 3 * H * D) + (H * D * C + C) + 2 * C + (C * F + F) + (F * C + C);
    const int64_t total = V * C + (llama ? 0 : 12 * C) + 2 * layer + (llama ? C : 2 * C) + (a.tied ? 0 : V * C);
    EXPECT_EQ(m->module().parameter_count(), total) << "llama " << llama;
    // Exactly: the kept rows and columns of one weight each.
    const std::vector<int64_t> keep_c = prune::top_indices(s.hidden, 12);
    const std::vector<int64_t> keep_u = prune::top_indices(s.ffn[2], a.ffn[0] / 2);
    const std::string up = llama ? "model.layers.%d.mlp.up_proj.weight" : "transformer.h.%d.mlp.c_fc.weight";
    char old_name[96], new_name[96];
    std::snprintf(old_name, sizeof old_name, up.c_str(), 2);  // dense layer 2 is pruned layer 1
    std::snprintf(new_name, sizeof new_name, up.c_str(), 1);
    // Llama's up_proj is [F, C]; GPT-2's Conv1D c_fc is [C, F].
    const std::vector<float> o = before.at(old_name), n = m->module().parameter(new_name).to_vector();
    for (size_t i = 0; i < keep_u.size(); ++i)
      for (size_t j = 0; j < keep_c.size(); ++j) {
        const float want = llama ? o[size_t(keep_u[i] * 16 + keep_c[j])] : o[size_t(keep_c[j] * a.ffn[0] + keep_u[i])];
        const float got = llama ? n[i * keep_c.size() + j] : n[j * keep_u.size() + i];
        ASSERT_EQ(got, want) << "llama " << llama << " unit " << keep_u[i] << " channel " << keep_c[j];
      }
    // The kept heads: GPT-2 heads 0 and 2 (0.8, 0.6); Llama the group of heads 2 and 3.
    const std::string k = llama ? "model.layers.0.self_attn.k_proj.weight" : "transformer.h.0.attn.c_attn.weight";
    const std::vector<float> ko = before.at(k), kn = m->module().parameter(k).to_vector();
    const int64_t first = llama ? 1 : 0;  // the kept key/value head (Llama) or first kept query head (GPT)
    if (llama)  // k_proj [kv·D, C]: kept kv head 1's rows, at the kept channels
      for (int64_t d = 0; d < 4; ++d)
        for (size_t j = 0; j < keep_c.size(); ++j)
          ASSERT_EQ(kn[size_t(d) * keep_c.size() + j], ko[size_t((first * 4 + d) * 16 + keep_c[j])]);
    else  // c_attn [C, 3·H·D]: q of head 2 is the second kept head's columns
      for (size_t j = 0; j < keep_c.size(); ++j)
        for (int64_t d = 0; d < 4; ++d) ASSERT_EQ(kn[j * 24 + size_t(4 + d)], ko[size_t(keep_c[j] * 48 + 2 * 4 + d)]);
  }
}

// Refused before anything runs, with the file's line and column: a target larger than the
// model, a key/value group size the pruning would change, more calibration batches than the
// data has, a post-norm BERT; nothing to prune is refused too.
TEST(Importance, ImpossibleTargetsAreRefusedAtValidation) {
  const fs::path dir = temp("importance_refusals");
  const std::string base = R"([run]
name = "imp"
[nodes.tok]
plugin = "tokenizer.bytes"
[nodes.corpus]
plugin = "data.text"
tokenizer = "tok"
files = ["@DATA@/data/corpus/news/train.txt"]
valid_files = ["@DATA@/data/corpus/news/valid.txt"]
seq_len = 32
batch_size = 4
[nodes.model]
plugin = "model.llama"
vocab = 257
context = 32
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
[[stages]]
steps = 2
train = ["model"]
losses = ["lm"]
ops = [{ plugin = "op.prune_importance", target = "model", data = "corpus", batches = 2, heads = 2 }]
)";
  struct Case {
    std::string from, to, says;
  };
  const std::vector<Case> cases = {
      {"heads = 2 }", "ffn = 128 }", "ffn 128 is more than the model's 64 (pruning only removes)"},
      {"heads = 2 }", "heads = 2, kv_heads = 2 }", "changes the group size 2 of the model"},
      {"heads = 2 }", "heads = 3 }", "heads must be a multiple of 2"},
      {"heads = 2 }", "layers = 2 }", "nothing to prune"},
      {"batches = 2", "batches = 100000", "validation batches ("},
      {"valid_files = [\"@DATA@/data/corpus/news/valid.txt\"]\n", "", "has no valid_files"},
  };
  for (const Case& c : cases) {
    std::string g = with_data(base);
    const std::string from = with_data(c.from);
    g.replace(g.find(from), from.size(), c.to);
    std::ofstream(dir / "g.toml") << g;
    const Result r = sh("validate " + (dir / "g.toml").string());
    EXPECT_NE(r.rc, 0) << c.says;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << r.out;
    EXPECT_NE(r.out.find((dir / "g.toml").string() + ":"), std::string::npos) << r.out;
  }
  std::ofstream(dir / "g.toml") << with_data(base);
  const Result ok = sh("validate " + (dir / "g.toml").string());
  EXPECT_EQ(ok.rc, 0) << ok.out;
  // And the graph runs: the pruned Llama keeps one group of two query heads per layer.
  const Result run = sh("run " + (dir / "g.toml").string() + " --plain --out " + (dir / "run").string());
  ASSERT_EQ(run.rc, 0) << run.out;
  EXPECT_NE(run.out.find("op op.prune_importance applied to model"), std::string::npos) << run.out;
  fs::remove_all(dir);
}

// graphs/minitron_gpt.toml, shortened, on a stand-in for gpt_pretrain's model (its vocabulary,
// 2 layers of width 16 and 2 heads): pruned to one head and half the FFN units per layer, then
// distilled; the result loads and evaluates as a plain model.gpt.
TEST(Importance, TheShippedGraphPrunesAndDistils) {
  const fs::path dir = temp("minitron_shipped");
  const std::string gpt = stand_in(dir, 50257, "gpt.safetensors", 2);
  Result r = sh("run graphs/minitron_gpt.toml --plain --out " + (dir / "run").string() + " --set nodes.teacher.load=" + gpt +
                " --set nodes.student.load=" + gpt +
                " --set nodes.corpus.seq_len=16 --set nodes.corpus.batch_size=2 --set nodes.ppl.seq_len=16"
                " --set nodes.ppl.max_batches=1 --set stages.0.steps=2 --set stages.0.eval.every=2"
                " --set stages.0.checkpoint.every=0 --set stages.0.ops.0.heads=1 --set stages.0.ops.0.ffn=32"
                " --set stages.0.ops.0.batches=2");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("op op.prune_importance applied to student"), std::string::npos) << r.out;
  const std::string pruned = (dir / "run" / "student.safetensors").string();
  const auto shapes = shapes_of(pruned);
  EXPECT_EQ(shapes.at("transformer.h.0.mlp.c_fc.weight"), (Shape{16, 32}));
  EXPECT_EQ(shapes.at("transformer.h.1.attn.c_attn.weight"), (Shape{16, 3 * 8}));
  r = sh("eval graphs/gpt_pretrain.toml --checkpoint " + pruned + " --set nodes.student.load=" + pruned +
         " --set nodes.ppl.max_batches=1 --set nodes.ppl.seq_len=16");
  ASSERT_EQ(r.rc, 0) << r.out;
  fs::remove_all(dir);
}
