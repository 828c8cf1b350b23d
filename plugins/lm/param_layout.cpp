#include "param_layout.h"

namespace scion::lm {

namespace {
constexpr AxisLayout kHidden{Unit::hidden, false}, kHiddenIn{Unit::hidden, true};

// A projection reading `in` units and writing `out` units, its weight laid out as the family
// lays it: [out, in] (nn.Linear) or [in, out] (Conv1D).
ParamLayout projection(bool conv1d, AxisLayout in, AxisLayout out, bool weight) {
  ParamLayout r;
  if (!weight) r.axis[0] = {out.unit, false};
  else if (conv1d) r.axis[0] = in, r.axis[1] = out;
  else r.axis[0] = out, r.axis[1] = in;
  return r;
}
}  // namespace

bool split_block_name(const std::string& name, const std::string& prefix, int64_t& layer, std::string& rest) {
  if (name.rfind(prefix, 0) != 0) return false;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  for (size_t i = prefix.size(); i < dot; ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  layer = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
  rest = name.substr(dot + 1);
  return true;
}

std::optional<ParamLayout> block_param_layout(const nn::TransformerNames& n, const std::string& rest, bool grouped) {
  const size_t dot = rest.rfind('.');
  if (dot == std::string::npos) return std::nullopt;
  const std::string module = rest.substr(0, dot), kind = rest.substr(dot + 1);
  const bool weight = kind == "weight";
  if (!weight && kind != "bias") return std::nullopt;
  auto in = [](const std::string& parent, const std::string& child) {
    return child.empty() ? std::string() : parent.empty() ? child : parent + "." + child;
  };
  if (module == n.attn_norm || module == n.ffn_norm) {
    ParamLayout r;
    r.axis[0] = kHidden, r.hidden_fold = true;
    return r;
  }
  const AxisLayout heads_out{Unit::head, false}, kv_out{grouped ? Unit::kv_head : Unit::head, false};
  if (module == in(n.attention, n.qkv)) return projection(n.conv1d, kHiddenIn, {Unit::qkv, false}, weight);
  if (module == in(n.attention, n.q)) return projection(n.conv1d, kHiddenIn, heads_out, weight);
  if (module == in(n.attention, n.k) || module == in(n.attention, n.v))
    return projection(n.conv1d, kHiddenIn, kv_out, weight);
  if (module == in(n.mlp, n.up) || module == in(n.mlp, n.gate))
    return projection(n.conv1d, kHiddenIn, {Unit::ffn, false}, weight);
  const bool o = module == in(n.attention, n.o), down = module == in(n.mlp, n.down);
  if (o || down) {
    // Writes into the residual stream: zeroed in an identity block, folded under CoFi's gate.
    ParamLayout r = projection(n.conv1d, {o ? Unit::head : Unit::ffn, true}, kHidden, weight);
    r.residual_write = r.hidden_fold = true;
    return r;
  }
  return std::nullopt;
}

}  // namespace scion::lm
