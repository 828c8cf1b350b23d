// The sizes GPT and BERT share: uniform by default, per layer once a method made them differ
// (pruned heads or FFN units, removed sublayers).
#pragma once
#include <cstdint>
#include <vector>

#include "scion/error.h"

namespace scion::lm {

struct LayerSizes {
  int64_t layers = 12;
  int64_t width = 768;
  int64_t heads = 12;
  int64_t ffn = 0;        // 0 = 4 * width
  int64_t head_size = 0;  // 0 = width / heads
  std::vector<int64_t> layer_heads, layer_ffn;  // per layer when not uniform (0 = sublayer removed)

  int64_t head_dim() const { return head_size > 0 ? head_size : width / heads; }
  int64_t heads_at(int64_t l) const { return layer_heads.empty() ? heads : layer_heads[size_t(l)]; }
  int64_t ffn_at(int64_t l) const { return layer_ffn.empty() ? (ffn > 0 ? ffn : 4 * width) : layer_ffn[size_t(l)]; }
  void check(const char* who) const {
    SCION_CHECK(layer_heads.empty() || int64_t(layer_heads.size()) == layers, who, ": ", layer_heads.size(),
                " per-layer head counts for ", layers, " layers");
    SCION_CHECK(layer_ffn.empty() || int64_t(layer_ffn.size()) == layers, who, ": ", layer_ffn.size(),
                " per-layer FFN sizes for ", layers, " layers");
    SCION_CHECK(heads > 0 && (head_size > 0 || width % heads == 0), who, ": width ", width, " is not divisible by ",
                heads, " heads");
  }
};

}  // namespace scion::lm
