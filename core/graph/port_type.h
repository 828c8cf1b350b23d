// Port types as plugins declare them (PortSpec::type): a name, optionally with a dtype and a
// shape, e.g. "tokens", "tokens:i64[B,T]", "logits:f32[B,T,{vocab}]", "loss:f32[]".
// A dimension is a number ("1"), a symbol ("B": equal wherever it appears among one node's
// inputs, and in its outputs), a node parameter in braces ("{vocab}": that node's validated
// integer parameter), or "?" (anything). The validator compares names, then dtypes and shapes
// where both sides declare them (docs/plugins.md).
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace scion::runtime {

struct PortType {
  std::string name;               // "logits"; "any" connects to every name
  std::string dtype;              // "f32"; empty when not declared
  bool shaped = false;            // a [..] part was declared ("[]" is a scalar)
  std::vector<std::string> dims;  // as written: "B", "4", "{vocab}", "?"
};

// Nullopt when the text does not follow the grammar above.
std::optional<PortType> parse_port_type(const std::string& text);

enum class DimKind { number, symbol, param, any };
DimKind dim_kind(const std::string& dim);

}  // namespace scion::runtime
