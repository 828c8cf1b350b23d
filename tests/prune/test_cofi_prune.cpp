// CoFi's finalisation on model.gpt and model.bert: the masked model and the physically pruned
// one compute the same function (soft survivors, hidden dimensions included, folded into the
// weights with no gate left, a removed attention sublayer, an FFN whose units all closed while
// its sublayer gate stayed open: reference issue #36); each part of the hidden fold is needed;
// the expected sparsity equals the pruned model's parameter count; a pruned model survives
// save -> load -> eval as a plain model; gradients reach log α through the model's gates.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "cofi_masks.h"
#include "finalize.h"
#include "growth/tiny_models.h"
#include "hard_concrete.h"
#include "lm_nodes.h"
#include "scion/autograd.h"
#include "scion/checkpoint.h"
#include "scion/ops.h"
#include "scion/random.h"
#include "scion/safetensors.h"

using namespace scion;

namespace {

double max_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double d = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) d = std::max(d, std::fabs(double(x[i]) - y[i]));
  return d;
}

Tensor ids(int64_t vocab) { return Tensor::randint({2, 9}, 77, 0, vocab); }

Tensor logits(Model& m, const Tensor& tokens) {
  NoGradGuard g;
  StepContext ctx;
  ctx.training = false;
  return m.forward({{"tokens", tokens}}, ctx).at("logits");
}

Tensor vec(std::vector<float> v) { return Tensor::from_vector(v, {int64_t(v.size())}); }

std::unique_ptr<TransformerModel> tiny_model(int family, bool tied = true) {
  std::unique_ptr<TransformerModel> m;
  if (family == 0) {
    auto c = tiny::gpt_cfg();
    c.layers = 4;
    c.tied = tied;
    m = std::make_unique<lm::DecoderNode>(c);
  } else if (family == 1) {
    auto c = tiny::bert_cfg();
    c.layers = 4;
    c.tied = tied;
    m = std::make_unique<lm::BertNode>(c);
  } else {  // Llama: 4 query heads on 2 key/value heads, SwiGLU, RMSNorm
    auto c = tiny::llama_cfg();
    c.layers = 4;
    c.tied = tied;
    c.qkv_bias = false;
    m = std::make_unique<lm::DecoderNode>(c);
  }
  tiny::scramble(m->module(), 31 + uint64_t(family), 0.3f);
  return m;
}

// Soft gates everywhere, with every edge case of the finalisation in one model:
// layer 0: soft heads and units; layer 1: attention sublayer closed; layer 2: all FFN units
// closed while the FFN gate is open (issue #36), all heads closed while attention is open;
// layer 3: FFN sublayer closed; some hidden dimensions closed, the rest soft.
void edge_case_gates(TransformerModel& m) {
  const Architecture a = m.architecture();
  const int64_t H = a.heads[0], F = a.ffn[0];
  std::vector<float> units(size_t(F), 0.f);
  for (int64_t u = 0; u < F; u += 3) units[size_t(u)] = 0.4f + 0.01f * float(u);
  m.set_gate(GateKind::head, 0, vec({0.7f, 0.f, 1.f, 0.35f}));
  m.set_gate(GateKind::attention, 0, vec({0.8f}));
  m.set_gate(GateKind::ffn_unit, 0, vec(units));
  m.set_gate(GateKind::ffn, 0, vec({0.9f}));
  m.set_gate(GateKind::attention, 1, vec({0.f}));
  m.set_gate(GateKind::head, 1, vec({0.5f, 0.5f, 0.5f, 0.5f}));
  m.set_gate(GateKind::head, 2, Tensor::zeros({H}));
  m.set_gate(GateKind::attention, 2, vec({0.6f}));
  m.set_gate(GateKind::ffn_unit, 2, Tensor::zeros({F}));
  m.set_gate(GateKind::ffn, 2, vec({1.f}));
  m.set_gate(GateKind::ffn, 3, vec({0.f}));
  std::vector<float> hidden(size_t(a.width), 1.f);
  hidden[2] = hidden[7] = hidden[11] = 0.f;
  hidden[4] = 0.55f, hidden[9] = 0.9f, hidden[13] = 0.3f;
  m.set_gate(GateKind::hidden_kept, -1, vec(hidden));
}

// The kept hidden values after the finalisation removed the dimensions at 0.
std::vector<float> kept_hidden(const TransformerModel& m) {
  std::vector<float> z;
  for (float v : m.gate(GateKind::hidden_kept, -1).to_vector())
    if (v != 0.f) z.push_back(v);
  return z;
}

bool has_gate_buffer(Model& m) {
  for (const auto& [name, t] : m.module().state_dict())
    if (name.find("gate") != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(CofiPrune, MaskedAndPhysicallyPrunedModelsComputeTheSameFunction) {
  for (int variant = 0; variant < 4; ++variant) {
    const int family = variant % 2;
    const bool tied = variant < 2;  // untied: the final LayerNorms fold the hidden gate too
    auto m = tiny_model(family, tied);
    const Architecture a = m->architecture();
    const Tensor x = ids(a.vocab);
    const Tensor dense = logits(*m, x);
    edge_case_gates(*m);
    const Tensor want = logits(*m, x);
    ASSERT_GT(max_diff(want, dense), 1e-2) << "the gates matter";
    const int64_t before = m->module().parameter_count();
    const prune::PruneReport r = prune::prune_with_gates(*m);
    const Architecture b = m->architecture();
    const std::string fam = std::string(family == 0 ? "gpt" : "bert") + (tied ? "" : " untied");
    EXPECT_EQ(b.width, a.width - 3) << fam;
    EXPECT_EQ(b.heads, (std::vector<int64_t>{3, 0, 1, 4})) << fam << ": layer 2 keeps one dead head";
    const int64_t F = a.ffn[0];
    EXPECT_EQ(b.ffn, (std::vector<int64_t>{(F + 2) / 3, F, 1, 0})) << fam << ": layer 2 keeps one dead unit";
    EXPECT_EQ(r.attention_removed, 1);
    EXPECT_EQ(r.ffn_removed, 1);
    EXPECT_EQ(r.bias_only, 2);
    EXPECT_LT(m->module().parameter_count(), before);
    // Every soft value, the hidden survivors' included, is folded: no gate is left.
    for (const auto& g : surgery::gates(*m)) ADD_FAILURE() << fam << ": gate " << g.name() << " left";
    EXPECT_FALSE(has_gate_buffer(*m)) << fam;
    EXPECT_LT(max_diff(logits(*m, x), want), 1e-5) << fam;
  }
}

TEST(CofiPrune, EachPartOfTheHiddenFoldIsNeeded) {
  // Undoing the hidden gate's fold in one kind of tensor (dividing by the kept values again)
  // changes the function: the LayerNorms' weight and bias, the embedding tables, the residual
  // writes (the sublayers' output projections).
  for (int family = 0; family < 2; ++family)
    for (int part = 0; part < 3; ++part) {
      auto m = tiny_model(family);
      const Tensor x = ids(m->architecture().vocab);
      edge_case_gates(*m);
      const std::vector<float> z = kept_hidden(*m);
      const Tensor want = logits(*m, x);
      prune::prune_with_gates(*m);
      ASSERT_LT(max_diff(logits(*m, x), want), 1e-5);
      int undone = 0;
      {
        NoGradGuard ng;
        for (const auto& [name, t] : m->module().named_parameters()) {
          const ParamLayout lay = m->layout(name);
          if (!lay.hidden_fold) continue;
          const bool table = lay.layer < 0 && t.dim() == 2, norm = t.dim() == 1 && !lay.residual_write;
          if ((part == 0 && !norm) || (part == 1 && !table) || (part == 2 && !lay.residual_write)) continue;
          const int axis = lay.axis[0].unit == Unit::hidden ? 0 : 1;
          std::vector<float> v = t.detach().contiguous().to_vector();
          const int64_t c = t.dim() == 2 ? t.size(1) : 1;
          for (size_t i = 0; i < v.size(); ++i) v[i] /= z[size_t(axis == 0 ? int64_t(i) / c : int64_t(i) % c)];
          Tensor tt = t;
          tt.copy_(Tensor::from_vector(v, t.shape()));
          ++undone;
        }
      }
      ASSERT_GT(undone, 0) << family << " " << part;
      EXPECT_GT(max_diff(logits(*m, x), want), 1e-3) << (family ? "bert" : "gpt") << " part " << part;
    }
}

TEST(CofiPrune, MsgsHiddenGateIsRefused) {
  // MSG's rule weights the LayerNorm statistics by the gate: no weight absorbs that.
  auto m = tiny_model(0);
  m->set_gate(GateKind::hidden, -1, Tensor::full({m->architecture().width}, 0.5f));
  EXPECT_THROW(prune::prune_with_gates(*m), Error);
  EXPECT_THROW(m->set_gate(GateKind::hidden_kept, -1, Tensor::ones({m->architecture().width})), Error)
      << "a model has one hidden gate";
}

TEST(CofiPrune, WithoutTheDeadUnitIssue36WouldChangeTheOutput) {
  // Removing the FFN whose units all closed (what the reference does) drops its output bias.
  for (int family = 0; family < 2; ++family) {
    auto m = tiny_model(family);
    const Tensor x = ids(m->architecture().vocab);
    m->set_gate(GateKind::ffn_unit, 2, Tensor::zeros(Shape{m->architecture().ffn[2]}));
    const Tensor want = logits(*m, x);
    m->set_gate(GateKind::ffn_unit, 2, Tensor());
    surgery::keep_units(*m, Unit::ffn, 2, {});
    EXPECT_GT(max_diff(logits(*m, x), want), 1e-3) << family;
  }
}

TEST(CofiPrune, ExpectedSparsityEqualsThePrunedParameterCount) {
  for (int family = 0; family < 3; ++family) {
    auto m = tiny_model(family);
    const Architecture a = m->architecture();
    prune::MaskInit init;
    init.seed = 5 + uint64_t(family);
    prune::CofiMasks masks(a, init);
    // Decided gates (|log α| large: every keep probability is 0 or 1), some whole sublayers off.
    uint64_t k = 0;
    for (auto& [name, t] : masks.log_alphas()) {
      std::vector<float> v(size_t(t.numel()));
      for (size_t i = 0; i < v.size(); ++i) v[i] = random_uniform(99, k++) < 0.35f ? -60.f : 60.f;
      if (name == "attention.1" || name == "ffn.3") v[0] = -60.f;
      if (name.rfind("head.", 0) == 0) v[0] = 60.f;  // no layer loses every head with attention open
      NoGradGuard ng;
      t.copy_(Tensor::from_vector(v, t.shape()));
    }
    const double expected = masks.expected_params().item();
    const double sparsity = masks.expected_sparsity().item();
    masks.set_deterministic(*m);
    prune::prune_with_gates(*m);
    const double counted = prune::kept_params(m->architecture(), a);
    EXPECT_NEAR(expected, counted, 1e-6 * counted) << family;
    EXPECT_NEAR(sparsity, 1.0 - counted / prune::dense_params(a), 1e-6) << family;
    EXPECT_GT(sparsity, 0.3);
  }
}

TEST(CofiPrune, ExpectedSparsityMatchesThePrunedCountToRounding) {
  // Undecided gates: the deterministic masks keep round(Σ P(z ≠ 0)) of each group, so the pruned
  // count and ŝ differ only by that rounding.
  auto m = tiny_model(0);
  const Architecture a = m->architecture();
  prune::MaskInit init;
  init.log_alpha = 1.f, init.ffn_unit_log_alpha = -1.f, init.std = 2.f, init.seed = 8;
  prune::CofiMasks masks(a, init);
  const double expected = masks.expected_params().item();
  masks.set_deterministic(*m);
  prune::prune_with_gates(*m);
  const double counted = prune::kept_params(m->architecture(), a);
  // Each rounding moves a group by at most half a unit: bound the count by those moves.
  const double bound = 0.5 * (4.0 * a.head_size * a.width + 4.0 + 2.0 * a.width) * double(a.layers()) * 2 +
                       0.5 * prune::dense_params(a) / double(a.width);
  EXPECT_NEAR(counted, expected, bound);
  EXPECT_LT(std::fabs(counted - expected) / prune::dense_params(a), 0.15);
}

TEST(CofiPrune, APrunedCheckpointSurvivesSaveLoadEval) {
  auto m = tiny_model(0);
  const Tensor x = ids(m->architecture().vocab);
  edge_case_gates(*m);
  const Tensor masked = logits(*m, x);
  prune::prune_with_gates(*m);
  auto& node = static_cast<lm::DecoderNode&>(*m);
  const Tensor want = logits(*m, x);
  ASSERT_LT(max_diff(want, masked), 1e-5);
  const std::string path = (std::filesystem::temp_directory_path() / "scion_cofi_pruned.safetensors").string();
  safetensors::save(path, node.module().state_dict(), {{checkpoint::kConfigKey, json_dump(node.config())}});
  for (const auto& [name, t] : safetensors::load(path).tensors) EXPECT_EQ(name.find("gate"), std::string::npos) << name;
  Json p;
  for (const char* k : {"vocab", "context", "layers", "heads", "ffn"}) p[k] = Json(int64_t(1));
  p["width"] = Json(int64_t(4));
  p["dropout"] = Json(0.0);
  p["tied"] = Json(true);
  p["load"] = Json(path);
  p["frozen"] = Json(true);
  lm::DecoderNode back(Params(p, "loaded", NodeContext{1, 0, 1, {}}), "gpt2");
  EXPECT_EQ(back.architecture(), m->architecture());
  EXPECT_TRUE(surgery::gates(back).empty()) << "a plain model.gpt, no hidden gate";
  EXPECT_LT(max_diff(logits(back, x), want), 1e-6);
  // Smaller on disk than the dense model.
  auto dense = tiny_model(0);
  const std::string dpath = (std::filesystem::temp_directory_path() / "scion_cofi_dense.safetensors").string();
  safetensors::save(dpath, dense->module().state_dict(), {});
  EXPECT_LT(std::filesystem::file_size(path), std::filesystem::file_size(dpath));
}

TEST(CofiPrune, LogAlphaGetsFiniteDifferenceGradientsThroughTheModelsGates) {
  for (int family = 0; family < 2; ++family) {
    auto m = tiny_model(family);
    const Architecture a = m->architecture();
    prune::MaskInit init;
    init.log_alpha = 0.5f, init.ffn_unit_log_alpha = 0.3f, init.std = 0.5f, init.seed = 12;
    prune::CofiMasks masks(a, init);
    const Tensor x = ids(a.vocab), tg = Tensor::randint({2, 9}, 78, 0, a.vocab);
    auto loss = [&] {
      masks.set_sampled(*m, 1234);
      StepContext ctx;
      ctx.training = false;
      return ops::cross_entropy(m->forward({{"tokens", x}}, ctx).at("logits"), tg);
    };
    loss().backward();
    for (const char* which : {"head.1", "ffn_unit.0", "attention.2", "ffn.1", "hidden"}) {
      Tensor t;
      for (auto& [n, v] : masks.log_alphas())
        if (n == which) t = v;
      ASSERT_TRUE(t.grad().defined()) << which;
      const auto got = t.grad().to_vector();
      NoGradGuard ng;
      const std::vector<float> v0 = t.detach().to_vector();
      for (size_t i = 0; i < std::min<size_t>(v0.size(), 4); ++i) {
        // Skip a gate clamped at 0 or 1 by this sample (no gradient there, nor a derivative).
        const float h = 1e-2f;
        auto at = [&](float d) {
          std::vector<float> w = v0;
          w[i] += d;
          Tensor tt = t;
          tt.copy_(Tensor::from_vector(w, t.shape()));
          const double r = loss().item();
          tt.copy_(Tensor::from_vector(v0, t.shape()));
          return r;
        };
        const double want = (at(h) - at(-h)) / (2 * h);
        EXPECT_NEAR(got[i], want, 2e-3 + 0.05 * std::fabs(want)) << (family ? "bert " : "gpt ") << which << "[" << i << "]";
      }
    }
  }
}

// CoFi on a grouped-query Llama: one mask per query head; a key/value head goes when all its
// query heads are gone; through RMSNorm and SwiGLU the masked model and the physically pruned
// one compute the same function.
TEST(CofiPrune, LlamaDropsAKeyValueHeadWithItsLastQueryHeadAndTheMaskedModelEqualsThePrunedOne) {
  auto m = tiny_model(2, /*tied=*/false);
  const Architecture a = m->architecture();
  prune::MaskInit init;
  init.seed = 12;
  prune::CofiMasks masks(a, init);
  uint64_t k = 0;
  for (auto& [name, t] : masks.log_alphas()) {
    if (name.rfind("head.", 0) == 0) {
      EXPECT_EQ(t.numel(), 4) << name << ": one mask per query head";
    }
    std::vector<float> v(size_t(t.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = random_uniform(7, k++) < 0.3f ? -60.f : 60.f;
    if (name.rfind("head.", 0) == 0) v = {60.f, 60.f, 60.f, 60.f};
    if (name == "head.1") v = {-60.f, -60.f, 60.f, 60.f};  // layer 1 loses query heads 0, 1 and so kv head 0
    if (name == "attention.1" || name == "ffn.1") v[0] = 60.f;
    NoGradGuard ng;
    t.copy_(Tensor::from_vector(v, t.shape()));
  }
  const Tensor x = ids(a.vocab);
  masks.set_deterministic(*m);
  EXPECT_EQ(m->gate(GateKind::head, 1).to_vector(), (std::vector<float>{0.f, 0.f, 1.f, 1.f}));
  const Tensor want = logits(*m, x);
  const double expected = masks.expected_params().item();
  prune::prune_with_gates(*m);
  const Architecture b = m->architecture();
  EXPECT_EQ(b.heads[1], 2);
  EXPECT_EQ(b.kv_heads_at(1), 1);
  EXPECT_FALSE(b.ragged(1));
  EXPECT_LT(b.width, a.width);
  EXPECT_LT(max_diff(logits(*m, x), want), 1e-5);
  EXPECT_NEAR(prune::kept_params(b, a), expected, 1e-6 * expected);
}

namespace {
// A Llama of 6 query heads on 3 key/value heads (head size 4), no biases, untied.
std::unique_ptr<TransformerModel> llama_6_on_3() {
  auto c = tiny::llama_cfg();
  c.layers = 4, c.width = 24, c.heads = 6, c.kv_heads = 3, c.ffn = 24, c.qkv_bias = false, c.tied = false;
  auto m = std::make_unique<lm::DecoderNode>(c);
  tiny::scramble(m->module(), 41, 0.3f);
  return m;
}

// The attention and MLP weights of the blocks: what kept_params counts for a bias-free Llama.
int64_t block_matrix_params(Model& m) {
  int64_t n = 0;
  for (const auto& [name, t] : m.module().named_parameters())
    if ((name.find(".self_attn.") != std::string::npos || name.find(".mlp.") != std::string::npos) && t.dim() == 2)
      n += t.numel();
  return n;
}
}  // namespace

// Ragged groups: layer 0 keeps one of kv group 0's query heads, none of group 1's and all of
// group 2's; layer 1 drops one query head of group 0; layer 3 keeps one query head per group.
// The masked model and the pruned one compute the same logits, the pruned model's parameter
// count is the formula's, and it survives a checkpoint; Hugging Face export refuses it naming
// the layer (transformers' Llama needs equal groups).
TEST(CofiPrune, LlamaRaggedGroupsMaskedEqualsPrunedAndTheCountIsTheFormulas) {
  auto m = llama_6_on_3();
  const Architecture a = m->architecture();
  prune::MaskInit init;
  init.seed = 21;
  prune::CofiMasks masks(a, init);
  const std::map<std::string, std::vector<float>> heads = {
      {"head.0", {60.f, -60.f, -60.f, -60.f, 60.f, 60.f}},
      {"head.1", {-60.f, 60.f, 60.f, 60.f, 60.f, 60.f}},
      {"head.2", {60.f, 60.f, 60.f, 60.f, 60.f, 60.f}},
      {"head.3", {60.f, -60.f, -60.f, 60.f, 60.f, -60.f}}};
  uint64_t k = 0;
  for (auto& [name, t] : masks.log_alphas()) {
    std::vector<float> v(size_t(t.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = random_uniform(17, k++) < 0.25f ? -60.f : 60.f;
    if (heads.count(name)) v = heads.at(name);
    if (name.rfind("attention.", 0) == 0 || name.rfind("ffn.", 0) == 0) v[0] = 60.f;
    NoGradGuard ng;
    t.copy_(Tensor::from_vector(v, t.shape()));
  }
  const Tensor x = ids(a.vocab);
  masks.set_deterministic(*m);
  const Tensor want = logits(*m, x);
  const double expected = masks.expected_params().item();
  prune::prune_with_gates(*m);
  const Architecture b = m->architecture();
  EXPECT_EQ(b.heads, (std::vector<int64_t>{3, 5, 6, 3}));
  EXPECT_EQ(b.kv_heads, (std::vector<int64_t>{2, 3, 3, 3}));
  EXPECT_EQ(b.kv_map_at(0), (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(b.kv_map_at(1), (std::vector<int64_t>{0, 1, 1, 2, 2}));
  EXPECT_TRUE(b.ragged(0) && b.ragged(1));
  EXPECT_FALSE(b.ragged(2) || b.ragged(3));
  EXPECT_EQ(m->module().parameter("model.layers.0.self_attn.k_proj.weight").shape(), (Shape{8, b.width}));
  EXPECT_LT(max_diff(logits(*m, x), want), 1e-5);
  // The count: the formula at decided masks, and the pruned model's own matrices.
  const double counted = prune::kept_params(b, a);
  EXPECT_NEAR(counted, expected, 1e-6 * counted);
  EXPECT_EQ(double(block_matrix_params(*m)), counted);
  // The checkpoint stores the map: a reloaded model has the ragged layers and the same logits.
  const std::string path = (std::filesystem::temp_directory_path() / "scion_cofi_ragged.safetensors").string();
  safetensors::save(path, m->module().state_dict(), {{checkpoint::kConfigKey, json_dump(m->config())}});
  auto c = tiny::llama_cfg();
  auto back = std::make_unique<lm::DecoderNode>(lm::decoder_config_from_json(
      json_parse(safetensors::load_metadata(path).at(checkpoint::kConfigKey), path), c));
  back->module().load_state_dict(safetensors::load(path).tensors);
  EXPECT_EQ(back->architecture(), b);
  EXPECT_LT(max_diff(logits(*back, x), want), 1e-5);
  std::filesystem::remove(path);
  try {
    m->hf_config();
    ADD_FAILURE() << "a ragged model was exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 0 groups its query heads unevenly over its key/value heads ([0,1,1]"),
              std::string::npos)
        << e.what();
  }
}

// The expected count of a grouped layer, computed here from the keep probabilities in double:
// E[hidden]·Σ_l E[attention_l]·(2D·Σ_h p_h + 2D·Σ_j (1 − Π_{h reads j} (1 − p_h))) +
// E[hidden]·Σ_l E[ffn_l]·3·Σ_u p_u; and its gradient to a query head's log α by finite differences.
TEST(CofiPrune, LlamaExpectedCountCountsQueryHeadsAndExpectedKeyValueHeads) {
  auto m = llama_6_on_3();
  const Architecture a = m->architecture();
  prune::MaskInit init;
  init.log_alpha = 0.5f, init.ffn_unit_log_alpha = -0.5f, init.std = 1.5f, init.seed = 3;
  prune::CofiMasks masks(a, init);
  std::map<std::string, std::vector<double>> p;
  for (const auto& [name, t] : masks.log_alphas()) {
    NoGradGuard ng;
    for (float v : prune::HardConcrete::keep_prob(t).to_vector()) p[name].push_back(v);
  }
  auto sum = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s;
  };
  const double D = double(a.head_size);
  double total = 0;
  for (int64_t l = 0; l < a.layers(); ++l) {
    const std::string i = std::to_string(l);
    const std::vector<double>& ph = p.at("head." + i);
    double kv = 0;
    for (int64_t j = 0; j < 3; ++j) kv += 1.0 - (1.0 - ph[size_t(2 * j)]) * (1.0 - ph[size_t(2 * j + 1)]);
    total += p.at("attention." + i)[0] * (2 * D * sum(ph) + 2 * D * kv) + p.at("ffn." + i)[0] * 3 * sum(p.at("ffn_unit." + i));
  }
  const double want = sum(p.at("hidden")) * total;
  const Tensor got = masks.expected_params();
  EXPECT_NEAR(got.item(), want, 1e-5 * want);
  got.backward();
  Tensor la = masks.log_alphas()[0].second;  // head.0
  ASSERT_EQ(masks.log_alphas()[0].first, "head.0");
  const std::vector<float> grad = la.grad().to_vector();
  for (int64_t h : {0, 3}) {
    auto at = [&](float delta) {
      NoGradGuard ng;
      std::vector<float> v = la.to_vector();
      v[size_t(h)] += delta;
      la.copy_(Tensor::from_vector(v, la.shape()));
      const double e = masks.expected_params().item();
      v[size_t(h)] -= delta;
      la.copy_(Tensor::from_vector(v, la.shape()));
      return e;
    };
    const double fd = (at(2e-2f) - at(-2e-2f)) / 4e-2;
    EXPECT_NEAR(grad[size_t(h)], fd, 1e-2 * std::fabs(fd) + 1e-3) << "query head " << h;
  }
}
