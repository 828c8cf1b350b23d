// Optimizer state across a model-transforming op (OptimizerSet::carry_across_op).
//
// The state is keyed "<node>.<param>.<what>". After an op, each parameter continues the state
// of the parameter the op names as its source (itself unless the op moved layers; none for a
// new identity block, whose state restarts at zero). Where the shape changed, the state
// tensors shaped as the source was are handed to the op, which maps them (MSG carries the
// moments of the old units over) or declines; declined state keeps its old shape, and an
// optimizer restarts a parameter whose state no longer matches it.
#include "runtime/optimizer_set.h"

namespace scion::runtime {

void OptimizerSet::carry_across_op(const Op& op, const std::string& target, Model& model,
                                   const std::map<std::string, Shape>& before) {
  std::map<std::string, std::vector<std::pair<std::string, Tensor>>> old;  // param -> (what, state)
  for (const auto& [name, state] : state_tensors()) {
    const size_t dot = name.rfind('.');
    if (dot != std::string::npos) old[name.substr(0, dot)].emplace_back(name.substr(dot + 1), state);
  }
  nn::NamedTensors mapped;
  auto restart = [&](const std::string& p) {
    if (auto it = old.find(p); it != old.end())
      for (const auto& [what, st] : it->second)
        mapped.emplace_back(p + "." + what, Tensor::zeros(st.shape(), st.dtype(), st.device()));
  };
  for (const auto& [k, t] : model.module().named_parameters()) {
    const std::string p = target + "." + k, src_k = op.state_source(k);
    if (src_k.empty()) {
      restart(p);
      continue;
    }
    const std::string src = target + "." + src_k;
    auto shape_was = before.find(src);
    SCION_CHECK(src == p || shape_was != before.end(), "op's state_source names '", src_k, "' for '", k,
                "', which the model did not have before the op");
    auto st = old.find(src);
    if (shape_was == before.end() || st == old.end()) {  // a new parameter, or one without state yet
      if (src != p) restart(p);
      continue;
    }
    const bool resized = shape_was->second != t.shape();
    if (src == p && !resized) continue;  // untouched: keeps its own state
    for (const auto& [what, state] : st->second) {
      // Per-element state of a resized parameter goes through the op; the rest (a step count,
      // or state the op declines) moves as it is, and an optimizer restarts a mismatch.
      Tensor m = resized && state.shape() == shape_was->second ? op.carry_state(k, state, t.shape()) : Tensor();
      SCION_CHECK(!m.defined() || m.shape() == t.shape(), "op mapped optimizer state '", src, ".", what, "' to ",
                  m.desc(), " but the parameter is now ", t.desc());
      mapped.emplace_back(p + "." + what, m.defined() ? m : state);
    }
  }
  if (!mapped.empty()) load_state_tensors(mapped);
}

}  // namespace scion::runtime
