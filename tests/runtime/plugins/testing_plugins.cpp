// Small plugins the runtime's own tests use: a synthetic regression source, a linear model,
// an MSE loss, a Lagrangian loss that owns its multiplier (a trainable non-model node) and a
// tokenizer of another library than the in-tree ones (GraphView::tokenizer's checks). Each node can sleep and write start/end times to a trace file, so a test
// can see which nodes ran concurrently.
#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include "scion/ops.h"
#include "scion/plugin.h"
#include "scion/random.h"

namespace {
using namespace scion;

class Tracer {
 public:
  explicit Tracer(const Params& p) : file_(p.string("trace")), sleep_ms_(p.integer("sleep_ms")), name_(p.node()) {}
  template <class F>
  auto traced(F&& f) {
    mark("start");
    if (sleep_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    auto r = f();
    mark("end");
    return r;
  }

 private:
  void mark(const char* what) {
    if (file_.empty()) return;
    static std::mutex mu;
    std::lock_guard lock(mu);
    const auto t = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    std::ofstream(file_, std::ios::app) << name_ << " " << what << " " << std::fixed << t << "\n";
  }
  std::string file_;
  int64_t sleep_ms_;
  std::string name_;
};

PluginEntry make(const char* name, PluginKind kind, const char* desc) {
  PluginEntry e;
  e.name = name;
  e.kind = kind;
  e.version = "1.0.0";
  e.description = desc;
  return e;
}

std::vector<ParamSpec> trace_params() {
  return {{"trace", ParamType::string, Json(""), false, "file to append start/end times to"},
          {"sleep_ms", ParamType::integer, Json(0), false, "sleep in every call (concurrency tests)"}};
}

class Synthetic final : public DataSource {
 public:
  explicit Synthetic(const Params& p) : tr_(p), b_(p.integer("batch")), d_(p.integer("dim")), seed_(p.context().seed) {}
  TensorMap next(const StepContext&) override {
    return tr_.traced([&] {
      Tensor x = Tensor::randn({b_, d_}, derive_seed(seed_, uint64_t(count_)));
      Tensor w = Tensor::randn({d_, 1}, 12345);
      ++count_;
      NoGradGuard ng;
      return TensorMap{{"x", x}, {"y", ops::matmul(x, w)}};
    });
  }
  int64_t tokens_per_batch() const override { return b_; }
  Json state() const override { return Json(count_); }
  void restore(const Json& j) override { count_ = json_int(j); }

 private:
  Tracer tr_;
  int64_t b_, d_, count_ = 0;
  uint64_t seed_;
};

class Linear final : public Model {
 public:
  explicit Linear(const Params& p)
      : tr_(p), lin_(p.integer("dim"), 1, true, false, {p.context().seed, 0.1f}), bias_every_(p.integer("bias_every")) {}
  TensorMap forward(const TensorMap& in, const StepContext& ctx) override {
    return tr_.traced([&] {
      // bias_every = k: the bias takes part only when the run's update count is a multiple of
      // k, so in the other steps it gets no gradient at all (as a skipped layer does).
      if (bias_every_ > 0 && ctx.step % bias_every_ != 0)
        return TensorMap{{"y", ops::matmul(in.at("x"), lin_.weight, false, true)}};
      return TensorMap{{"y", lin_.forward(in.at("x"))}};
    });
  }
  nn::Module& module() override { return lin_; }

 private:
  Tracer tr_;
  nn::Linear lin_;
  int64_t bias_every_;
};

class Mse final : public Loss {
 public:
  explicit Mse(const Params& p) : tr_(p) {}
  Tensor compute(const TensorMap& in, const StepContext&, std::map<std::string, double>&) override {
    return tr_.traced([&] {
      Tensor l = ops::mse(in.at("pred"), in.at("target"));
      if (in.count("other")) l = ops::add(l, ops::mul_scalar(ops::mse(in.at("other"), in.at("target")), 0.f));
      return l;
    });
  }

 private:
  Tracer tr_;
};

// L = mse(pred, target) + λ·(mean(pred) − bound): the Lagrangian of "fit, subject to
// mean(pred) <= bound". The multiplier λ is the node's own parameter; trained by ascent
// (sign = -1 in its parameter group) it grows while the constraint is violated.
class Lagrangian final : public Loss {
 public:
  explicit Lagrangian(const Params& p) : bound_(float(p.number("bound"))) {
    lambda_ = Tensor::full({1}, p.number("init"));
    lambda_.set_requires_grad(true);
  }
  Tensor compute(const TensorMap& in, const StepContext&, std::map<std::string, double>& metrics) override {
    Tensor violation = ops::add_scalar(ops::mean_all(in.at("pred")), -bound_);
    metrics["violation"] = violation.item();
    metrics["lambda"] = lambda_.item();
    return ops::add(ops::mse(in.at("pred"), in.at("target")), ops::sum_all(ops::mul(lambda_, violation)));
  }
  nn::NamedTensors owned_parameters() override { return {{"lambda", lambda_}}; }

 private:
  float bound_;
  Tensor lambda_;
};

// Records the training loop's hooks (begin_step, end_step, end_stage, observe) as lines of a
// trace file; its state counts the stage ends, so a resume shows whether they were saved.
class Hooks final : public Loss {
 public:
  explicit Hooks(const Params& p) : file_(p.string("trace")) {}
  Tensor compute(const TensorMap& in, const StepContext& ctx, std::map<std::string, double>& metrics) override {
    mark("compute " + std::to_string(ctx.step));
    metrics["stage_ends"] = double(stage_ends_);
    return ops::mse(in.at("pred"), in.at("target"));
  }
  void begin_step(const StepContext& ctx) override { mark("begin_step " + std::to_string(ctx.step)); }
  void end_step(const StepContext& ctx) override { mark("end_step " + std::to_string(ctx.step)); }
  void end_stage(const StepContext& ctx) override {
    ++stage_ends_;
    mark("end_stage " + ctx.stage);
  }
  void observe(const std::map<std::string, double>& m) override {
    for (const auto& [k, v] : m) mark("observe " + k + "=" + std::to_string(int64_t(v)));
  }
  Json state() const override { return Json(stage_ends_); }
  void restore(const Json& j) override { stage_ends_ = json_int(j); }

 private:
  void mark(const std::string& what) {
    if (!file_.empty()) std::ofstream(file_, std::ios::app) << what << "\n";
  }
  std::string file_;
  int64_t stage_ends_ = 0;
};

// An evaluator that reports the number of updates done (observe() tests).
class StepCount final : public Evaluator {
 public:
  std::map<std::string, double> evaluate(const StepContext& ctx) override { return {{"step", double(ctx.step)}}; }
};

// A prompt injector: x + offset, the offset a trainable vector the node owns.
class Shift final : public PromptInjector {
 public:
  explicit Shift(const Params& p) {
    offset_ = Tensor::zeros({1, p.integer("dim")});
    offset_.set_requires_grad(true);
  }
  TensorMap inject(const TensorMap& in, const StepContext&) override {
    TensorMap out = in;
    out["x"] = ops::add(in.at("x"), offset_);
    return out;
  }
  nn::NamedTensors owned_parameters() override { return {{"offset", offset_}}; }

 private:
  Tensor offset_;
};

// Bytes as ids folded into a vocabulary of `vocab` ids, the last one the end of text: a
// tokenizer the in-tree graph checks know nothing of but what scion::Tokenizer says.
class FoldedBytes final : public Tokenizer {
 public:
  explicit FoldedBytes(const Params& p) : vocab_(p.integer("vocab")) {}
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(int32_t(c % (vocab_ - 1)));
    return ids;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::string s;
    for (int32_t id : ids) s += id == eot_id() ? '\n' : char(id);
    return s;
  }
  int64_t vocab_size() const override { return vocab_; }
  int32_t eot_id() const override { return int32_t(vocab_ - 1); }

 private:
  int64_t vocab_;
};

PluginEntry tokenizer_entry() {
  PluginEntry e = make("test.tokenizer", PluginKind::tokenizer, "bytes folded into `vocab` ids (the last: end of text)");
  e.params = {int_param("vocab", 300, "ids, the end of text included").at_least(2)};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<FoldedBytes>(p); };
  return e;
}

PluginEntry hooks_entry() {
  PluginEntry e = make("test.hooks", PluginKind::loss, "MSE that traces the training loop's hooks");
  e.params = {{"trace", ParamType::string, Json(""), false, "file to append hook calls to"}};
  e.inputs = {{"pred", "values:f32[B,1]", false, ""}, {"target", "values:f32[B,1]", false, ""}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<Hooks>(p); };
  return e;
}
PluginEntry step_count_entry() {
  PluginEntry e = make("test.step_count", PluginKind::evaluator, "reports the updates done");
  e.factory = [](const Params&, const NodeResolver&) { return std::make_shared<StepCount>(); };
  return e;
}
PluginEntry shift_entry() {
  PluginEntry e = make("test.shift", PluginKind::prompt, "adds a trainable offset to x");
  e.params = {{"dim", ParamType::integer, Json(4), false, "features"}};
  e.inputs = {{"x", "features:f32[B,{dim}]", false, ""}, {"y", "values:f32[B,1]", true, ""}};
  e.outputs = {{"x", "features:f32[B,{dim}]", false, ""}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<Shift>(p); };
  return e;
}

PluginEntry synthetic_entry() {
  PluginEntry e = make("test.synthetic", PluginKind::data, "seeded linear-regression batches");
  e.params = trace_params();
  e.params.push_back({"batch", ParamType::integer, Json(16), false, "rows"});
  e.params.push_back({"dim", ParamType::integer, Json(4), false, "features"});
  // A default of nested arrays and tables (the resolved graph must keep it whole).
  e.params.push_back({"layout", ParamType::any,
                      json_parse(R"({"groups": [[1, 2], [3]], "names": [{"a": [0.5]}], "deep": [[["x"]]]})"), false,
                      "unused: a nested default"});
  e.outputs = {{"x", "features:f32[{batch},{dim}]", false, ""}, {"y", "values:f32[{batch},1]", false, ""}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<Synthetic>(p); };
  return e;
}
PluginEntry linear_entry() {
  PluginEntry e = make("test.linear", PluginKind::model, "a linear model");
  e.params = trace_params();
  e.params.push_back({"dim", ParamType::integer, Json(4), false, "features"});
  e.params.push_back({"bias_every", ParamType::integer, Json(0), false, "use the bias only every k-th update (0 = always)"});
  e.inputs = {{"x", "features:f32[B,{dim}]", false, ""}};
  e.outputs = {{"y", "values:f32[B,1]", false, ""}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<Linear>(p); };
  return e;
}
PluginEntry mse_entry() {
  PluginEntry e = make("test.mse", PluginKind::loss, "mean squared error");
  e.params = trace_params();
  e.inputs = {{"pred", "values:f32[B,1]", false, ""},
              {"target", "values:f32[B,1]", false, ""},
              {"other", "values:f32[B,1]", true, ""}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<Mse>(p); };
  return e;
}

PluginEntry lagrangian_entry() {
  PluginEntry e = make("test.lagrangian", PluginKind::loss, "MSE plus a trainable multiplier times mean(pred) - bound");
  e.params = {{"bound", ParamType::number, Json(0.0), false, "the constraint mean(pred) <= bound"},
              {"init", ParamType::number, Json(0.0), false, "initial multiplier"}};
  e.inputs = {{"pred", "values:f32[B,1]", false, ""}, {"target", "values:f32[B,1]", false, ""}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<Lagrangian>(p); };
  return e;
}

}  // namespace

SCION_REGISTER_PLUGIN(lagrangian_entry)
SCION_REGISTER_PLUGIN(synthetic_entry)
SCION_REGISTER_PLUGIN(linear_entry)
SCION_REGISTER_PLUGIN(mse_entry)
SCION_REGISTER_PLUGIN(hooks_entry)
SCION_REGISTER_PLUGIN(step_count_entry)
SCION_REGISTER_PLUGIN(shift_entry)
SCION_REGISTER_PLUGIN(tokenizer_entry)
SCION_PLUGIN_LIBRARY()
