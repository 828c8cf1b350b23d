// loss.cofi: CoFi's pruning objective on a student transformer (hard-concrete masks set as
// its gates each step, the Lagrangian sparsity term, distillation from a teacher), and
// op.cofi_prune: the finalisation that turns the masked student into a smaller dense model.
#include <cmath>

#include "cofi_masks.h"
#include "finalize.h"
#include "hard_concrete.h"
#include "layer_match.h"
#include "masked_pruning.h"
#include "scion/autograd.h"
#include "scion/ops.h"
#include "scion/plugin.h"
#include "scion/random.h"

namespace scion::prune {
namespace {

class CofiLoss final : public Loss, public MaskedPruning {
 public:
  CofiLoss(const Params& p, const NodeResolver& r)
      : name_(p.node()),
        target_(float(p.number("target"))),
        warmup_(p.integer("warmup")),
        start_(p.integer("start")),
        temperature_(float(p.number("temperature"))),
        alpha_ce_(float(p.number("alpha_ce"))),
        alpha_layer_(float(p.number("alpha_layer"))),
        seed_(p.context().seed) {
    model_ = r.get<TransformerModel>(p.string("model")).get();
    MaskInit init;
    init.log_alpha = float(p.number("log_alpha_init"));
    init.ffn_unit_log_alpha = float(p.number("ffn_unit_log_alpha_init"));
    init.seed = derive_seed(seed_, 0xc0f1);
    const Architecture a = model_->architecture();
    masks_ = CofiMasks(a, init);
    teacher_layers_ = p.integers("match_layers");
    if (alpha_layer_ > 0.f) {
      if (teacher_layers_.empty()) teacher_layers_ = default_teacher_layers(a.layers());
      SCION_CHECK(int64_t(teacher_layers_.size()) <= a.layers(), "loss.cofi: match_layers names ",
                  teacher_layers_.size(), " teacher layers but the student '", p.string("model"), "' has only ", a.layers(),
                  " (hint: each teacher layer needs a student layer below the previous match; name at most ",
                  a.layers(), ")");
    }
    lambda_1_ = Tensor::zeros({1});
    lambda_1_.set_requires_grad(true);
    lambda_2_ = Tensor::zeros({1});
    lambda_2_.set_requires_grad(true);
    // The layer transformation starts as the identity (the reference's init).
    std::vector<float> eye(size_t(a.width * a.width), 0.f);
    for (int64_t i = 0; i < a.width; ++i) eye[size_t(i * a.width + i)] = 1.f;
    map_w_ = Tensor::from_vector(eye, {a.width, a.width});
    map_w_.set_requires_grad(true);
    map_b_ = Tensor::zeros({a.width});
    map_b_.set_requires_grad(true);
  }

  nn::NamedTensors owned_parameters() override {
    nn::NamedTensors out;
    for (auto& [n, t] : masks_.log_alphas()) out.emplace_back("log_alpha." + n, t);
    out.emplace_back("lambda_1", lambda_1_);
    out.emplace_back("lambda_2", lambda_2_);
    out.emplace_back("layer_transformation.weight", map_w_);
    out.emplace_back("layer_transformation.bias", map_b_);
    return out;
  }

  // The target sparsity at this stage step: 0 until pruning starts, then a linear ramp.
  float target_at(int64_t stage_step) const {
    if (stage_step < start_) return 0.f;
    if (warmup_ <= 0) return target_;
    return target_ * std::min(1.f, float(stage_step - start_) / float(warmup_));
  }
  bool pruning(const StepContext& ctx) const { return ctx.stage_step >= start_; }

  void begin_step(const StepContext& ctx) override {
    if (!ctx.training) return;
    if (pruning(ctx)) masks_.set_sampled(*model_, derive_seed(seed_, uint64_t(ctx.step)));
    else surgery::clear_gates(*model_);  // the reference's pre-pruning steps run the dense model
  }
  void end_step(const StepContext& ctx) override {
    masks_.clamp();
    // Evaluation and checkpoints between steps see the deterministic masks.
    if (pruning(ctx)) masks_.set_deterministic(*model_);
  }

  Tensor compute(const TensorMap& in, const StepContext& ctx, std::map<std::string, double>& metrics) override {
    Tensor total;
    auto add = [&](const Tensor& t) { total = total.defined() ? ops::add(total, t) : t; };
    // Distillation replaces the plain LM loss: KL at temperature T, scaled by T².
    Tensor s = in.at("student"), t = in.at("teacher").detach();
    const int64_t V = s.size(-1);
    Tensor kl = ops::kl_div(s.reshape({-1, V}), t.reshape({-1, V}), temperature_);
    metrics["kl"] = kl.item();
    add(ops::mul_scalar(kl, alpha_ce_ * temperature_ * temperature_));
    if (alpha_layer_ > 0.f) {
      Tensor sl = in.at("student_layers"), tl = in.at("teacher_layers").detach();
      const Architecture a = model_->architecture();
      // The student's layer outputs are its residual stream, which the hidden gate already
      // multiplies (GateKind::hidden_kept), as the reference's is.
      Tensor mapped = ops::linear(sl, map_w_, map_b_, /*w_in_out=*/false);
      std::vector<bool> exists(size_t(a.layers()), true);
      for (int64_t l = 0; l < a.layers(); ++l) {
        const Tensor ga = model_->gate(GateKind::attention, l), gf = model_->gate(GateKind::ffn, l);
        // The reference's fix for its issue #53: a layer exists while either sublayer does.
        exists[size_t(l)] = !(ga.defined() && gf.defined() && ga.item() == 0.f && gf.item() == 0.f);
      }
      LayerMatch m = match_layers(mapped, tl, teacher_layers_, exists);
      metrics["layer"] = m.loss.item();
      add(ops::mul_scalar(m.loss, alpha_layer_));
    }
    const float t_now = target_at(ctx.stage_step);
    metrics["target"] = t_now;
    metrics["lambda_1"] = lambda_1_.item();
    metrics["lambda_2"] = lambda_2_.item();
    if (pruning(ctx)) {
      // λ₁(ŝ − t) + λ₂(ŝ − t)², minimised over log α and maximised over λ (sign = -1 group).
      Tensor gap = ops::add_scalar(masks_.expected_sparsity(), -t_now);
      metrics["expected_sparsity"] = gap.item() + t_now;
      Tensor lag = ops::add(ops::sum_all(ops::mul(lambda_1_, gap)), ops::sum_all(ops::mul(lambda_2_, ops::mul(gap, gap))));
      metrics["lagrangian"] = lag.item();
      add(lag);
    } else {
      metrics["expected_sparsity"] = 0.0;
    }
    return total;
  }

  const CofiMasks& masks() const { return masks_; }
  const TransformerModel* gated_model() const override { return model_; }
  const Architecture& masked_architecture() const override { return masks_.architecture(); }
  void finalize(TransformerModel& m) const override {
    masks_.set_deterministic(m);
    prune_with_gates(m);
  }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  float target_;
  int64_t warmup_, start_;
  float temperature_, alpha_ce_, alpha_layer_;
  uint64_t seed_;
  TransformerModel* model_ = nullptr;
  CofiMasks masks_;
  std::vector<int64_t> teacher_layers_;
  Tensor lambda_1_, lambda_2_, map_w_, map_b_;
};

// The finalisation: the masks' final values set, folded and pruned away (loss.cofi's
// deterministic masks, loss.sheared's exact target shape).
class CofiPrune final : public Op {
 public:
  CofiPrune(const Params& p, const NodeResolver& r) : masks_name_(p.string("masks")) {
    loss_ = std::dynamic_pointer_cast<MaskedPruning>(r.node(masks_name_));
    SCION_CHECK(loss_, "op.cofi_prune: node '", masks_name_, "' is not a loss.cofi or loss.sheared node (hint: masks "
                "names the pruning loss that trained the target's masks)");
  }
  void apply(Model& target, const StepContext&) override {
    TransformerModel& m = surgery::transformer(target, "op.cofi_prune");
    SCION_CHECK(loss_->gated_model() == &m, "op.cofi_prune: the target has no masks: those of '", masks_name_,
                "' gate another model (hint: target the model named by model = \"...\" in '", masks_name_, "')");
    SCION_CHECK(m.architecture() == loss_->masked_architecture(), "op.cofi_prune: the target was already pruned "
                "or reshaped since '", masks_name_, "' made its masks (hint: apply op.cofi_prune once)");
    loss_->finalize(m);
  }

 private:
  std::string masks_name_;
  std::shared_ptr<MaskedPruning> loss_;
};

std::vector<GraphProblem> check_loss(const GraphView& g, const GraphNodeView& self) {
  std::vector<GraphProblem> out;
  const Params& p = self.params;
  // The student's depth is known here when it is built from parameters (a loaded one's at
  // construction, from its file).
  const GraphNodeView* student = g.node(p.string("model"));
  const size_t asked = p.integers("match_layers").size();
  if (student && p.number("alpha_layer") > 0 && student->params.string("load").empty() &&
      int64_t(asked) > student->params.integer("layers"))
    out.push_back({"match_layers", "matches " + std::to_string(asked) + " teacher layers but the student '" +
                                       student->name + "' has only " + std::to_string(student->params.integer("layers")),
                   "name at most " + std::to_string(student->params.integer("layers")) + " teacher layers"});
  // The teacher layers matched must exist, and layerwise distillation compares hidden states
  // of the same width (a teacher built from parameters; a loaded one's sizes are in its file).
  const GraphNodeView* teacher = g.input_source(self, "teacher_layers");
  if (p.number("alpha_layer") > 0 && teacher && teacher->kind == PluginKind::model && teacher->params.has("layers") &&
      teacher->params.string("load").empty()) {
    const int64_t tl = teacher->params.integer("layers");
    const auto match = p.integers("match_layers");
    for (size_t i = 0; i < match.size(); ++i)
      if (match[i] < 0 || match[i] >= tl)
        out.push_back({"match_layers." + std::to_string(i),
                       "match_layers names teacher layer " + std::to_string(match[i]) + ", but teacher '" + teacher->name +
                           "' has layers 0 to " + std::to_string(tl - 1),
                       "teacher layers are 0-based: 0 <= layer < " + std::to_string(tl)});
    if (student && student->params.string("load").empty() && student->params.has("width") &&
        teacher->params.has("width") && student->params.integer("width") != teacher->params.integer("width"))
      out.push_back({"teacher_layers", "layerwise distillation compares hidden states, but teacher '" + teacher->name +
                                           "' has width " + std::to_string(teacher->params.integer("width")) +
                                           " and student '" + student->name + "' width " +
                                           std::to_string(student->params.integer("width")),
                     "a teacher of the student's width, or alpha_layer = 0 (logit distillation only)"});
  }
  // Layerwise distillation needs both models' per-layer outputs.
  if (p.number("alpha_layer") > 0)
    for (const char* port : {"student_layers", "teacher_layers"}) {
      auto it = self.inputs.find(port);
      if (it == self.inputs.end()) {
        out.push_back({"", std::string("alpha_layer > 0 needs input '") + port + "'",
                       std::string("connect ") + port + " = \"<model>.layers\", or set alpha_layer = 0"});
        continue;
      }
      const GraphNodeView* src = g.input_source(self, port);
      if (src && src->params.all().contains("layer_outputs") && !src->params.boolean("layer_outputs"))
        out.push_back({port, "model '" + src->name + "' does not give its per-layer outputs",
                       "set layer_outputs = true in [nodes." + src->name + "]"});
    }
  return out;
}

PluginEntry cofi_loss_entry() {
  PluginEntry e;
  e.name = "loss.cofi";
  e.kind = PluginKind::loss;
  e.version = "1.0.0";
  e.description = "CoFiPruning: hard-concrete structure masks, Lagrangian sparsity target, (layerwise) distillation";
  e.params = {
      node_param("model", PluginKind::model, "the student model whose structure is pruned").needed(),
      num_param("target", 0.5, "target sparsity of the prunable parameters, in [0, 1)").at_least(0).below(1),
      int_param("warmup", 100, "updates over which the target ramps up from 0 (lagrangian_warmup)").at_least(0),
      int_param("start", 0, "updates of the stage before pruning starts (prepruning_finetune_steps)").at_least(0),
      num_param("temperature", 2.0, "distillation temperature T").above(0),
      num_param("alpha_ce", 0.1, "weight of KL(teacher/T || student/T)·T²").at_least(0),
      num_param("alpha_layer", 0.9, "weight of the layerwise distillation (0: none)").at_least(0),
      int_list_param("match_layers", {}, "teacher layers (0-based) matched top-down; empty: the top of each quarter"),
      num_param("log_alpha_init", 10.0, "initial mean log α of heads, sublayers and hidden dimensions"),
      num_param("ffn_unit_log_alpha_init", 0.0,
                "initial mean log α of FFN units (0: the reference's droprate 0.5, its issue #51; 10: on like the rest)")};
  e.inputs = {{"student", "logits", false, "student logits [B, T, V]"},
              {"teacher", "logits", false, "teacher logits [B, T, V]"},
              {"student_layers", "layers", true, "student per-layer outputs [L, B, T, C] (layer_outputs = true)"},
              {"teacher_layers", "layers", true, "teacher per-layer outputs [L, B, T, C] (layer_outputs = true)"}};
  e.check = check_loss;
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<CofiLoss>(p, r); };
  return e;
}

PluginEntry cofi_prune_entry() {
  PluginEntry e;
  e.name = "op.cofi_prune";
  e.kind = PluginKind::op;
  e.version = "1.0.0";
  e.description = "CoFi's finalisation: deterministic masks folded into the weights, pruned to a smaller dense model";
  e.params = {node_param("masks", PluginKind::loss, "the loss.cofi or loss.sheared node whose masks prune the target").needed()};
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<CofiPrune>(p, r); };
  return e;
}

}  // namespace
}  // namespace scion::prune

using scion::prune::cofi_loss_entry;
using scion::prune::cofi_prune_entry;
SCION_REGISTER_PLUGIN(cofi_loss_entry)
SCION_REGISTER_PLUGIN(cofi_prune_entry)
