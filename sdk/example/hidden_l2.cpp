// An example third-party plugin: an L2 penalty on hidden states (docs/plugins.md).
#include "scion/ops.h"
#include "scion/plugin.h"

namespace {
using namespace scion;

class HiddenL2 final : public Loss {
 public:
  explicit HiddenL2(const Params& p) : scale_(float(p.number("scale"))) {}
  Tensor compute(const TensorMap& in, const StepContext&, std::map<std::string, double>& metrics) override {
    Tensor h = in.at("hidden");
    Tensor l = ops::mul_scalar(ops::mean_all(ops::mul(h, h)), scale_);
    metrics["raw"] = l.item() / scale_;
    return l;
  }

 private:
  float scale_;
};

PluginEntry hidden_l2_entry() {
  PluginEntry e;
  e.name = "loss.hidden_l2";
  e.kind = PluginKind::loss;
  e.version = "0.1.0";
  e.description = "L2 penalty on hidden states (an example third-party plugin)";
  e.params = {{"scale", ParamType::number, Json(1e-3), false, "penalty weight"}};
  e.inputs = {{"hidden", "hidden", false, "hidden states [B, T, C]"}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<HiddenL2>(p); };
  return e;
}
}  // namespace

SCION_REGISTER_PLUGIN(hidden_l2_entry)
SCION_PLUGIN_LIBRARY()
