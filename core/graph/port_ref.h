// One end of an edge: an output port of a node, written "node.port" in a graph file.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace scion::runtime {

struct PortRef {
  std::string node, port;

  // "node.port", split at its first '.' (a port name may hold dots, a node name cannot);
  // nullopt when there is no '.'.
  static std::optional<PortRef> parse(std::string_view text) {
    const size_t dot = text.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    return PortRef{std::string(text.substr(0, dot)), std::string(text.substr(dot + 1))};
  }
  std::string str() const { return node + "." + port; }
  friend bool operator==(const PortRef&, const PortRef&) = default;
};

}  // namespace scion::runtime
