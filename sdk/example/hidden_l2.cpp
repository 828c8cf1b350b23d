// An example third-party loss: an L2 penalty on hidden states. docs/adding-a-method.md shows
// the region between the snippet markers; tests/docs/check_docs.py fails if the two differ.
// [snippet: hidden_l2]
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
    metrics["raw"] = l.item() / scale_;  // logged as "<node>/raw" in metrics.jsonl
    return l;                            // a scalar; gradients flow through ops::
  }

 private:
  float scale_;
};

PluginEntry hidden_l2_entry() {
  PluginEntry e;
  e.name = "loss.hidden_l2";  // kind.name; `scion plugins loss.hidden_l2` shows the entry
  e.kind = PluginKind::loss;
  e.version = "0.1.0";
  e.description = "L2 penalty on hidden states (an example third-party plugin)";  // one line
  e.params = {num_param("scale", 1e-3, "penalty weight").at_least(0)};
  e.inputs = {{"hidden", "hidden:f32[B,T,C]", false, "hidden states [B, T, C]"}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<HiddenL2>(p); };
  return e;
}
}  // namespace

SCION_REGISTER_PLUGIN(hidden_l2_entry)  // once per plugin
SCION_PLUGIN_LIBRARY()                  // once per library
// [end snippet: hidden_l2]
