// Dtypes and shapes of the edges, in dependency order: a symbol bound by a node's inputs
// ("B") sizes its outputs too (port_type.h: the grammar of a port type).
#include <optional>

#include "graph/passes.h"

namespace scion::runtime {

namespace {

class ShapeCheck {
 public:
  ShapeCheck(const NodeTable& nodes, Validator& v) : nodes_(nodes), v_(v) {}

  void check(const Edge& e) {
    const std::string src = e.src.str();
    const std::string what = "'" + src + "' into input '" + e.port + "' of node '" + e.dst + "'";
    const SourcePos at = nodes_.key_pos(e.dst, e.port, v_);
    if (!e.in.dtype.empty() && !e.out.dtype.empty() && e.in.dtype != e.out.dtype) {
      v_.error(at, "dtypes differ: " + what + ": " + e.out.dtype + " given, " + e.in.dtype + " taken",
               "connect an output of dtype " + e.in.dtype);
      return;
    }
    if (!e.in.shaped || !e.out.shaped) return;
    if (e.in.dims.size() != e.out.dims.size()) {
      v_.error(at, "ranks differ: " + what + ": " + std::to_string(e.out.dims.size()) + " dimensions given, " +
                       std::to_string(e.in.dims.size()) + " taken",
               "'" + src + "' is " + e.out.name + "[" + Validator::join(e.out.dims) + "]");
      return;
    }
    for (size_t i = 0; i < e.in.dims.size(); ++i) {
      const auto given = resolve(e.src.node, e.out.dims[i]);
      if (!given) continue;
      const std::string& d = e.in.dims[i];
      std::optional<int64_t> want;
      std::string why;
      switch (dim_kind(d)) {
        case DimKind::number: want = std::stoll(d), why = "the input's fixed size"; break;
        case DimKind::param:
          want = param_dim(e.dst, d);
          why = "parameter '" + d.substr(1, d.size() - 2) + "' of node '" + e.dst + "'";
          break;
        case DimKind::symbol: {
          auto [it, fresh] = bound_[e.dst].emplace(d, std::make_pair(*given, src));
          if (!fresh) want = it->second.first, why = "'" + it->second.second + "' (both are " + d + ")";
          break;
        }
        case DimKind::any: break;
      }
      if (want && *want != *given) {
        v_.error(at, "shapes differ: " + what + ": dimension " + std::to_string(i) + " is " + std::to_string(*given) +
                         " but " + std::to_string(*want) + " is needed",
                 "the " + std::to_string(*want) + " comes from " + why);
        return;
      }
    }
  }

 private:
  // "{vocab}": the node's parameter of that name. A node that loads a file (`load`) takes its
  // sizes from it, not from its parameters: its dimensions are unknown here, and its plugin's
  // own check compares the file's sizes with what it meets (a model's vocabulary with the
  // tokenizer, its context with the windows).
  std::optional<int64_t> param_dim(const std::string& node, const std::string& dim) const {
    const Json& p = nodes_.specs.at(node).params;
    if (p.is_object() && p.contains("load") && p.at("load").is_string() && !p.at("load").get<std::string>().empty())
      return std::nullopt;
    const std::string key = dim.substr(1, dim.size() - 2);
    if (p.is_object() && p.contains(key) && p.at(key).is_number()) return int64_t(json_number(p.at(key)));
    return std::nullopt;
  }
  // A dimension of an output of `node`, where it is known.
  std::optional<int64_t> resolve(const std::string& node, const std::string& dim) {
    switch (dim_kind(dim)) {
      case DimKind::number: return std::stoll(dim);
      case DimKind::param: return param_dim(node, dim);
      case DimKind::symbol: {
        auto it = bound_[node].find(dim);
        if (it != bound_[node].end()) return it->second.first;
        return std::nullopt;
      }
      case DimKind::any: break;
    }
    return std::nullopt;
  }

  const NodeTable& nodes_;
  Validator& v_;
  std::map<std::string, std::map<std::string, std::pair<int64_t, std::string>>> bound_;  // node -> symbol -> (size, from)
};

}  // namespace

void check_shapes(const NodeTable& nodes, const std::vector<Edge>& edges, const std::vector<std::string>& order,
                  Validator& v) {
  ShapeCheck shapes(nodes, v);
  for (const std::string& name : order)
    for (const Edge& e : edges)
      if (e.dst == name) shapes.check(e);
}

}  // namespace scion::runtime
