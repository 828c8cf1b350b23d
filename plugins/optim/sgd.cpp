// optim.sgd: stochastic gradient descent with optional heavy-ball momentum and decoupled
// weight decay. A plain second optimizer for parameter groups that should not be adaptive:
// Lagrange multipliers stepped by gradient ascent (sign = -1 in their group), whose step must
// follow the constraint's violation itself rather than its normalised sign.
#include <map>

#include "scion/ops.h"
#include "scion/plugin.h"

namespace {

using namespace scion;

class Sgd final : public Optimizer {
 public:
  explicit Sgd(const Params& p) : momentum_(float(p.number("momentum"))), weight_decay_(float(p.number("weight_decay"))) {}
  void step(const nn::NamedTensors& params, double lr, const StepContext&) override {
    NoGradGuard ng;
    for (const auto& [name, p] : params) {
      if (!p.grad().defined()) continue;  // no gradient this step: not stepped
      Tensor d = p.grad();
      if (momentum_ > 0) {
        Tensor& buf = buffers_[name];
        buf = buf.defined() && buf.shape() == p.shape() ? ops::add(ops::mul_scalar(buf, momentum_), d) : d.clone();
        d = buf;
      }
      // p <- p - lr * (d + wd * p): the decay is decoupled from the momentum, as in AdamW.
      Tensor upd = weight_decay_ > 0 ? ops::add(d, ops::mul_scalar(p, weight_decay_)) : d;
      Tensor param = p;
      param.copy_(ops::sub(p, ops::mul_scalar(upd, float(lr))));
    }
  }
  nn::NamedTensors state_tensors() const override {
    nn::NamedTensors out;
    for (const auto& [n, b] : buffers_) out.emplace_back(n + ".momentum_buffer", b);
    return out;
  }
  void load_state_tensors(const nn::NamedTensors& state) override {
    for (const auto& [k, t] : state) {
      const size_t dot = k.rfind('.');
      if (k.substr(dot + 1) == "momentum_buffer") buffers_[k.substr(0, dot)] = t.clone();
    }
  }

 private:
  float momentum_, weight_decay_;
  std::map<std::string, Tensor> buffers_;
};

PluginEntry sgd_entry() {
  PluginEntry e;
  e.name = "optim.sgd";
  e.kind = PluginKind::optimizer;
  e.version = "1.0.0";
  e.description = "SGD with optional momentum and decoupled weight decay";
  e.params = {{"momentum", ParamType::number, Json(0.0), false, "heavy-ball momentum (0 = none)"},
              {"weight_decay", ParamType::number, Json(0.0), false, "decoupled weight decay"}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<Sgd>(p); };
  return e;
}

}  // namespace

SCION_REGISTER_PLUGIN(sgd_entry)
