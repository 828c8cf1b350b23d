// loss.sheared: Sheared-LLaMA's targeted structured pruning (Xia, Gao, Zeng, Chen, ICLR 2024).
// Hard-concrete masks over layers, heads (key/value groups), FFN units and hidden dimensions
// (shape_masks.h) gate the model each step; the loss is the targeted Lagrangian
// Σ_m mean_rows[λ₁ₘ(ŝ − tₘ) + λ₂ₘ(ŝ − tₘ)²], one λ pair per structure (ascended: a sign = -1
// parameter group), each tₘ ramped from 0 to 1 − target/size. The language-model loss is the
// stage's other loss (loss.lm), as in the reference; op.cofi_prune then cuts the model to
// exactly the target shape.
#include <algorithm>

#include "finalize.h"
#include "graph_shape.h"
#include "masked_pruning.h"
#include "scion/ops.h"
#include "scion/plugin.h"
#include "scion/random.h"
#include "shape_masks.h"

namespace scion::prune {
namespace {

TargetShape shape_of(const Params& p) {
  return {p.integer("layers"), p.integer("heads"), p.integer("ffn"), p.integer("width")};
}

class ShearedLoss final : public Loss, public MaskedPruning {
 public:
  ShearedLoss(const Params& p, const NodeResolver& r)
      : warmup_(p.integer("warmup")), start_(p.integer("start")), seed_(p.context().seed) {
    model_ = r.get<TransformerModel>(p.string("model")).get();
    masks_ = ShapeMasks(model_->architecture(), shape_of(p), float(p.number("log_alpha_init")), 0.01f,
                        derive_seed(seed_, 0x5ea7));
    const int64_t M = int64_t(masks_.structures().size());
    lambda_1_ = Tensor::zeros({M});
    lambda_1_.set_requires_grad(true);
    lambda_2_ = Tensor::zeros({M});
    lambda_2_.set_requires_grad(true);
  }

  nn::NamedTensors owned_parameters() override {
    nn::NamedTensors out;
    for (auto& [n, t] : masks_.log_alphas()) out.emplace_back("log_alpha." + n, t);
    out.emplace_back("lambda_1", lambda_1_);
    out.emplace_back("lambda_2", lambda_2_);
    return out;
  }

  bool pruning(const StepContext& ctx) const { return ctx.stage_step >= start_; }
  double ramp(int64_t stage_step) const {
    if (stage_step < start_) return 0.0;
    return warmup_ <= 0 ? 1.0 : std::min(1.0, double(stage_step - start_) / double(warmup_));
  }

  void begin_step(const StepContext& ctx) override {
    if (!ctx.training) return;
    if (pruning(ctx)) masks_.set_sampled(*model_, derive_seed(seed_, uint64_t(ctx.step)));
    else surgery::clear_gates(*model_);
  }
  void end_step(const StepContext& ctx) override {
    masks_.clamp();
    if (pruning(ctx)) masks_.set_deterministic(*model_);  // evaluation and checkpoints between steps
  }

  Tensor compute(const TensorMap&, const StepContext& ctx, std::map<std::string, double>& metrics) override {
    const double r = ramp(ctx.stage_step);
    const auto& names = masks_.structures();
    const auto expected = masks_.expected_sparsity(), target = masks_.target_sparsity();
    const std::vector<float> l1 = lambda_1_.to_vector(), l2 = lambda_2_.to_vector();
    for (size_t m = 0; m < names.size(); ++m) {
      metrics["expected_sparsity/" + names[m]] = expected[m];
      metrics["target/" + names[m]] = r * target[m];
      metrics["lambda_1/" + names[m]] = l1[m];
      metrics["lambda_2/" + names[m]] = l2[m];
    }
    if (!pruning(ctx)) return Tensor::zeros({});
    Tensor lag = masks_.lagrangian(lambda_1_, lambda_2_, r);
    metrics["lagrangian"] = lag.item();
    return lag;
  }

  const TransformerModel* gated_model() const override { return model_; }
  const Architecture& masked_architecture() const override { return masks_.architecture(); }
  void finalize(TransformerModel& m) const override {
    masks_.set_exact(m);
    prune_with_gates(m);
    drop_empty_layers(m, seed_);
  }

 private:
  int64_t warmup_, start_;
  uint64_t seed_;
  TransformerModel* model_ = nullptr;
  ShapeMasks masks_;
  Tensor lambda_1_, lambda_2_;
};

// The target shape against the model's, when the graph gives the model's sizes (a model that
// loads a checkpoint is checked when the loss is made, before the first update).
std::vector<GraphProblem> check(const GraphView& g, const GraphNodeView& self) {
  std::vector<GraphProblem> out;
  const GraphNodeView* m = g.node(self.params.string("model"));
  const auto a = m ? graph_architecture(*m) : std::nullopt;
  if (!a) return out;
  const std::string problem = shape_problem(*a, shape_of(self.params));
  if (!problem.empty())
    out.push_back({"", problem, "layers, heads, ffn and width: each 0 (kept) or at most the model's, heads in whole key/value groups"});
  return out;
}

PluginEntry sheared_entry() {
  PluginEntry e;
  e.name = "loss.sheared";
  e.kind = PluginKind::loss;
  e.version = "1.0.0";
  e.description = "Sheared-LLaMA: masks over layers, heads, FFN units and hidden dimensions driven to a target "
                  "architecture by one Lagrangian per structure";
  e.params = {node_param("model", PluginKind::model, "the model pruned to the target shape").needed(),
              int_param("layers", 0, "target layers (0 = all kept)").at_least(0),
              int_param("heads", 0, "target query heads per layer, whole key/value groups (0 = all kept)").at_least(0),
              int_param("ffn", 0, "target FFN units per layer (0 = all kept)").at_least(0),
              int_param("width", 0, "target hidden width (0 = kept)").at_least(0),
              int_param("warmup", 100, "updates over which each target sparsity ramps up from 0 (lagrangian_warmup_steps)").at_least(0),
              int_param("start", 0, "updates of the stage before the masks and the Lagrangian start").at_least(0),
              num_param("log_alpha_init", 5.0, "mean initial log α (the reference's N(5, 0.01), clamped to ln 100 ≈ 4.6)")};
  e.check = check;
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<ShearedLoss>(p, r); };
  return e;
}

}  // namespace
}  // namespace scion::prune

using scion::prune::sheared_entry;
SCION_REGISTER_PLUGIN(sheared_entry)
