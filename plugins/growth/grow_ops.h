// What the grow.* ops share (plugins/growth): the model an op may grow, the depth ops' state
// mapping, and the entry of an op plugin.
#pragma once
#include <string>
#include <vector>

#include "scion/growth.h"
#include "scion/plugin.h"

namespace scion::growth {

// A model inside a gate ramp (grow.masked) computes through its gates; growing it would drop
// them and change its function mid-ramp.
inline TransformerModel& growable(Model& target, const StepContext& ctx, const char* who) {
  TransformerModel& m = surgery::transformer(target, who);
  const int64_t done = m.gate_ramp_progress(ctx.step);
  SCION_CHECK(done < 0, who, ": the model is ", done, " update(s) into a grow.masked gate ramp; growing it now would "
              "drop the gates and change what it computes (hint: apply this op in a stage that starts after the "
              "ramp ends)");
  return m;
}

// Depth ops move layers: each new layer's optimizer state continues its source layer's (as
// StackingBERT's --double-optimizer), an identity block's restarts.
class DepthOp : public Op {
 public:
  std::string state_source(const std::string& param) const override {
    return model_ ? surgery::block_source(*model_, param, order_) : param;
  }

 protected:
  void reorder(TransformerModel& m, std::vector<int64_t> order, uint64_t seed) {
    order_ = std::move(order);
    model_ = &m;
    deepen(m, order_, seed);
  }
  std::vector<int64_t> order_;  // set by apply(); empty = the depth did not change
  const TransformerModel* model_ = nullptr;
};

inline PluginEntry op_entry(const char* name, const char* desc, std::vector<ParamSpec> params, Factory f) {
  PluginEntry e;
  e.name = name;
  e.kind = PluginKind::op;
  e.version = "1.0.0";
  e.description = desc;
  e.params = std::move(params);
  e.factory = std::move(f);
  // The ops that change sizes are checked against their target before anything runs.
  // net2wider and bert2bert keep the FFN/width ratio when ffn = 0; grow.masked keeps the FFN.
  const bool keeps_ratio = std::string(name) != "grow.masked";
  for (const ParamSpec& q : e.params)
    if (q.name == "width")
      e.check = [keeps_ratio](const GraphView& g, const GraphNodeView& self) { return check_target(g, self, keeps_ratio); };
  return e;
}

}  // namespace scion::growth
