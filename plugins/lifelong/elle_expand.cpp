#include "elle_expand.h"

#include <numeric>

#include "scion/autograd.h"
#include "scion/growth.h"
#include "scion/ops.h"
#include "scion/random.h"

namespace scion::lifelong {

namespace {
// Round r's order of the original layers: top first, or a seeded Fisher-Yates shuffle.
std::vector<int64_t> round_order(int64_t base, int64_t round, uint64_t seed, bool last_first) {
  std::vector<int64_t> p(static_cast<size_t>(base));
  std::iota(p.begin(), p.end(), 0);
  if (last_first) return {p.rbegin(), p.rend()};
  const uint64_t s = derive_seed(seed, 0xe11e + uint64_t(round));
  for (int64_t i = base - 1; i > 0; --i) std::swap(p[size_t(i)], p[size_t(random_bits(s, uint64_t(i)) % uint64_t(i + 1))]);
  return p;
}
}  // namespace

std::vector<int64_t> lineage_counts(int64_t base, int64_t layers, uint64_t seed, bool last_first) {
  SCION_CHECK(base > 0 && layers >= base, "elle.expand: a model grown from ", base, " layers cannot have ", layers);
  std::vector<int64_t> c(size_t(base), 1);
  int64_t extra = layers - base;
  for (int64_t round = 0; extra > 0; ++round) {
    // Every original layer gets its (round+2)-th copy before any gets a (round+3)-th.
    const std::vector<int64_t> p = round_order(base, round, seed, last_first);
    for (int64_t j = 0; j < base && extra > 0; ++j, --extra) ++c[size_t(p[size_t(j)])];
  }
  return c;
}

std::vector<int64_t> lineage(int64_t base, int64_t layers, uint64_t seed, bool last_first) {
  std::vector<int64_t> out;
  const auto c = lineage_counts(base, layers, seed, last_first);
  for (int64_t i = 0; i < base; ++i) out.insert(out.end(), size_t(c[size_t(i)]), i);
  return out;
}

std::vector<int64_t> elle_depth_order(int64_t base, int64_t from, int64_t to, uint64_t seed, bool last_first) {
  SCION_CHECK(to >= from, "elle.expand: cannot shrink ", from, " layers to ", to);
  const auto before = lineage_counts(base, from, seed, last_first), after = lineage_counts(base, to, seed, last_first);
  std::vector<int64_t> order;
  int64_t pos = 0;  // first current layer of original layer i
  for (int64_t i = 0; i < base; ++i) {
    const int64_t have = before[size_t(i)], want = after[size_t(i)];
    for (int64_t k = 0; k < have; ++k) order.push_back(pos + k);
    // A new copy follows its source: the last current copy of layer i (the rounds are nested,
    // so want >= have).
    for (int64_t k = have; k < want; ++k) order.push_back(pos + have - 1);
    pos += have;
  }
  return order;
}

std::vector<int64_t> expand(TransformerModel& m, const ExpandOptions& o) {
  const Architecture a = m.architecture();
  if (o.width > 0 && o.width != a.width) {
    growth::WidthOptions w;
    w.width = o.width;
    w.uniform = o.uniform;
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
  if (o.noise > 0.f) {
    // New layer i is a copy when it repeats the previous entry of the order.
    NoGradGuard ng;
    for (size_t i = 1; i < order.size(); ++i) {
      if (order[i] != order[i - 1]) continue;
      const std::string prefix = m.block_prefix(int64_t(i));
      uint64_t k = 0;
      for (auto& [name, t] : m.module().named_parameters()) {
        if (name.rfind(prefix, 0) != 0) continue;
        Tensor d = t;
        d.copy_(ops::add(t, Tensor::randn(t.shape(), derive_seed(o.seed, (uint64_t(i) << 16) + k++), 0.f, o.noise)));
      }
    }
  }
  return order;
}

}  // namespace scion::lifelong
