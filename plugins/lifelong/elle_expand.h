// ELLE's expansion (Qin et al., Findings of ACL 2022): function-preserving width growth and
// depth growth by copy-insertion under ELLE's lineage rule, through the SDK's model-surgery
// interface (any scion::TransformerModel).
//
//  * Width: the SDK's bert2BERT/Net2Net FPI (scion/growth.h, growth::widen): one global hidden
//    map, head and FFN maps per layer, heads added at a fixed head size, the FFN keeping its
//    ratio to the hidden size. A random map (ELLE's default) changes LayerNorm statistics, so
//    it is only approximately function-preserving (the deviation is pinned in
//    tests/lifelong); a left-to-right map (`--is_always_left`) doubling the width is exact.
//  * Depth: each new layer copies an existing one and is inserted right after it. Which
//    layers are copied follows ELLE's lineage bookkeeping (FPI_new.py): a round's candidates
//    are the layers present when it starts (round 0: the originals), each doubled once, in
//    the order of a seeded permutation (or top first); when all are doubled, the layers
//    present then are the next round's candidates. The choice is a pure function of
//    (original depth, current depth, seed), so 6 -> 8 -> 10 -> 11 -> 12 ends with every
//    original layer doubled once, interleaved [0,0,1,1,...,5,5], whatever the steps were, and
//    2 -> 3 -> 4 -> 5 -> 6 top first gives [0,0,1,1,1,1].
//  * Noise: ELLE's --add-noise, N(0, sigma) on the duplicated slices of the divided weights of
//    width growth, zero-sum over each unit's copies (growth::WidthOptions::noise), so the
//    function is kept at expansion and duplicated units train apart. ELLE adds none to the
//    inserted depth copies; `depth_noise` (off by default) adds N(0, sigma) to every tensor
//    of a copy.
#pragma once
#include <cstdint>
#include <vector>

#include "scion/surgery.h"

namespace scion::lifelong {

// How many copies of each original layer a model of `layers` layers holds (sum = layers).
// `last_first`: doublings take the top layers first (ELLE's --add_last) instead of a seeded
// random order.
std::vector<int64_t> lineage_counts(int64_t base_layers, int64_t layers, uint64_t seed, bool last_first);

// The reorder_blocks order that grows a model of `from` layers to `to` layers (both
// descendants of a `base_layers` model): old layers keep their order, each new copy follows
// the last current copy of its original layer.
std::vector<int64_t> elle_depth_order(int64_t base_layers, int64_t from, int64_t to, uint64_t seed, bool last_first);

// For each layer of a `layers`-layer descendant, its original layer ([0,0,1,2,2,...]).
std::vector<int64_t> lineage(int64_t base_layers, int64_t layers, uint64_t seed, bool last_first);

struct ExpandOptions {
  int64_t base_layers = 0;   // depth of the model the stream started with
  int64_t width = 0;         // new hidden size (0: unchanged); heads follow at a fixed head size
  int64_t layers = 0;        // new depth (0: unchanged)
  bool uniform = false;      // left-to-right width map instead of a random one
  bool last_first = false;   // double the top layers first instead of a random order
  float noise = 0.f;         // std of the zero-sum width noise on duplicated units' divided weights
  float depth_noise = 0.f;   // std of N(0, depth_noise) added to each inserted copy's tensors
  uint64_t lineage_seed = 0; // the same for every expansion of one model
  uint64_t seed = 0;         // this expansion's width map and noise
};

// Expands `m` in place (width first, then depth); returns the depth order applied (empty
// when the depth did not change), for the optimizer-state bookkeeping.
std::vector<int64_t> expand(TransformerModel& m, const ExpandOptions& o);

}  // namespace scion::lifelong
