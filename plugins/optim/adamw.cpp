// optim.adamw: AdamW with decoupled weight decay (PyTorch's update order). Moments are kept
// per parameter name; a parameter whose shape changed (a grown model) restarts from zero
// moments, an unchanged one keeps them (MSG's "transfer" policy for old parameters). The step
// count is per parameter: one that got no gradient in some steps has taken fewer.
#include <map>

#include "scion/ops.h"
#include "scion/plugin.h"

namespace {

using namespace scion;

class AdamW final : public Optimizer {
 public:
  explicit AdamW(const Params& p) {
    cfg_.beta1 = float(p.number("beta1"));
    cfg_.beta2 = float(p.number("beta2"));
    cfg_.eps = float(p.number("eps"));
    cfg_.weight_decay = float(p.number("weight_decay"));
    no_decay_1d_ = p.boolean("no_decay_1d");
  }
  bool takes_grad_scale() const override { return true; }
  void step(const nn::NamedTensors& params, double lr, const StepContext& ctx) override {
    for (const auto& [name, p] : params) {
      // A parameter without a gradient this step is not stepped (PyTorch skips grad None):
      // its moments, its step count and its value stay as they are.
      if (!p.grad().defined()) continue;
      Slot& s = slots_[name];
      if (!s.m.defined() || s.m.shape() != p.shape()) {
        // The moments live where the parameter does (cuda:N on a GPU run).
        s.m = Tensor::zeros(p.shape(), DType::f32, p.device());
        s.v = Tensor::zeros(p.shape(), DType::f32, p.device());
        s.t = 0;
      } else if (!(s.m.device() == p.device())) {
        // Restored from a checkpoint (read on the CPU) for a parameter on another device.
        s.m = s.m.to(p.device());
        s.v = s.v.to(p.device());
      }
      ++s.t;
      ops::AdamWConfig c = cfg_;
      c.lr = float(lr);
      c.grad_scale = ctx.grad_scale;  // the clip factor, applied in the update's own pass
      // Biases and LayerNorm weights are conventionally not decayed (GPT-2, BERT recipes).
      if (no_decay_1d_ && p.dim() < 2) c.weight_decay = 0.f;
      Tensor param = p;
      ops::adamw_step(param, p.grad(), s.m, s.v, s.t, c);
    }
  }
  nn::NamedTensors state_tensors() const override {
    nn::NamedTensors out;
    for (const auto& [n, s] : slots_) {
      out.emplace_back(n + ".exp_avg", s.m);
      out.emplace_back(n + ".exp_avg_sq", s.v);
      out.emplace_back(n + ".step", Tensor::from_vector_i64({s.t}, {1}));
    }
    return out;
  }
  void load_state_tensors(const nn::NamedTensors& state) override {
    for (const auto& [k, t] : state) {
      const size_t dot = k.rfind('.');
      const std::string name = k.substr(0, dot), what = k.substr(dot + 1);
      Slot& s = slots_[name];
      if (what == "exp_avg") s.m = t.clone();
      else if (what == "exp_avg_sq") s.v = t.clone();
      else if (what == "step") s.t = t.to_vector_i64()[0];
    }
  }

 private:
  struct Slot {
    Tensor m, v;
    int64_t t = 0;
  };
  ops::AdamWConfig cfg_;
  bool no_decay_1d_ = true;
  std::map<std::string, Slot> slots_;
};

PluginEntry adamw_entry() {
  PluginEntry e;
  e.name = "optim.adamw";
  e.kind = PluginKind::optimizer;
  e.version = "1.0.0";
  e.description = "AdamW with decoupled weight decay; moments kept by parameter name";
  e.params = {num_param("beta1", 0.9, "first-moment decay").at_least(0).below(1),
              num_param("beta2", 0.999, "second-moment decay").at_least(0).below(1),
              num_param("eps", 1e-8, "denominator epsilon").above(0),
              num_param("weight_decay", 0.01, "decoupled weight decay").at_least(0),
              bool_param("no_decay_1d", true, "skip decay for biases and LayerNorm weights")};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<AdamW>(p); };
  return e;
}

}  // namespace

SCION_REGISTER_PLUGIN(adamw_entry)
SCION_PLUGIN_LIBRARY()
