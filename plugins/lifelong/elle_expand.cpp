#include "elle_expand.h"

#include <algorithm>
#include <numeric>

#include "scion/autograd.h"
#include "scion/growth.h"
#include "scion/ops.h"
#include "scion/random.h"

namespace scion::lifelong {

namespace {
// One layer of a growing model: its original layer, its position in the model an expansion
// starts from (-1 before that point), and its index among the current round's candidates
// (-1 for a copy made in this round).
struct Layer {
  int64_t original, old, candidate;
};

// Round r's order of its n candidates: top first, or a seeded Fisher-Yates shuffle.
std::vector<int64_t> round_order(int64_t n, int64_t round, uint64_t seed, bool last_first) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  if (last_first) return {p.rbegin(), p.rend()};
  const uint64_t s = derive_seed(seed, 0xe11e + uint64_t(round));
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[size_t(i)], p[size_t(random_bits(s, uint64_t(i)) % uint64_t(i + 1))]);
  return p;
}

// ELLE's lineage (FPI_new.py): a round's candidates are the layers present when it starts
// (the originals first); each expansion doubles the next candidates of the round's order, the
// copy right after its source; when every candidate of a round is doubled, the layers present
// then are the next round's candidates. Grows a `base`-layer model one layer at a time to
// `to` layers; the layers present at `from` layers get old = their position then.
std::vector<Layer> grow_lineage(int64_t base, int64_t from, int64_t to, uint64_t seed, bool last_first) {
  SCION_CHECK(base > 0 && from >= base && to >= from, "elle.expand: a model grown from ", base, " layers cannot go from ",
              from, " to ", to, " layers");
  std::vector<Layer> layers;
  for (int64_t i = 0; i < base; ++i) layers.push_back({i, -1, i});
  std::vector<int64_t> order = round_order(base, 0, seed, last_first);
  size_t next = 0;
  for (int64_t round = 0, n = base; n < to; ++n) {
    if (n == from)
      for (size_t i = 0; i < layers.size(); ++i) layers[i].old = int64_t(i);
    if (next == order.size()) {  // every candidate doubled: a new round over the current layers
      for (size_t i = 0; i < layers.size(); ++i) layers[i].candidate = int64_t(i);
      order = round_order(int64_t(layers.size()), ++round, seed, last_first);
      next = 0;
    }
    const int64_t c = order[next++];
    auto src = std::find_if(layers.begin(), layers.end(), [c](const Layer& l) { return l.candidate == c; });
    const Layer copy{src->original, src->old, -1};
    layers.insert(src + 1, copy);
  }
  if (to == from)
    for (size_t i = 0; i < layers.size(); ++i) layers[i].old = int64_t(i);
  return layers;
}
}  // namespace

std::vector<int64_t> lineage(int64_t base, int64_t layers, uint64_t seed, bool last_first) {
  std::vector<int64_t> out;
  for (const Layer& l : grow_lineage(base, layers, layers, seed, last_first)) out.push_back(l.original);
  return out;
}

std::vector<int64_t> lineage_counts(int64_t base, int64_t layers, uint64_t seed, bool last_first) {
  std::vector<int64_t> c(size_t(base), 0);
  for (int64_t o : lineage(base, layers, seed, last_first)) ++c[size_t(o)];
  return c;
}

std::vector<int64_t> elle_depth_order(int64_t base, int64_t from, int64_t to, uint64_t seed, bool last_first) {
  SCION_CHECK(to >= from, "elle.expand: cannot shrink ", from, " layers to ", to);
  std::vector<int64_t> order;
  for (const Layer& l : grow_lineage(base, from, to, seed, last_first)) order.push_back(l.old);
  return order;
}

std::vector<int64_t> expand(TransformerModel& m, const ExpandOptions& o) {
  const Architecture a = m.architecture();
  if (o.width > 0 && o.width != a.width) {
    growth::WidthOptions w;
    w.width = o.width;
    w.uniform = o.uniform;
    w.noise = o.noise;
    w.seed = o.seed;
    growth::widen(m, w, "elle.expand");
  }
  if (o.layers == 0 || o.layers == a.layers()) return {};
  SCION_CHECK(o.layers > a.layers(), "elle.expand: layers ", o.layers, " is fewer than the model's ", a.layers(),
              " (ELLE only grows)");
  SCION_CHECK(o.base_layers > 0 && a.layers() >= o.base_layers, "elle.expand: the model has ", a.layers(),
              " layers, fewer than base_layers = ", o.base_layers,
              " (hint: base_layers is the depth the model started the stream with)");
  const std::vector<int64_t> order = elle_depth_order(o.base_layers, a.layers(), o.layers, o.lineage_seed, o.last_first);
  surgery::reorder_blocks(m, order, derive_seed(o.seed, 0xde));
  if (o.depth_noise > 0.f) {
    // New layer i is a copy when it repeats the previous entry of the order.
    NoGradGuard ng;
    for (size_t i = 1; i < order.size(); ++i) {
      if (order[i] != order[i - 1]) continue;
      const std::string prefix = m.block_prefix(int64_t(i));
      uint64_t k = 0;
      for (auto& [name, t] : m.module().named_parameters()) {
        if (name.rfind(prefix, 0) != 0) continue;
        Tensor d = t;
        d.copy_(ops::add(t, Tensor::randn(t.shape(), derive_seed(o.seed, (uint64_t(i) << 16) + k++), 0.f, o.depth_noise)));
      }
    }
  }
  return order;
}

}  // namespace scion::lifelong
