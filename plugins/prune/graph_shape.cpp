#include "graph_shape.h"

namespace scion::prune {

std::optional<Architecture> graph_architecture(const GraphNodeView& m) {
  const Params& p = m.params;
  if (!p.has("width") || !p.has("heads") || !p.has("layers") || (p.has("load") && !p.string("load").empty()))
    return std::nullopt;
  const int64_t W = p.integer("width"), H = p.integer("heads"), L = p.integer("layers");
  if (H <= 0 || W % H != 0 || L < 0) return std::nullopt;  // the model's own check says so
  const int64_t K = p.has("kv_heads") && p.integer("kv_heads") > 0 ? p.integer("kv_heads") : H;
  Architecture a;
  a.width = W, a.head_size = W / H;
  a.heads.assign(size_t(L), H);
  if (K != H) a.kv_heads.assign(size_t(L), K);
  a.ffn.assign(size_t(L), p.has("ffn") && p.integer("ffn") > 0 ? p.integer("ffn") : 4 * W);
  a.pre_ln = m.plugin != "model.bert";
  return a;
}

}  // namespace scion::prune
