// loss.inherit: the knowledge-inheritance loss as a node (the scion_inherit plugin library).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

#include "cache_check.h"
#include "inherit.h"
#include "scion/ops.h"
#include "scion/plugin.h"

namespace scion::inherit {
namespace {

class InheritNode final : public Loss {
 public:
  explicit InheritNode(const Params& p)
      : alpha_(AlphaSchedule{AlphaSchedule::parse(p.string("schedule")), p.number("alpha"), p.integer("steps")}),
        tau_(float(p.number("temperature"))),
        ignore_(p.integer("ignore_index")),
        student_metric_(p.string("student_metric")),
        teacher_metric_(p.string("teacher_metric")),
        rest_(topk_rest_from_string(p.string("topk_rest"))) {
    if (!p.string("cache").empty()) {
      cache_ = std::make_unique<teacher_cache::Reader>(p.string("cache"), p.context().rank);
      const teacher_cache::Manifest& m = cache_->manifest();
      // data.text deals a step's global batch of batch_size × world windows over the ranks:
      // another world size reads other batches.
      SCION_CHECK(m.world == p.context().world, "loss.inherit: teacher cache '", p.string("cache"), "' was written for ",
                  m.world, " rank(s), this run has ", p.context().world,
                  " (each rank reads other batches at another world size; hint: scion teacher-cache --world ",
                  p.context().world, ")");
      if (m.json.contains("teacher_forward_flops")) cache_flops_ = json_number(m.json.at("teacher_forward_flops"));
      SCION_CHECK(std::abs(m.temperature - tau_) < 1e-6, "loss.inherit: teacher cache '", p.string("cache"),
                  "' holds the teacher at temperature ", m.temperature, ", the loss's is ", tau_);
    }
    SCION_CHECK(tau_ > 0.f, "loss.inherit: temperature must be > 0, got ", tau_);
    SCION_CHECK(p.number("alpha") >= 0.0 && p.number("alpha") <= 1.0, "loss.inherit: alpha must be in [0, 1], got ", p.number("alpha"));
    SCION_CHECK(p.string("schedule") != "linear" || p.integer("steps") > 0, "loss.inherit: a linear schedule needs steps > 0, got ",
                p.integer("steps"));
  }
  Tensor compute(const TensorMap& in, const StepContext& ctx, std::map<std::string, double>& m) override {
    const double a = alpha_.at(updates_++);
    m["alpha"] = a;
    // The teacher's forward passes, spent once when the cache was written: shown beside the
    // run's own FLOPs (which count the student alone), never added to them.
    if (cache_) m["teacher_cache_flops"] = cache_flops_;
    if (a == 0.0) {  // inheritance is over: the teacher did not run (idle_inputs), plain LM loss
      Tensor lm = ops::cross_entropy(in.at("student"), in.at("targets"), ignore_);
      m["lm"] = lm.item();
      return lm;
    }
    if (cache_) return cached(in, ctx, a, m);
    InheritTerms t = inherit_loss(in.at("student"), in.at("teacher"), in.at("targets"), a, tau_, ignore_);
    m["lm"] = t.lm.item();
    m["kl"] = t.kl.item();
    return t.total;
  }
  std::vector<std::string> idle_inputs(const StepContext&) const override {
    if (alpha_.at(updates_) == 0.0) return {"teacher"};  // asked before this step's compute()
    return {};
  }
  std::vector<std::string> needed_metrics() const override {
    if (!alpha_.until_surpassed()) return {};
    return {student_metric_, teacher_metric_};
  }
  void observe(const std::map<std::string, double>& eval) override {
    if (!alpha_.until_surpassed() || alpha_.surpassed()) return;
    auto s = eval.find(student_metric_), t = eval.find(teacher_metric_);
    if (s == eval.end() || t == eval.end()) {
      std::string have;
      for (const auto& [k, v] : eval) have += (have.empty() ? "" : ", ") + k;
      throw Error("loss.inherit: schedule 'until_surpassed' compares evaluator metrics '" + student_metric_ +
                  "' and '" + teacher_metric_ + "', but this evaluation gave " + (have.empty() ? "none" : have) +
                  " (hint: add an eval.ppl node with model = <student> and teacher = <teacher> to the stage's "
                  "evaluators and name its metrics in student_metric / teacher_metric)");
    }
    if (alpha_.observe_validation(s->second, t->second))
      std::fprintf(stderr, "loss.inherit: the student's validation loss %.4f fell below the teacher's %.4f: inheritance stops\n",
                   s->second, t->second);
  }
  Json state() const override {
    Json j;
    j["surpassed"] = Json(alpha_.surpassed());
    j["updates"] = Json(updates_);
    return j;
  }
  void restore(const Json& j) override {
    alpha_.set_surpassed(json_bool(j.at("surpassed")));
    SCION_CHECK(j.contains("updates"), "loss.inherit: this checkpoint predates the saved update count of alpha's ",
                "schedule (hint: resume it with the Scion build that wrote it, or start the run afresh)");
    updates_ = json_int(j.at("updates"));
  }

 private:
  // The teacher's targets of this update from the cache, checked against the batch's targets.
  Tensor cached(const TensorMap& in, const StepContext& ctx, double a, std::map<std::string, double>& m) {
    const Tensor& s = in.at("student");
    const Tensor& targets = in.at("targets");
    SCION_CHECK(s.size(-1) == cache_->manifest().vocab, "loss.inherit: the student's logits have ", s.size(-1),
                " columns, the teacher cache's vocabulary has ", cache_->manifest().vocab, " ids");
    const teacher_cache::Targets t = cache_->at(ctx.step, teacher_cache::targets_hash(targets));
    Tensor kl = cached_kl(s, t, cache_->manifest().layout.format, targets, tau_, rest_, ignore_);
    Tensor lm = ops::cross_entropy(s.reshape({-1, s.size(-1)}), targets.reshape({-1}), ignore_);
    m["lm"] = lm.item();
    m["kl"] = kl.item();
    return ops::add(ops::mul_scalar(lm, float(1.0 - a)), ops::mul_scalar(kl, float(a)));
  }
  Alpha alpha_;
  // α is keyed to the optimizer updates this loss has taken part in: the run's updates since
  // it first trained the student (fairseq's num_updates in the reference code), continuing
  // across stages that share this node and across resume.
  int64_t updates_ = 0;
  float tau_;
  int64_t ignore_;
  std::string student_metric_, teacher_metric_;
  TopkRest rest_;
  std::unique_ptr<teacher_cache::Reader> cache_;  // the teacher's targets, when read from a cache
  double cache_flops_ = 0;
};

PluginEntry inherit_entry() {
  PluginEntry e;
  e.name = "loss.inherit";
  e.kind = PluginKind::loss;
  e.version = "1.0.0";
  e.description = "knowledge inheritance: (1-a) CE + a tau^2 KL(teacher || student), a decaying with updates";
  e.params = {str_param("schedule", "linear", "how alpha decays").one_of({"constant", "linear", "until_surpassed"}),
              num_param("alpha", 1.0, "alpha at the first update").in_range(0, 1),
              int_param("steps", 1000, "linear: updates until alpha reaches 0").at_least(0),
              num_param("temperature", 2.0, "softmax temperature tau (reference code: 2)").above(0),
              int_param("ignore_index", -100, "target id of rows that do not count"),
              str_param("student_metric", "ppl/loss", "until_surpassed: evaluator metric of the student's validation loss"),
              str_param("teacher_metric", "ppl/teacher_loss",
                        "until_surpassed: evaluator metric of the teacher's validation loss"),
              str_param("cache", "", "teacher cache folder (scion teacher-cache) read in place of input 'teacher'"),
              str_param("topk_rest", "bucket", "top-K cache: the teacher's mass outside the K as one more outcome "
                                               "(bucket) or dropped by renormalising the K")
                  .one_of({"bucket", "renormalize"})};
  e.inputs = {{"student", "logits:f32[B,T,V]", false, "student logits [B, T, V]"},
              {"teacher", "logits:f32[B,T,V]", true, "teacher logits [B, T, V] (a frozen model node); or `cache`"},
              {"targets", "targets:i64[B,T]", false, "targets [B, T] (-100 = none)"}};
  // What the constructor and the executor (needed_metrics) refuse before the first update.
  e.check = [](const GraphView& g, const GraphNodeView& self) {
    std::vector<GraphProblem> out = check_cache(g, self);
    const Params& p = self.params;
    const std::string schedule = p.string("schedule");
    if (schedule == "linear" && p.integer("steps") <= 0)
      out.push_back({"steps", "a linear schedule needs steps > 0, got " + std::to_string(p.integer("steps")),
                     "steps: the updates over which alpha falls to 0"});
    if (schedule != "until_surpassed") return out;
    for (size_t si = 0; si < g.stages.size(); ++si) {
      const GraphStageView& s = g.stages[si];
      const auto used = std::find(s.losses.begin(), s.losses.end(), self.name);
      if (used == s.losses.end()) continue;
      for (const char* key : {"student_metric", "teacher_metric"}) {
        const std::string metric = p.string(key);
        const size_t slash = metric.find('/');
        const std::string ev = metric.substr(0, slash);
        if (slash == std::string::npos) {
          out.push_back({key, std::string(key) + " '" + metric + "' names no evaluator",
                         "metrics are named <evaluator node>/<key>, e.g. ppl/loss"});
          continue;
        }
        const bool there = s.eval_every > 0 && std::find(s.evaluators.begin(), s.evaluators.end(), ev) != s.evaluators.end();
        if (!there) {
          out.push_back({"eval", "stage '" + s.name + "' uses loss '" + self.name + "', which acts on the evaluation metric '" +
                                     metric + "', but the stage does not evaluate with '" + ev + "'",
                         "metrics are named <evaluator>/<key>; add eval = { every = N, evaluators = [\"" + ev +
                             "\"] } to the stage",
                         int(si)});
          break;  // one problem per stage
        }
        // eval.ppl gives teacher_loss only when it scores a teacher.
        const GraphNodeView* en = g.node(ev);
        if (en && en->plugin == "eval.ppl" && metric.substr(slash + 1).find("teacher_loss") != std::string::npos &&
            !en->params.has("teacher"))
          out.push_back({key, std::string(key) + " '" + metric + "' needs '" + ev + "' to score a teacher, but it has none",
                         "set teacher = \"<the teacher model node>\" on node '" + ev + "'"});
      }
    }
    return out;
  };
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<InheritNode>(p); };
  return e;
}

}  // namespace
}  // namespace scion::inherit

using scion::inherit::inherit_entry;
SCION_REGISTER_PLUGIN(inherit_entry)
