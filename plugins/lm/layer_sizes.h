// The sizes GPT, BERT and Llama share: uniform by default, per layer once a method made them
// differ (pruned heads or FFN units, removed sublayers).
#pragma once
#include <cstdint>
#include <vector>

#include "scion/error.h"

namespace scion::lm {

struct LayerSizes {
  int64_t layers = 12;
  int64_t width = 768;
  int64_t heads = 12;
  int64_t kv_heads = 0;   // key/value heads (GQA, MQA); 0 = as many as heads
  int64_t ffn = 0;        // 0 = 4 * width
  int64_t head_size = 0;  // 0 = width / heads
  // per layer when not uniform (0 heads or ffn = sublayer removed)
  std::vector<int64_t> layer_heads, layer_kv_heads, layer_ffn;
  // per layer, the key/value head of each query head where a pruned grouped-query layer's groups
  // are ragged (Architecture::kv_map); empty, or an empty entry, for the uniform grouping
  std::vector<std::vector<int64_t>> layer_kv_map;

  int64_t head_dim() const { return head_size > 0 ? head_size : width / heads; }
  int64_t heads_at(int64_t l) const { return layer_heads.empty() ? heads : layer_heads[size_t(l)]; }
  int64_t kv_heads_at(int64_t l) const {
    if (!layer_kv_heads.empty()) return layer_kv_heads[size_t(l)];
    if (!layer_heads.empty() && kv_heads == 0) return layer_heads[size_t(l)];
    return kv_heads > 0 ? kv_heads : heads;
  }
  const std::vector<int64_t>& kv_map_at(int64_t l) const {
    static const std::vector<int64_t> uniform;
    return size_t(l) < layer_kv_map.size() ? layer_kv_map[size_t(l)] : uniform;
  }
  int64_t ffn_at(int64_t l) const { return layer_ffn.empty() ? (ffn > 0 ? ffn : 4 * width) : layer_ffn[size_t(l)]; }
  void check(const char* who) const {
    SCION_CHECK(layer_heads.empty() || int64_t(layer_heads.size()) == layers, who, ": ", layer_heads.size(),
                " per-layer head counts for ", layers, " layers");
    SCION_CHECK(layer_kv_heads.empty() || int64_t(layer_kv_heads.size()) == layers, who, ": ", layer_kv_heads.size(),
                " per-layer key/value head counts for ", layers, " layers");
    SCION_CHECK(layer_ffn.empty() || int64_t(layer_ffn.size()) == layers, who, ": ", layer_ffn.size(),
                " per-layer FFN sizes for ", layers, " layers");
    SCION_CHECK(heads > 0 && (head_size > 0 || width % heads == 0), who, ": width ", width, " is not divisible by ",
                heads, " heads");
    SCION_CHECK(kv_heads >= 0 && (kv_heads == 0 || heads % kv_heads == 0), who, ": ", kv_heads,
                " key/value heads do not divide ", heads, " heads");
    SCION_CHECK(layer_kv_map.empty() || int64_t(layer_kv_map.size()) == layers, who, ": ", layer_kv_map.size(),
                " per-layer key/value maps for ", layers, " layers");
    for (int64_t l = 0; l < layers; ++l) {
      const int64_t h = heads_at(l), kv = kv_heads_at(l);
      const std::vector<int64_t>& map = kv_map_at(l);
      if (!map.empty()) {
        // ragged groups: each query head names its key/value head, every one read
        SCION_CHECK(int64_t(map.size()) == h && h > 0, who, ": layer ", l, " maps ", map.size(),
                    " query heads onto key/value heads, but has ", h);
        std::vector<bool> read(size_t(kv > 0 ? kv : 0), false);
        for (int64_t j : map) {
          SCION_CHECK(j >= 0 && j < kv, who, ": layer ", l, " maps a query head onto key/value head ", j, " of ", kv);
          read[size_t(j)] = true;
        }
        for (int64_t j = 0; j < kv; ++j)
          SCION_CHECK(read[size_t(j)], who, ": layer ", l, "'s key/value head ", j, " is read by no query head");
        continue;
      }
      SCION_CHECK(h == 0 ? kv == 0 : kv > 0 && h % kv == 0, who, ": layer ", l, " has ", kv,
                  " key/value heads for ", h, " heads (they must divide them)");
    }
  }
};

}  // namespace scion::lm
