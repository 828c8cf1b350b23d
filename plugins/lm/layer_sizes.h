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

  int64_t head_dim() const { return head_size > 0 ? head_size : width / heads; }
  int64_t heads_at(int64_t l) const { return layer_heads.empty() ? heads : layer_heads[size_t(l)]; }
  int64_t kv_heads_at(int64_t l) const {
    if (!layer_kv_heads.empty()) return layer_kv_heads[size_t(l)];
    if (!layer_heads.empty() && kv_heads == 0) return layer_heads[size_t(l)];
    return kv_heads > 0 ? kv_heads : heads;
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
    for (int64_t l = 0; l < layers; ++l) {
      const int64_t h = heads_at(l), kv = kv_heads_at(l);
      SCION_CHECK(h == 0 ? kv == 0 : kv > 0 && h % kv == 0, who, ": layer ", l, " has ", kv,
                  " key/value heads for ", h, " heads (they must divide them)");
    }
  }
};

}  // namespace scion::lm
