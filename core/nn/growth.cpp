// Width and depth growth through model surgery (scion/growth.h).
#include "scion/growth.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <regex>

#include "scion/autograd.h"
#include "scion/random.h"
#include "scion/sizes.h"

namespace scion::growth {

namespace {

using Rule = ParamLayout;

struct Maps {
  UnitMap residual;
  std::vector<UnitMap> heads, kv_heads, ffn;  // per layer
  int64_t head_dim = 0;
};

// The map of whole heads, `D` units each, along a head-major axis (`blocks` of them side by
// side: GPT's fused q | k | v).
void head_source(const UnitMap& h, int64_t D, int64_t blocks_fused, int64_t j, int64_t& src, int64_t& copies,
                 bool& fresh) {
  const int64_t block_new = h.new_size() * D, block_old = h.old_size() * D;
  const int64_t block = blocks_fused > 1 ? j / block_new : 0, in = j % block_new;
  const int64_t hs = h.g[size_t(in / D)];
  src = block * block_old + hs * D + in % D, copies = h.count[size_t(hs)], fresh = in / D >= h.old_size();
}

// Query heads grow with their key/value head: group j of the new layer (its kv head and the
// `group` query heads it serves) copies group kv.g[j] whole.
UnitMap query_heads_of(const UnitMap& kv, int64_t group) {
  UnitMap h;
  for (int64_t j = 0; j < kv.new_size(); ++j)
    for (int64_t i = 0; i < group; ++i) h.g.push_back(kv.g[size_t(j)] * group + i);
  for (int64_t c : kv.count)
    for (int64_t i = 0; i < group; ++i) h.count.push_back(c);
  return h;
}

// Source index and divisor for new index j along an axis.
void source_of(const Maps& m, Unit r, int64_t layer, int64_t j, int64_t& src, int64_t& copies, bool& fresh) {
  switch (r) {
    case Unit::none: src = j, copies = 1, fresh = false; return;
    case Unit::hidden:
      src = m.residual.g[size_t(j)], copies = m.residual.count[size_t(src)], fresh = j >= m.residual.old_size();
      return;
    case Unit::ffn: {
      const UnitMap& f = m.ffn[size_t(layer)];
      src = f.g[size_t(j)], copies = f.count[size_t(src)], fresh = j >= f.old_size();
      return;
    }
    case Unit::head: head_source(m.heads[size_t(layer)], m.head_dim, 1, j, src, copies, fresh); return;
    case Unit::qkv: head_source(m.heads[size_t(layer)], m.head_dim, 3, j, src, copies, fresh); return;
    case Unit::kv_head: head_source(m.kv_heads[size_t(layer)], m.head_dim, 1, j, src, copies, fresh); return;
  }
}

int64_t new_extent(const Maps& m, Unit r, int64_t layer, int64_t old) {
  switch (r) {
    case Unit::none: return old;
    case Unit::hidden: return m.residual.new_size();
    case Unit::ffn: return m.ffn[size_t(layer)].new_size();
    case Unit::head: return m.heads[size_t(layer)].new_size() * m.head_dim;
    case Unit::qkv: return 3 * m.heads[size_t(layer)].new_size() * m.head_dim;
    case Unit::kv_head: return m.kv_heads[size_t(layer)].new_size() * m.head_dim;
  }
  return old;
}

// Net2Net's symmetry-breaking noise on the divided weights of duplicated units, made to sum
// to zero over the copies of each unit: the copies compute the same activation, so the next
// layer still receives exactly the old sum and the function is kept, while the copies' weights
// (and so their gradients and what they learn) differ.
void add_zero_sum_noise(Tensor& w, const Rule& rule, const Maps& m, float noise, uint64_t seed) {
  const int64_t nd = w.dim();
  if (nd != 2) return;  // only matrices have in-axes
  const int64_t r1 = w.size(0), c1 = w.size(1);
  for (int ax = 0; ax < 2; ++ax) {
    if (!rule.axis[ax].reads) continue;
    const int64_t n_div = ax == 0 ? r1 : c1, n_other = ax == 0 ? c1 : r1;
    std::vector<int64_t> src(static_cast<size_t>(n_div)), copies(static_cast<size_t>(n_div));
    for (int64_t k = 0; k < n_div; ++k) {
      bool fresh;
      source_of(m, rule.axis[ax].unit, rule.layer, k, src[size_t(k)], copies[size_t(k)], fresh);
    }
    std::map<int64_t, std::vector<int64_t>> groups;  // old unit -> its copies along this axis
    for (int64_t k = 0; k < n_div; ++k)
      if (copies[size_t(k)] > 1) groups[src[size_t(k)]].push_back(k);
    float* d = w.data<float>();
    for (const auto& [s, ks] : groups)
      for (int64_t o = 0; o < n_other; ++o) {
        std::vector<double> z(ks.size());
        double mean = 0;
        for (size_t q = 0; q < ks.size(); ++q) {
          const int64_t i = ax == 0 ? ks[q] : o, j = ax == 0 ? o : ks[q];
          z[q] = random_normal(derive_seed(seed, uint64_t(ax)), uint64_t(i * c1 + j));
          mean += z[q] / double(ks.size());
        }
        for (size_t q = 0; q < ks.size(); ++q) {
          const int64_t i = ax == 0 ? ks[q] : o, j = ax == 0 ? o : ks[q];
          d[i * c1 + j] += float(noise * (z[q] - mean));
        }
      }
  }
}

// HyperCloning's noise: along each divided axis, the copies of a unit in order (the tiles),
// taken in pairs: the first of a pair gets +n, the second -n (an odd last copy none), with n
// Gaussian of variance mean(w²) / 10^(snr_db / 10). Each pair's sum, and so what the next
// layer receives from the copies' equal activations, is unchanged.
void add_pairwise_noise(Tensor& w, const Rule& rule, const Maps& m, double snr_db, uint64_t seed) {
  if (w.dim() != 2) return;
  const int64_t r1 = w.size(0), c1 = w.size(1);
  float* d = w.data<float>();
  double power = 0;
  for (int64_t i = 0; i < r1 * c1; ++i) power += double(d[i]) * d[i] / double(r1 * c1);
  const double sigma = std::sqrt(power / std::pow(10.0, snr_db / 10.0));
  for (int ax = 0; ax < 2; ++ax) {
    if (!rule.axis[ax].reads) continue;
    const int64_t n_div = ax == 0 ? r1 : c1, n_other = ax == 0 ? c1 : r1;
    std::map<int64_t, std::vector<int64_t>> copies_of;  // old unit -> its copies, in order
    for (int64_t k = 0; k < n_div; ++k) {
      int64_t src, copies;
      bool fresh;
      source_of(m, rule.axis[ax].unit, rule.layer, k, src, copies, fresh);
      if (copies > 1) copies_of[src].push_back(k);
    }
    for (const auto& [s, ks] : copies_of)
      for (size_t q = 0; q + 1 < ks.size(); q += 2)
        for (int64_t o = 0; o < n_other; ++o) {
          const double n = sigma * random_normal(derive_seed(seed, uint64_t(ax)), uint64_t(ks[q] * n_other + o));
          float& first = ax == 0 ? d[ks[q] * c1 + o] : d[o * c1 + ks[q]];
          float& second = ax == 0 ? d[ks[q + 1] * c1 + o] : d[o * c1 + ks[q + 1]];
          first += float(n);
          second -= float(n);
        }
  }
}

// Expands a 1-D or 2-D tensor. `upper` (AKI) supplies the new out-units when defined.
Tensor expand(const Tensor& w_in, const Rule& rule, const Maps& m, const Tensor& upper_in, float noise, uint64_t seed) {
  Tensor w = w_in.detach().contiguous();
  Tensor upper = upper_in.defined() ? upper_in.detach().contiguous() : Tensor();
  const int64_t nd = w.dim();
  SCION_CHECK(nd == 1 || nd == 2, "growth: cannot expand ", w.desc());
  const int64_t r0 = w.size(0), c0 = nd == 2 ? w.size(1) : 1;
  const AxisLayout a0 = rule.axis[0], a1 = nd == 2 ? rule.axis[1] : AxisLayout{};
  const int64_t r1 = new_extent(m, a0.unit, rule.layer, r0), c1 = nd == 2 ? new_extent(m, a1.unit, rule.layer, c0) : 1;
  Tensor out = Tensor::empty(nd == 2 ? Shape{r1, c1} : Shape{r1});
  const float* src = w.data<float>();
  const float* up = upper.defined() ? upper.data<float>() : nullptr;
  float* dst = out.data<float>();
  for (int64_t i = 0; i < r1; ++i) {
    int64_t si, ci;
    bool fi;
    source_of(m, a0.unit, rule.layer, i, si, ci, fi);
    for (int64_t j = 0; j < c1; ++j) {
      int64_t sj = j, cj = 1;
      bool fj = false;
      if (nd == 2) source_of(m, a1.unit, rule.layer, j, sj, cj, fj);
      // AKI: a new out-unit (a copied, not divided, axis) reads the upper layer's weights.
      const bool from_upper = up && ((!a0.reads && a0.unit != Unit::none && fi) || (!a1.reads && a1.unit != Unit::none && fj));
      float v = (from_upper ? up : src)[si * c0 + sj];
      if (a0.reads) v /= float(ci);
      if (a1.reads) v /= float(cj);
      dst[i * c1 + j] = v;
    }
  }
  if (noise > 0.f) add_zero_sum_noise(out, rule, m, noise, seed);
  return out;
}

Maps build_maps(int64_t old_width, int64_t old_heads, int64_t old_kv_heads, int64_t old_ffn, int64_t layers,
                const WidthOptions& o, int64_t& new_heads, int64_t& new_kv_heads, int64_t& new_ffn, const char* who) {
  const int64_t D = old_width / old_heads, group = old_heads / old_kv_heads;
  SCION_CHECK(o.width >= old_width, who, ": new width ", o.width, " is smaller than the old ", old_width);
  SCION_CHECK(o.width % D == 0, who, ": new width ", o.width, " is not a multiple of the head size ", D,
              " (heads grow at a fixed head size)");
  new_heads = o.width / D;
  // HyperCloning keeps a multi-query model's one key/value head: only its query heads grow.
  const bool single_kv = o.keep_single_kv_head && old_kv_heads == 1 && old_heads > 1;
  SCION_CHECK(single_kv || new_heads % group == 0, who, ": new width ", o.width, " gives ", new_heads, " heads, which cannot be ",
              "grouped by ", group, " around key/value heads (a key/value head grows with its ", group,
              " query heads: choose a width that is a multiple of ", group * D, ")");
  new_kv_heads = single_kv ? 1 : new_heads / group;
  new_ffn = o.ffn > 0 ? o.ffn : checked_mul(old_ffn, o.width, "the grown FFN") / old_width;  // 0: keep the FFN/width ratio
  SCION_CHECK(new_ffn >= old_ffn, who, ": new FFN width ", new_ffn, " is smaller than the old ", old_ffn);
  Maps m;
  m.head_dim = D;
  m.residual = make_map(old_width, o.width, o.uniform, derive_seed(o.seed, 1));
  for (int64_t l = 0; l < layers; ++l) {  // head and FFN maps are sampled per layer
    // Groups of one (multi-head attention) make the head map itself.
    m.kv_heads.push_back(make_map(old_kv_heads, new_kv_heads, o.uniform, derive_seed(o.seed, 1000 + uint64_t(l))));
    m.heads.push_back(single_kv ? make_map(old_heads, new_heads, o.uniform, derive_seed(o.seed, 1500 + uint64_t(l)))
                                : query_heads_of(m.kv_heads.back(), group));
    m.ffn.push_back(make_map(old_ffn, new_ffn, o.uniform, derive_seed(o.seed, 2000 + uint64_t(l))));
  }
  return m;
}

// The tensor of the same name in layer l+1 (AKI's source of new units), if any.
Tensor upper_of(const TransformerModel& m, const std::map<std::string, Tensor>& sd, const std::string& name,
                int64_t layer, int64_t layers) {
  if (layer < 0 || layer + 1 >= layers) return Tensor();
  const std::string here = m.block_prefix(layer), up = m.block_prefix(layer + 1) + name.substr(here.size());
  auto it = sd.find(up);
  return it == sd.end() ? Tensor() : it->second;
}

}  // namespace

UnitMap make_map(int64_t old_size, int64_t new_size, bool uniform, uint64_t seed) {
  SCION_CHECK(old_size > 0 && new_size >= old_size, "growth: cannot map ", old_size, " units onto ", new_size);
  UnitMap m;
  m.g.resize(size_t(new_size));
  m.count.assign(size_t(old_size), 0);
  for (int64_t j = 0; j < new_size; ++j) {
    const int64_t s = j < old_size ? j : (uniform ? j % old_size : int64_t(random_bits(seed, uint64_t(j)) % uint64_t(old_size)));
    m.g[size_t(j)] = s;
    ++m.count[size_t(s)];
  }
  return m;
}

void widen(TransformerModel& m, const WidthOptions& o, const char* who) {
  NoGradGuard ng;
  const Architecture a = m.architecture();
  SCION_CHECK(a.uniform() && a.layers() > 0 && a.heads[0] * a.head_size == a.width, who,
              ": widening needs a model whose layers all have width / head size heads and one FFN size (this one "
              "was pruned or edited per layer)");
  // Before the unit maps, which are as long as the new width.
  check_fits(a, o.width, o.ffn > 0 ? o.ffn : checked_mul(a.ffn[0], o.width, "the grown FFN") / a.width, a.layers(), who);
  int64_t H = 0, KV = 0, F = 0;
  const Maps maps = build_maps(a.width, a.heads[0], a.kv_heads_at(0), a.ffn[0], a.layers(), o, H, KV, F, who);
  Architecture na = a;
  na.width = o.width;
  na.heads.assign(size_t(a.layers()), H);
  if (!a.kv_heads.empty()) na.kv_heads.assign(size_t(a.layers()), KV);
  na.ffn.assign(size_t(a.layers()), F);
  na.tied = false;  // a tied head cannot be both copied (input) and divided (output)
  nn::NamedTensors sd = m.module().named_parameters();
  const auto [embedding, head] = m.embedding_and_head();
  if (a.tied) sd.emplace_back(head, m.module().parameter(embedding));
  const std::map<std::string, Tensor> by_name(sd.begin(), sd.end());
  nn::NamedTensors out;
  uint64_t k = 0;
  for (const auto& [name, t] : sd) {
    const Rule r = m.layout(name);
    Tensor upper = o.method == Method::aki ? upper_of(m, by_name, name, r.layer, a.layers()) : Tensor();
    Tensor grown = expand(t, r, maps, upper, o.noise, derive_seed(o.seed, 5000 + k));
    if (o.snr_db > 0 && name != head) add_pairwise_noise(grown, r, maps, o.snr_db, derive_seed(o.seed, 9000 + k));
    ++k;
    out.emplace_back(name, std::move(grown));
  }
  m.rebuild(na, out);
}

void deepen(TransformerModel& m, const std::vector<int64_t>& order, uint64_t seed) {
  surgery::reorder_blocks(m, order, seed);
}

std::vector<int64_t> stacking_order(int64_t L) {
  std::vector<int64_t> o;
  for (int rep = 0; rep < 2; ++rep)
    for (int64_t l = 0; l < L; ++l) o.push_back(l);
  return o;
}

std::vector<int64_t> gstack_order(int64_t L, int64_t factor) {
  SCION_CHECK(L > 0 && factor >= 1, "grow.gstack: cannot stack ", L, " layers ", factor, " times");
  std::vector<int64_t> o;
  for (int64_t rep = 0; rep < factor; ++rep)
    for (int64_t l = 0; l < L; ++l) o.push_back(l);
  return o;
}

double gstack_growth_tokens(double params, double flops) {
  SCION_CHECK(params > 1 && flops > 10, "gstack_growth_tokens: needs N > 1 and C > 10, got ", params, " and ", flops);
  return std::pow(10.0, 0.88 * std::log10(params) + 163.27 / std::log10(flops) - 5.74);
}

std::vector<int64_t> bert2bert_depth_order(int64_t from, int64_t to) {
  SCION_CHECK(from > 0 && to >= from, "grow.bert2bert: cannot grow ", from, " layers to ", to);
  std::vector<int64_t> o;
  for (int64_t rep = 0; rep < to / from; ++rep)
    for (int64_t l = 0; l < from; ++l) o.push_back(l);
  for (int64_t l = from - to % from; l < from && int64_t(o.size()) < to; ++l) o.push_back(l);  // the top layers
  return o;
}

std::vector<int64_t> identity_insertion_order(int64_t layers, const std::vector<int64_t>& after) {
  std::vector<int64_t> o;
  auto add_identities = [&](int64_t pos) {
    for (int64_t a : after)
      if (a == pos) o.push_back(-1);
  };
  add_identities(-1);
  for (int64_t l = 0; l < layers; ++l) {
    o.push_back(l);
    add_identities(l);
  }
  return o;
}

std::vector<GraphProblem> check_target(const GraphView& g, const GraphNodeView& self, bool keeps_ffn_ratio) {
  std::vector<GraphProblem> out;
  const Params& p = self.params;
  // The target model node: the op's input "target", or its parameter of that name.
  const auto in = self.inputs.find("target");
  const GraphNodeView* m =
      g.node(in != self.inputs.end() ? in->second : p.has("target") ? p.string("target") : std::string());
  if (!m || m->kind != PluginKind::model || !m->params.has("width") || !m->params.has("heads") ||
      (m->params.has("load") && !m->params.string("load").empty()))
    return out;
  const Params& mp = m->params;
  const int64_t W = mp.integer("width"), H = mp.integer("heads"), L = mp.has("layers") ? mp.integer("layers") : 0;
  const int64_t F = mp.has("ffn") && mp.integer("ffn") > 0 ? mp.integer("ffn") : 4 * W;
  if (H <= 0 || W % H != 0) return out;  // the model's own check says so
  const int64_t D = W / H;
  const int64_t width = p.has("width") && p.integer("width") > 0 ? p.integer("width") : W;
  const int64_t layers = p.has("layers") && p.integer("layers") > 0 ? p.integer("layers") : L;
  const std::string model = "model '" + m->name + "'";
  if (width < W)
    out.push_back({"width", "width " + std::to_string(width) + " is smaller than the width of " + model + " (" +
                                std::to_string(W) + "); growth only grows",
                   "width >= " + std::to_string(W)});
  else if (width % D != 0)
    out.push_back({"width", "width " + std::to_string(width) + " is not a multiple of the head size " + std::to_string(D) +
                                " of " + model + " (width " + std::to_string(W) + ", " + std::to_string(H) + " heads)",
                   "width = " + std::to_string((width / D + 1) * D) + " (a multiple of " + std::to_string(D) + ")"});
  const double ffn = p.has("ffn") && p.integer("ffn") > 0 ? double(p.integer("ffn"))
                     : keeps_ffn_ratio                           ? double(F) * double(width) / double(W)
                                                             : double(F);
  if (p.has("ffn") && p.integer("ffn") > 0 && p.integer("ffn") < F)
    out.push_back({"ffn", "ffn " + std::to_string(p.integer("ffn")) + " is smaller than the FFN of " + model + " (" +
                              std::to_string(F) + ")",
                   "ffn >= " + std::to_string(F) + ", or 0"});
  if (layers < L)
    out.push_back({"layers", "layers " + std::to_string(layers) + " is fewer than the " + std::to_string(L) +
                                 " layers of " + model,
                   "layers >= " + std::to_string(L) + ", or 0 (unchanged)"});
  const double params =
      transformer_parameters(double(layers), double(width), ffn, mp.has("vocab") ? double(mp.integer("vocab")) : 0,
                             mp.has("context") ? double(mp.integer("context")) : 0,
                             mp.has("tied") && mp.boolean("tied"), mp.has("kv_heads"));
  char count[32];
  std::snprintf(count, sizeof count, "%.3g", params);
  const std::string problem =
      memory_problem(4 * params, "the grown " + model + " (" + count + " parameters)", " for its weights alone");
  if (!problem.empty()) {
    // Located at the size that grew the most.
    const double grew_width = double(width) / double(W), grew_ffn = ffn / double(F),
                 grew_layers = L > 0 ? double(layers) / double(L) : double(layers);
    const char* key = grew_layers >= grew_width && grew_layers >= grew_ffn ? "layers"
                      : grew_ffn > grew_width                              ? "ffn"
                                                                           : "width";
    out.push_back({key, problem, "check width, ffn and layers of the op"});
  }
  return out;
}

void check_fits(const Architecture& a, int64_t width, int64_t ffn, int64_t layers, const char* who) {
  const double params = transformer_parameters(double(layers), double(width), double(ffn), double(a.vocab),
                                               double(a.context), a.tied, a.family == "llama");
  char count[32];
  std::snprintf(count, sizeof count, "%.3g", params);
  const std::string problem =
      memory_problem(4 * params, std::string("the grown model (") + count + " parameters)", " for its weights alone");
  SCION_CHECK(problem.empty(), who, ": ", problem, "; hint: check width, ffn and layers of the op");
}

}  // namespace scion::growth
