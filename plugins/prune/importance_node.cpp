// op.prune_importance: Minitron's one-shot pruning. At its stage's start the target runs
// forward over calibration batches (a data node's validation batches) with its blocks'
// activations recorded, every head, FFN unit, hidden channel and layer is scored
// (importance.h), and the model is cut to the target shape. Retraining with logit
// distillation from the unpruned model is the graph's next stage (loss.inherit against a
// frozen copy of it; graphs/minitron_gpt.toml).
#include <cmath>

#include "graph_shape.h"
#include "importance.h"
#include "scion/data.h"
#include "scion/files.h"
#include "scion/plugin.h"

namespace scion::prune {
namespace {

PruneTarget target_of(const Params& p) {
  return {p.integer("layers"), p.integer("heads"), p.integer("kv_heads"), p.integer("ffn"), p.integer("width")};
}

class PruneImportance final : public Op {
 public:
  PruneImportance(const Params& p, const NodeResolver& r)
      : data_name_(p.string("data")), batches_(p.integer("batches")), target_(target_of(p)), seed_(p.context().seed) {
    data_ = r.get<DataSource>(data_name_);
  }
  void apply(Model& target, const StepContext& ctx) override {
    TransformerModel& m = surgery::transformer(target, "op.prune_importance");
    const std::string problem = target_problem(m.architecture(), target_);
    SCION_CHECK(problem.empty(), "op.prune_importance: ", problem);
    const std::vector<TensorMap> batches = data_->validation(batches_);
    SCION_CHECK(int64_t(batches.size()) >= batches_, "op.prune_importance: data '", data_name_, "' has ", batches.size(),
                " validation batches, fewer than batches = ", batches_, " (hint: fewer calibration batches, or more valid_files)");
    ImportanceAccumulator acc(m.architecture());
    NoGradGuard ng;
    StepContext c = ctx;
    c.training = false;
    const std::set<std::string> none;  // no output wanted: the blocks' activations are what is read
    c.wanted_outputs = &none;
    for (int64_t b = 0; b < batches_; ++b) {
      nn::ActivationRecord rec;
      {
        nn::RecordActivations on(rec);
        target.forward({{"tokens", batches[size_t(b)].at("tokens")}}, c);
      }
      acc.add(rec);
    }
    prune_to_target(m, acc.scores(), target_, seed_, "op.prune_importance");
  }

 private:
  std::string data_name_;
  int64_t batches_;
  PruneTarget target_;
  uint64_t seed_;
  std::shared_ptr<DataSource> data_;
};

std::vector<GraphProblem> check(const GraphView& g, const GraphNodeView& self) {
  std::vector<GraphProblem> out;
  const Params& p = self.params;
  const auto in = self.inputs.find("target");
  const GraphNodeView* m = in == self.inputs.end() ? nullptr : g.node(in->second);
  if (m && m->plugin == "model.bert")
    out.push_back({"", "op.prune_importance scores each sublayer's norm output, which post-norm BERT does not have",
                   "a pre-norm model: model.gpt or model.llama"});
  else if (const auto a = m ? graph_architecture(*m) : std::nullopt) {
    const std::string problem = target_problem(*a, target_of(p));
    if (!problem.empty()) out.push_back({"", problem, "a target shape smaller than the model's, each field 0 or at most the model's"});
  }
  // The calibration batches are the data node's validation batches: enough of them must exist.
  const GraphNodeView* d = g.node(p.string("data"));
  if (d && d->plugin == "data.text") {
    const auto valid = d->params.strings("valid_files");
    if (valid.empty()) {
      out.push_back({"data", "data '" + d->name + "' has no valid_files: the calibration batches are its validation batches",
                     "valid_files = [\"data/corpus/*/valid.txt\"] in [nodes." + d->name + "]"});
    } else if (g.tokenizer) {
      std::shared_ptr<Tokenizer> tok;
      try {
        tok = g.tokenizer(d->params.string("tokenizer"));
      } catch (const std::exception&) {  // the tokenizer node's own check says why
      }
      if (tok && tok->eot_id() >= 0) {
        const auto t = tok;
        const int64_t T = d->params.integer("seq_len"), B = d->params.integer("batch_size");
        const int64_t windows = int64_t(data::TextStream::all_windows(
                                            files::expand(valid, "op.prune_importance"),
                                            [t](std::string_view s) { return t->encode(s); }, tok->eot_id(), T)
                                            .size());
        const int64_t have = (windows + B - 1) / B;
        if (p.integer("batches") > have)
          out.push_back({"batches", "batches = " + std::to_string(p.integer("batches")) + " calibration batches, but data '" +
                                        d->name + "' has " + std::to_string(have) + " validation batches (" +
                                        std::to_string(windows) + " windows of " + std::to_string(T) + " tokens)",
                         "batches <= " + std::to_string(have)});
      }
    }
  }
  return out;
}

PluginEntry prune_importance_entry() {
  PluginEntry e;
  e.name = "op.prune_importance";
  e.kind = PluginKind::op;
  e.version = "1.0.0";
  e.description = "Minitron: scores heads, FFN units, hidden channels and layers by their activations on calibration "
                  "batches and prunes to a target shape in one shot";
  e.params = {node_param("data", PluginKind::data, "the data node whose validation batches calibrate the scores").needed(),
              int_param("batches", 8, "calibration batches").at_least(1),
              int_param("layers", 0, "layers to keep (the least important go; 0 = all)").at_least(0),
              int_param("heads", 0, "query heads per layer (grouped-query layers: whole key/value groups; 0 = all)").at_least(0),
              int_param("kv_heads", 0, "key/value heads per layer (0 = heads / the model's group size)").at_least(0),
              int_param("ffn", 0, "FFN units per layer (0 = all)").at_least(0),
              int_param("width", 0, "hidden channels (0 = all)").at_least(0)};
  e.check = check;
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<PruneImportance>(p, r); };
  return e;
}

}  // namespace
}  // namespace scion::prune

using scion::prune::prune_importance_entry;
SCION_REGISTER_PLUGIN(prune_importance_entry)
