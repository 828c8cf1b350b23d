// The model-surgery interface (scion/surgery.h) on model.gpt and model.bert: a gated model and
// the physically edited one compute the same function; per-layer sizes and gates survive a
// checkpoint; gates receive gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "lm_nodes.h"
#include "masked_growth.h"
#include "tiny_models.h"
#include "scion/autograd.h"
#include "scion/ops.h"
#include "scion/checkpoint.h"
#include "scion/safetensors.h"

using namespace scion;
using tiny::bert_cfg;
using tiny::gpt_cfg;
using tiny::llama_cfg;

namespace {

// Larger weights than the growth tests use, so that gates visibly matter.
template <class N>
void scramble(N& node, uint64_t seed) {
  tiny::scramble(node.module(), seed, 0.3f);
}

double max_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double d = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) d = std::max(d, std::fabs(double(x[i]) - y[i]));
  return d;
}

Tensor ids() { return Tensor::randint({2, 10}, 77, 0, 37); }

Tensor logits(Model& m, const Tensor& tokens, int64_t step = 0) {
  NoGradGuard g;
  StepContext ctx;
  ctx.training = false;
  ctx.step = step;
  return m.forward({{"tokens", tokens}}, ctx).at("logits");
}

Tensor vec(std::vector<float> v) { return Tensor::from_vector(v, {int64_t(v.size())}); }

// Saves the node as the executor does (weights + gates, config in the metadata) and loads it
// into a fresh node the way a graph's `load` does.
template <class N>
std::shared_ptr<N> save_and_load(N& node, const std::string& file) {
  const std::string path = (std::filesystem::temp_directory_path() / file).string();
  safetensors::save(path, node.module().state_dict(), {{checkpoint::kConfigKey, json_dump(node.config())}});
  Json p;
  p["vocab"] = Json(int64_t(1));
  p["context"] = Json(int64_t(1));
  p["layers"] = Json(int64_t(1));
  p["width"] = Json(int64_t(4));
  p["heads"] = Json(int64_t(1));
  p["ffn"] = Json(int64_t(0));
  p["dropout"] = Json(0.0);
  p["tied"] = Json(true);
  p["load"] = Json(path);
  p["frozen"] = Json(true);
  const Params params(p, "loaded", NodeContext{1, 0, 1, {}});
  if constexpr (std::is_same_v<N, lm::DecoderNode>) return std::make_shared<N>(params, node.impl().config().family);
  else return std::make_shared<N>(params);
}

}  // namespace

TEST(Surgery, ArchitectureAndLayoutDescribeTheModel) {
  lm::DecoderNode g(gpt_cfg());
  const Architecture a = g.architecture();
  EXPECT_EQ(a.family, "gpt2");
  EXPECT_EQ(a.layers(), 3);
  EXPECT_EQ(a.head_size, 4);
  EXPECT_EQ(a.heads, (std::vector<int64_t>{4, 4, 4}));
  EXPECT_EQ(a.ffn, (std::vector<int64_t>{64, 64, 64}));
  EXPECT_TRUE(a.pre_ln && a.tied && a.uniform());
  EXPECT_EQ(Architecture::from_json(a.to_json()), a);
  const ParamLayout qkv = g.layout("transformer.h.2.attn.c_attn.weight");
  EXPECT_EQ(qkv.layer, 2);
  EXPECT_EQ(qkv.axis[0].unit, Unit::hidden);
  EXPECT_TRUE(qkv.axis[0].reads);
  EXPECT_EQ(qkv.axis[1].unit, Unit::qkv);
  EXPECT_TRUE(g.layout("transformer.h.0.mlp.c_proj.weight").residual_write);
  EXPECT_THROW(g.layout("transformer.h.0.attn.nope"), Error);
  // Every parameter has a layout.
  for (const auto& [n, t] : g.module().named_parameters()) EXPECT_NO_THROW(g.layout(n)) << n;
  lm::BertNode b(bert_cfg());
  for (const auto& [n, t] : b.module().named_parameters()) EXPECT_NO_THROW(b.layout(n)) << n;
  EXPECT_FALSE(b.architecture().pre_ln);
  // A node found through the SDK type, as a plugin in another library finds it.
  Model& as_model = g;
  EXPECT_EQ(&surgery::transformer(as_model, "test"), &g);
}

TEST(Surgery, PruningHeadsUnitsAndHiddenDimensionsKeepsTheGatedFunction) {
  // Both rules of the hidden gate: MSG's (hidden) and CoFi's (hidden_kept).
  for (int variant = 0; variant < 4; ++variant) {
    const int family = variant % 2;
    const GateKind hidden_kind = variant < 2 ? GateKind::hidden : GateKind::hidden_kept;
    std::unique_ptr<TransformerModel> m;
    if (family == 0) m = std::make_unique<lm::DecoderNode>(gpt_cfg());
    else m = std::make_unique<lm::BertNode>(bert_cfg());
    if (family == 0) scramble(static_cast<lm::DecoderNode&>(*m), 11);
    else scramble(static_cast<lm::BertNode&>(*m), 12);
    Tensor x = family == 0 ? ids() : ids().narrow(1, 0, 9);
    // Soft gate values on the survivors, zeros on what goes.
    m->set_gate(GateKind::head, 1, vec({0.7f, 0.f, 1.3f, 0.f}));
    std::vector<float> units(64, 0.f);
    for (int u = 0; u < 64; u += 3) units[size_t(u)] = 0.5f + 0.01f * float(u);
    m->set_gate(GateKind::ffn_unit, 0, vec(units));
    std::vector<float> hidden(16, 1.f);
    hidden[3] = hidden[9] = hidden[10] = 0.f;
    hidden[5] = 0.6f;
    m->set_gate(hidden_kind, -1, vec(hidden));
    const Tensor want = logits(*m, x);
    const int64_t before = m->module().parameter_count();

    surgery::keep_units(*m, Unit::head, 1, {0, 2});
    std::vector<int64_t> kept_units;
    for (int64_t u = 0; u < 64; u += 3) kept_units.push_back(u);
    surgery::keep_units(*m, Unit::ffn, 0, kept_units);
    surgery::keep_units(*m, Unit::hidden, -1, {0, 1, 2, 4, 5, 6, 7, 8, 11, 12, 13, 14, 15});
    const Architecture a = m->architecture();
    EXPECT_EQ(a.width, 13);
    EXPECT_EQ(a.heads[1], 2);
    EXPECT_EQ(a.ffn[0], int64_t(kept_units.size()));
    EXPECT_FALSE(a.uniform());
    EXPECT_LT(m->module().parameter_count(), before);
    EXPECT_LT(max_diff(logits(*m, x), want), 1e-5) << (family == 0 ? "gpt " : "bert ") << gate_kind_name(hidden_kind);
    // The survivors' gates stay with them (soft values kept).
    EXPECT_EQ(m->gate(GateKind::head, 1).to_vector(), (std::vector<float>{0.7f, 1.3f}));
    EXPECT_EQ(m->gate(hidden_kind, -1).numel(), 13);
  }
}

TEST(Surgery, RemovingTheAttentionSublayerEqualsItsZeroGateInPreLN) {
  lm::DecoderNode g(gpt_cfg());
  scramble(g, 21);
  Tensor x = ids();
  g.set_gate(GateKind::attention, 2, Tensor::zeros({1}));
  const Tensor want = logits(g, x);
  const int64_t before = g.module().parameter_count();
  surgery::keep_units(g, Unit::head, 2, {});
  EXPECT_EQ(g.architecture().heads[2], 0);
  EXPECT_FALSE(g.impl().blocks[2]->attn);
  EXPECT_FALSE(g.impl().blocks[2]->ln_1);  // its LayerNorm goes with it
  EXPECT_EQ(before - g.module().parameter_count(), 16 * 48 + 48 + 16 * 16 + 16 + 2 * 16);
  EXPECT_LT(max_diff(logits(g, x), want), 1e-5);
  // The FFN sublayer too: a block with neither is the identity.
  surgery::keep_units(g, Unit::ffn, 2, {});
  EXPECT_FALSE(g.impl().blocks[2]->mlp);
  Tensor skip2 = logits(g, x);
  surgery::reorder_blocks(g, {0, 1}, 0);
  EXPECT_LT(max_diff(logits(g, x), skip2), 1e-6);
}

TEST(Surgery, PerLayerSizesAndGatesSurviveACheckpoint) {
  lm::DecoderNode g(gpt_cfg());
  scramble(g, 31);
  surgery::keep_units(g, Unit::head, 0, {1, 3});
  surgery::keep_units(g, Unit::ffn, 2, {0, 5, 9});
  g.set_gate(GateKind::layer, 1, vec({0.25f}));
  g.set_gate(GateKind::head, 0, vec({0.5f, 2.f}));
  const Tensor want = logits(g, ids());
  auto back = save_and_load(g, "scion_surgery_pruned.safetensors");
  EXPECT_EQ(back->architecture(), g.architecture());
  EXPECT_EQ(back->gate(GateKind::layer, 1).to_vector(), (std::vector<float>{0.25f}));
  EXPECT_EQ(max_diff(logits(*back, ids()), want), 0.0);
}

TEST(Surgery, AMidRampMsgCheckpointEvaluatesAsTheFunctionBeingTrained) {
  // Before gates were saved state, a mid-ramp checkpoint held the plain grown tensors and
  // evaluated as the gate-1 model.
  lm::DecoderNode g(gpt_cfg());
  scramble(g, 41);
  growth::MaskedOptions o;
  o.width = 24;
  o.ffn = 96;
  o.layers = 4;
  o.ramp_steps = 10;
  growth::grow_masked(g, o, /*at_step=*/100);
  EXPECT_EQ(g.gate_ramp_progress(103), 3);
  const Tensor mid = logits(g, ids(), 103);  // forward() sets the gates for update 103
  EXPECT_NEAR(g.gate(GateKind::layer, 3).to_vector()[0], 0.3f, 1e-6);
  auto back = save_and_load(g, "scion_surgery_msg.safetensors");
  EXPECT_LT(max_diff(logits(*back, ids()), mid), 1e-6);
  surgery::clear_gates(*back);
  EXPECT_GT(max_diff(logits(*back, ids()), mid), 1e-2) << "the gates matter";
  // At the ramp's end the gates are removed.
  logits(g, ids(), 110);
  EXPECT_TRUE(surgery::gates(g).empty());
  EXPECT_EQ(g.gate_ramp_progress(110), -1);
}

TEST(Surgery, TrainableGatesGetFiniteDifferenceGradients) {
  lm::DecoderNode g(gpt_cfg());
  scramble(g, 51);
  Tensor gate = vec({0.9f, 0.4f, 1.1f, 0.7f});
  gate.set_requires_grad(true);
  Tensor x = ids(), tg = Tensor::randint({2, 10}, 78, 0, 37);
  auto loss_at = [&](const Tensor& v) {
    g.set_gate(GateKind::head, 1, v);
    StepContext ctx;
    ctx.training = false;
    return ops::cross_entropy(g.forward({{"tokens", x}}, ctx).at("logits"), tg);
  };
  Tensor l = loss_at(gate);
  l.backward();
  ASSERT_TRUE(gate.grad().defined());
  const auto grad = gate.grad().to_vector();
  NoGradGuard ng;
  for (int i = 0; i < 4; ++i) {
    auto v = gate.to_vector();
    const float h = 1e-2f;
    v[size_t(i)] += h;
    const double up = loss_at(vec(v)).item();
    v[size_t(i)] -= 2 * h;
    const double down = loss_at(vec(v)).item();
    EXPECT_NEAR(grad[size_t(i)], (up - down) / (2 * h), 2e-3) << "head " << i;
  }
}

TEST(Surgery, BadEditsAreRefusedNamingWhatIsWrong) {
  lm::DecoderNode g(gpt_cfg());
  auto msg = [](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg([&] { surgery::keep_units(g, Unit::head, 7, {0}); }).find("layer 7 does not exist"), std::string::npos);
  EXPECT_NE(msg([&] { surgery::keep_units(g, Unit::head, 0, {2, 1}); }).find("sorted"), std::string::npos);
  EXPECT_NE(msg([&] { surgery::keep_units(g, Unit::ffn, 0, {64}); }).find("ffn 64 does not exist"), std::string::npos);
  EXPECT_NE(msg([&] { surgery::reorder_blocks(g, {}, 0); }).find("empty"), std::string::npos);
  EXPECT_NE(msg([&] { surgery::reorder_blocks(g, {0, 3}, 0); }).find("block 3 does not exist"), std::string::npos);
  EXPECT_NE(msg([&] { g.set_gate(GateKind::head, 0, vec({1.f})); }).find("has 4 elements"), std::string::npos);
  EXPECT_EQ(g.architecture().layers(), 3) << "nothing changed";
}

// ---- Llama: grouped key/value heads and RMSNorm under the structural gates -----------------
TEST(Surgery, LlamaPruningWholeKeyValueGroupsUnitsAndHiddenDimensionsKeepsTheGatedFunction) {
  for (GateKind hidden_kind : {GateKind::hidden, GateKind::hidden_kept}) {
    lm::DecoderNode m(llama_cfg());  // 4 query heads on 2 key/value heads, SwiGLU 24, width 16
    scramble(m, 13);
    Tensor x = ids();
    // Group 1 (query heads 2 and 3 with key/value head 1) goes; soft gates on the rest.
    m.set_gate(GateKind::head, 1, vec({0.7f, 1.2f, 0.f, 0.f}));
    std::vector<float> units(24, 0.f);
    for (int u = 0; u < 24; u += 3) units[size_t(u)] = 0.5f + 0.02f * float(u);
    m.set_gate(GateKind::ffn_unit, 0, vec(units));
    std::vector<float> hidden(16, 1.f);
    hidden[3] = hidden[9] = 0.f;
    hidden[5] = 0.6f;
    m.set_gate(hidden_kind, -1, vec(hidden));
    const Tensor want = logits(m, x);
    surgery::keep_units(m, Unit::head, 1, {0, 1});
    std::vector<int64_t> kept_units;
    for (int64_t u = 0; u < 24; u += 3) kept_units.push_back(u);
    surgery::keep_units(m, Unit::ffn, 0, kept_units);
    surgery::keep_units(m, Unit::hidden, -1, {0, 1, 2, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15});
    const Architecture a = m.architecture();
    EXPECT_EQ(a.heads[1], 2);
    EXPECT_EQ(a.kv_heads_at(1), 1);
    EXPECT_EQ(a.kv_heads_at(0), 2);
    EXPECT_EQ(m.impl().parameter("model.layers.1.self_attn.k_proj.weight").shape(), (Shape{4, 14}));
    EXPECT_EQ(m.impl().parameter("model.layers.0.mlp.gate_proj.weight").shape(), (Shape{8, 14}));
    EXPECT_LT(max_diff(logits(m, x), want), 1e-5) << gate_kind_name(hidden_kind);
    // Per-layer key/value heads survive a checkpoint.
    auto back = save_and_load(m, "scion_surgery_llama.safetensors");
    EXPECT_EQ(back->architecture(), m.architecture());
    EXPECT_LT(max_diff(logits(*back, x), want), 1e-5);
  }
}

// Pruning part of a key/value group keeps its key/value head for the query heads left: the
// layer's groups become ragged (Architecture::kv_map), the gated and the pruned model compute
// the same function, a group pruned back to equal sizes is uniform again, and the map survives
// a checkpoint and the architecture's JSON. A key/value head goes with its last query head.
TEST(Surgery, LlamaPruningPartOfAKeyValueGroupLeavesRaggedGroups) {
  lm::DecoderNode m(llama_cfg());  // 4 query heads on 2 key/value heads, head size 4
  scramble(m, 17);
  Tensor x = ids();
  m.set_gate(GateKind::head, 0, vec({0.8f, 1.1f, 0.f, 0.6f}));  // group 1 loses query head 2
  m.set_gate(GateKind::head, 2, vec({0.f, 0.9f, 1.3f, 0.7f}));  // group 0 loses query head 0
  m.set_gate(GateKind::head, 1, vec({0.f, 0.f, 1.f, 0.5f}));    // group 0 goes whole
  const Tensor want = logits(m, x);
  surgery::keep_units(m, Unit::head, 0, {0, 1, 3});
  surgery::keep_units(m, Unit::head, 2, {1, 2, 3});
  surgery::keep_units(m, Unit::head, 1, {2, 3});
  Architecture a = m.architecture();
  EXPECT_EQ(a.heads, (std::vector<int64_t>{3, 2, 3}));
  EXPECT_EQ(a.kv_heads, (std::vector<int64_t>{2, 1, 2}));
  EXPECT_EQ(a.kv_map_at(0), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(a.kv_map_at(2), (std::vector<int64_t>{0, 1, 1}));
  EXPECT_TRUE(a.ragged(0) && a.ragged(2));
  EXPECT_FALSE(a.ragged(1));
  EXPECT_EQ(m.impl().parameter("model.layers.0.self_attn.k_proj.weight").shape(), (Shape{8, 16}));
  EXPECT_EQ(m.impl().parameter("model.layers.0.self_attn.q_proj.weight").shape(), (Shape{12, 16}));
  EXPECT_EQ(m.impl().parameter("model.layers.1.self_attn.v_proj.weight").shape(), (Shape{4, 16}));
  EXPECT_LT(max_diff(logits(m, x), want), 1e-5);
  // The map in the architecture's JSON and in a checkpoint.
  EXPECT_TRUE(a.to_json().contains("kv_map"));
  EXPECT_EQ(Architecture::from_json(a.to_json()), a);
  auto back = save_and_load(m, "scion_surgery_ragged.safetensors");
  EXPECT_EQ(back->architecture(), a);
  EXPECT_LT(max_diff(logits(*back, x), want), 1e-5);
  // Layer 0 loses query head 1: one query head per key/value head, uniform again.
  m.set_gate(GateKind::head, 0, vec({1.f, 0.f, 1.f}));
  const Tensor want2 = logits(m, x);
  m.set_gate(GateKind::head, 0, Tensor());
  surgery::keep_units(m, Unit::head, 0, {0, 2});
  a = m.architecture();
  EXPECT_FALSE(a.ragged(0));
  EXPECT_EQ(a.kv_heads_at(0), 2);
  EXPECT_LT(max_diff(logits(m, x), want2), 1e-5);
  // Depth edits carry the map with their block.
  surgery::reorder_blocks(m, {2, 2, 0}, 1);
  a = m.architecture();
  EXPECT_EQ(a.kv_map_at(0), (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(a.kv_map_at(1), (std::vector<int64_t>{0, 1, 1}));
  EXPECT_FALSE(a.ragged(2));
  // A ragged layer has no Hugging Face form: export refuses it, naming the layer.
  try {
    m.hf_config();
    ADD_FAILURE() << "exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 0 groups its query heads unevenly"), std::string::npos) << e.what();
  }
}

TEST(Surgery, RaggedKeyValueMapsAreCheckedAndUniformOnesStoredAsNone) {
  EXPECT_EQ(surgery::ragged_kv_map({0, 0, 1, 1}, 2), std::vector<int64_t>{});
  EXPECT_EQ(surgery::ragged_kv_map({0, 1, 2}, 3), std::vector<int64_t>{});
  EXPECT_EQ(surgery::ragged_kv_map({0, 1, 1}, 2), (std::vector<int64_t>{0, 1, 1}));
  EXPECT_THROW(surgery::ragged_kv_map({0, 2, 2}, 3), Error);  // kv head 1 read by none
  EXPECT_THROW(surgery::ragged_kv_map({0, 0, 0}, 2), Error);  // kv head 1 read by none
  EXPECT_THROW(surgery::ragged_kv_map({1, 0, 1}, 2), Error);  // out of order
  EXPECT_THROW(surgery::ragged_kv_map({0, 1}, 3), Error);     // fewer query heads than kv heads
  lm::DecoderNode m(llama_cfg());
  Json j = m.architecture().to_json();
  j["kv_map"] = Json::array({Json::array({0, 0, 1}), Json::array(), Json::array()});
  EXPECT_THROW(Architecture::from_json(j), Error);  // 3 entries for 4 query heads
}

TEST(Surgery, LlamaLayoutsCoverEveryParameter) {
  lm::DecoderNode m(llama_cfg());
  for (const auto& [name, t] : m.module().named_parameters()) {
    const ParamLayout l = m.layout(name);
    if (name.find("k_proj") != std::string::npos || name.find("v_proj") != std::string::npos)
      EXPECT_EQ(l.axis[0].unit, Unit::kv_head) << name;
    if (name.find("q_proj") != std::string::npos) EXPECT_EQ(l.axis[0].unit, Unit::head) << name;
    if (name.find("gate_proj") != std::string::npos || name.find("up_proj.weight") != std::string::npos)
      EXPECT_EQ(l.axis[0].unit, Unit::ffn) << name;
    if (name.find("down_proj.weight") != std::string::npos || name.find("o_proj.weight") != std::string::npos) {
      EXPECT_TRUE(l.axis[1].reads && l.residual_write) << name;
    }
  }
  EXPECT_THROW(m.layout("model.layers.0.self_attn.rotary_emb.inv_freq"), Error);
}
