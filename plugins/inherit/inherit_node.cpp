// loss.inherit: the knowledge-inheritance loss as a node (built into scion_lm).
#include "inherit.h"
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
    SCION_CHECK(tau_ > 0.f, "loss.inherit: temperature must be > 0");
  }
  Tensor compute(const TensorMap& in, const StepContext& ctx, std::map<std::string, double>& m) override {
    const double a = alpha_.at(ctx.stage_step);  // updates of the student since its stage began
    InheritTerms t = inherit_loss(in.at("student"), in.at("teacher"), in.at("targets"), a, tau_, ignore_);
    m["alpha"] = a;
    m["lm"] = t.lm.item();
    m["kl"] = t.kl.item();
    return t.total;
  }
  void observe(const std::map<std::string, double>& eval) override {
    auto s = eval.find(student_metric_), t = eval.find(teacher_metric_);
    if (s != eval.end() && t != eval.end()) alpha_.observe_validation(s->second, t->second);
  }
  Json state() const override {
    Json j;
    j["surpassed"] = Json(alpha_.surpassed());
    return j;
  }
  void restore(const Json& j) override { alpha_.set_surpassed(j.at("surpassed").as_bool()); }

 private:
  Alpha alpha_;
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
