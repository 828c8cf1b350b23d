// An example third-party structural op: removes chosen layers of a transformer model when a
// stage starts, through the SDK's surgery interface only (docs/adding-a-method.md shows the
// region between the snippet markers; tests/docs/check_docs.py fails if the two differ). It knows
// nothing of model.gpt or model.bert: any model plugin that implements scion::TransformerModel
// can be its target.
//
//   [[stages]]
//   name = "shallow"
//   ops = [{ plugin = "op.drop_layers", target = "model", drop = [1] }]
#include <algorithm>
#include <string>
#include <vector>

#include "scion/plugin.h"
#include "scion/surgery.h"

namespace {
using namespace scion;

constexpr const char* kWho = "op.drop_layers";

// `drop` is a list of layer indices. Only its form is checked here; whether the layers exist
// depends on the model as it is when the stage starts (an earlier op may have changed it).
std::vector<int64_t> layer_list(const Json& v) {
  SCION_CHECK(v.is_array(), kWho, ": drop must be a list of layer indices, e.g. drop = [1, 2]");
  std::vector<int64_t> out;
  for (const Json& e : json_array(v)) {
    SCION_CHECK(e.is_number() && json_number(e) == double(int64_t(json_number(e))), kWho,
                ": drop must be a list of layer indices, got ", json_dump(e), " in it");
    out.push_back(json_int(e));
  }
  SCION_CHECK(!out.empty(), kWho, ": drop is empty; name the layers to remove (hint: drop = [1])");
  return out;
}

class DropLayers final : public Op {
 public:
  explicit DropLayers(const Params& p) : drop_(layer_list(p.raw("drop"))), seed_(p.context().seed) {}

  // [snippet: drop_layers_apply]
  void apply(Model& target, const StepContext& ctx) override {
    TransformerModel& m = surgery::transformer(target, kWho);
    const int64_t layers = m.architecture().layers();
    std::vector<int64_t> sorted = drop_;
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = 0; i < sorted.size(); ++i) {
      SCION_CHECK(sorted[i] >= 0 && sorted[i] < layers, kWho, ": layer ", sorted[i], " does not exist (the model has ",
                  layers, " layers, numbered 0 to ", layers - 1, ")");
      SCION_CHECK(i == 0 || sorted[i] != sorted[i - 1], kWho, ": layer ", sorted[i], " is listed twice in drop");
    }
    SCION_CHECK(int64_t(sorted.size()) < layers, kWho, ": drop names all ", layers,
                " layers; a model keeps at least one (hint: leave one layer out of drop)");
    // Rebuilding the model clears its structural gates; a model that computes through gates
    // (a growth ramp, pruning masks) would silently become another function.
    SCION_CHECK(m.gate_ramp_progress(ctx.step) < 0, kWho, ": the model is ", m.gate_ramp_progress(ctx.step),
                " updates into a gate ramp; removing layers now would drop its gates and change what it computes "
                "(hint: apply this op in a stage that starts after the ramp ends)");
    const auto gates = surgery::gates(m);
    if (!gates.empty()) {
      std::string names;
      for (const auto& g : gates) names += (names.empty() ? "" : ", ") + g.name();
      throw Error(std::string(kWho) + ": the model has structural gates set (" + names +
                  "); removing layers would drop them and change what it computes");
    }

    // The kept layers in their order: new layer i copies old layer order[i].
    order_.clear();
    for (int64_t l = 0; l < layers; ++l)
      if (!std::binary_search(sorted.begin(), sorted.end(), l)) order_.push_back(l);
    surgery::reorder_blocks(m, order_, seed_);
    model_ = &m;
  }

  // A kept layer continues the optimizer state of the layer it was (new layer 1 after
  // dropping layer 1 continues old layer 2's moments); embeddings and heads keep their own.
  std::string state_source(const std::string& param) const override {
    return model_ ? surgery::block_source(*model_, param, order_) : param;
  }
  // [end snippet: drop_layers_apply]

 private:
  std::vector<int64_t> drop_;
  uint64_t seed_;
  std::vector<int64_t> order_;                // set by apply()
  const TransformerModel* model_ = nullptr;   // the target, after apply(); the runtime keeps it alive
};

PluginEntry drop_layers_entry() {
  PluginEntry e;
  e.name = "op.drop_layers";
  e.kind = PluginKind::op;
  e.version = "0.1.0";
  e.description = "removes the listed layers of a transformer model (an example third-party op)";
  e.params = {{"drop", ParamType::any, Json(), true, "layers to remove, e.g. [1, 2] (0 = the bottom layer)"}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<DropLayers>(p); };
  return e;
}
}  // namespace

SCION_REGISTER_PLUGIN(drop_layers_entry)
SCION_PLUGIN_LIBRARY()
