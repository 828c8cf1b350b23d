// loss.inherit: the knowledge-inheritance loss as a node (the scion_inherit plugin library).
#include <cstdio>

#include "inherit.h"
#include "scion/ops.h"
#include "scion/plugin.h"

namespace scion::inherit {
namespace {

class InheritNode final : public Loss {
 public:
  explicit InheritNode(const Params& p)
      : alpha_(AlphaSchedule{AlphaSchedule::parse(p.s("schedule")), p.f("alpha"), p.i("steps")}),
        tau_(float(p.f("temperature"))),
        ignore_(p.i("ignore_index")),
        student_metric_(p.s("student_metric")),
        teacher_metric_(p.s("teacher_metric")) {
    SCION_CHECK(tau_ > 0.f, "loss.inherit: temperature must be > 0, got ", tau_);
    SCION_CHECK(p.f("alpha") >= 0.0 && p.f("alpha") <= 1.0, "loss.inherit: alpha must be in [0, 1], got ", p.f("alpha"));
    SCION_CHECK(p.s("schedule") != "linear" || p.i("steps") > 0, "loss.inherit: a linear schedule needs steps > 0, got ",
                p.i("steps"));
  }
  Tensor compute(const TensorMap& in, const StepContext&, std::map<std::string, double>& m) override {
    const double a = alpha_.at(updates_++);
    m["alpha"] = a;
    if (a == 0.0) {  // inheritance is over: the teacher did not run (idle_inputs), plain LM loss
      Tensor lm = ops::cross_entropy(in.at("student"), in.at("targets"), ignore_);
      m["lm"] = lm.item();
      return lm;
    }
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
    alpha_.set_surpassed(j.at("surpassed").as_bool());
    SCION_CHECK(j.contains("updates"), "loss.inherit: this checkpoint predates the saved update count of alpha's ",
                "schedule (hint: resume it with the Scion build that wrote it, or start the run afresh)");
    updates_ = j.at("updates").as_int();
  }

 private:
  Alpha alpha_;
  // α is keyed to the optimizer updates this loss has taken part in: the run's updates since
  // it first trained the student (fairseq's num_updates in the reference code), continuing
  // across stages that share this node and across resume.
  int64_t updates_ = 0;
  float tau_;
  int64_t ignore_;
  std::string student_metric_, teacher_metric_;
};

PluginEntry inherit_entry() {
  PluginEntry e;
  e.name = "loss.inherit";
  e.kind = PluginKind::loss;
  e.version = "1.0.0";
  e.description = "knowledge inheritance: (1-a) CE + a tau^2 KL(teacher || student), a decaying with updates";
  e.params = {{"schedule", ParamType::string, Json("linear"), false, "constant | linear | until_surpassed"},
              {"alpha", ParamType::number, Json(1.0), false, "alpha at the first update"},
              {"steps", ParamType::integer, Json(1000), false, "linear: updates until alpha reaches 0"},
              {"temperature", ParamType::number, Json(2.0), false, "softmax temperature tau (reference code: 2)"},
              {"ignore_index", ParamType::integer, Json(-100), false, "target id of rows that do not count"},
              {"student_metric", ParamType::string, Json("ppl/loss"), false,
               "until_surpassed: evaluator metric of the student's validation loss"},
              {"teacher_metric", ParamType::string, Json("ppl/teacher_loss"), false,
               "until_surpassed: evaluator metric of the teacher's validation loss"}};
  e.inputs = {{"student", "logits", false, "student logits [B, T, V]"},
              {"teacher", "logits", false, "teacher logits [B, T, V] (a frozen model node)"},
              {"targets", "targets", false, "targets [B, T] (-100 = none)"}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<InheritNode>(p); };
  return e;
}

}  // namespace
}  // namespace scion::inherit

using scion::inherit::inherit_entry;
SCION_REGISTER_PLUGIN(inherit_entry)
