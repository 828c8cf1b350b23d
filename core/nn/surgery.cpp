// The model-surgery interface's shared parts: the key function of TransformerModel (so its
// type information lives in libscion_core alone and dynamic_cast works from any plugin), the
// architecture record, and the structural edits every method shares, done through the
// interface only.
#include "scion/surgery.h"

#include <algorithm>
#include <map>

#include "scion/autograd.h"

namespace scion {

TransformerModel::~TransformerModel() = default;

const char* unit_name(Unit u) {
  switch (u) {
    case Unit::none: return "none";
    case Unit::hidden: return "hidden";
    case Unit::head: return "head";
    case Unit::qkv: return "qkv";
    case Unit::ffn: return "ffn";
    case Unit::kv_head: return "kv_head";
  }
  return "?";
}

const char* gate_kind_name(GateKind k) {
  switch (k) {
    case GateKind::layer: return "layer";
    case GateKind::attention: return "attention";
    case GateKind::head: return "head";
    case GateKind::ffn: return "ffn";
    case GateKind::ffn_unit: return "ffn_unit";
    case GateKind::hidden: return "hidden";
    case GateKind::hidden_kept: return "hidden_kept";
  }
  return "?";
}

bool Architecture::uniform() const {
  for (size_t l = 0; l < heads.size(); ++l)
    if (heads[l] != heads[0] || ffn[l] != ffn[0] || kv_heads_at(int64_t(l)) != kv_heads_at(0) || ragged(int64_t(l)))
      return false;
  return true;
}

std::vector<int64_t> Architecture::kv_map_at(int64_t layer) const {
  if (ragged(layer)) return kv_map[size_t(layer)];
  const int64_t h = heads[size_t(layer)], kv = kv_heads_at(layer);
  std::vector<int64_t> m(static_cast<size_t>(h));
  for (int64_t i = 0; i < h; ++i) m[size_t(i)] = i / (h / kv);
  return m;
}

Json Architecture::to_json() const {
  Json j;
  j["family"] = Json(family);
  j["vocab"] = Json(vocab);
  j["context"] = Json(context);
  j["width"] = Json(width);
  j["head_size"] = Json(head_size);
  Json::array_t h, kv, f;
  for (int64_t v : heads) h.push_back(Json(v));
  for (int64_t v : kv_heads) kv.push_back(Json(v));
  for (int64_t v : ffn) f.push_back(Json(v));
  j["heads"] = Json(h);
  if (!kv_heads.empty() && kv_heads != heads) j["kv_heads"] = Json(kv);
  j["ffn"] = Json(f);
  bool any_ragged = false;
  for (int64_t l = 0; l < layers(); ++l) any_ragged = any_ragged || ragged(l);
  if (any_ragged) {
    Json::array_t maps;
    for (int64_t l = 0; l < layers(); ++l) {
      Json::array_t m;
      if (ragged(l))
        for (int64_t v : kv_map[size_t(l)]) m.push_back(Json(v));
      maps.push_back(Json(m));
    }
    j["kv_map"] = Json(maps);
  }
  j["pre_ln"] = Json(pre_ln);
  j["tied"] = Json(tied);
  return j;
}

Architecture Architecture::from_json(const Json& j) {
  Architecture a;
  a.family = json_string(j.at("family"));
  a.vocab = json_int(j.at("vocab"));
  a.context = json_int(j.at("context"));
  a.width = json_int(j.at("width"));
  a.head_size = json_int(j.at("head_size"));
  for (const Json& v : json_array(j.at("heads"))) a.heads.push_back(json_int(v));
  for (const Json& v : json_array(j.at("ffn"))) a.ffn.push_back(json_int(v));
  if (j.contains("kv_heads"))
    for (const Json& v : json_array(j.at("kv_heads"))) a.kv_heads.push_back(json_int(v));
  if (j.contains("kv_map"))
    for (const Json& m : json_array(j.at("kv_map"))) {
      a.kv_map.emplace_back();
      for (const Json& v : json_array(m)) a.kv_map.back().push_back(json_int(v));
    }
  a.pre_ln = json_bool(j.at("pre_ln"));
  a.tied = json_bool(j.at("tied"));
  SCION_CHECK(a.heads.size() == a.ffn.size() && (a.kv_heads.empty() || a.kv_heads.size() == a.heads.size()) &&
                  (a.kv_map.empty() || a.kv_map.size() == a.heads.size()),
              "architecture: ", a.heads.size(), " head counts for ", a.kv_heads.size(), " key/value head counts, ",
              a.kv_map.size(), " key/value maps and ", a.ffn.size(), " FFN sizes");
  for (int64_t l = 0; l < a.layers(); ++l)
    if (a.ragged(l)) {
      SCION_CHECK(int64_t(a.kv_map[size_t(l)].size()) == a.heads[size_t(l)], "architecture: layer ", l, "'s key/value map has ",
                  a.kv_map[size_t(l)].size(), " entries for ", a.heads[size_t(l)], " query heads");
      SCION_CHECK(surgery::ragged_kv_map(a.kv_map[size_t(l)], a.kv_heads_at(l)) == a.kv_map[size_t(l)],
                  "architecture: layer ", l, "'s key/value map is the uniform grouping (store none)");
    }
  return a;
}

namespace {
// Key/value heads per layer, spelled out.
std::vector<int64_t> grouped(const Architecture& a) {
  std::vector<int64_t> kv;
  for (int64_t l = 0; l < a.layers(); ++l) kv.push_back(a.kv_heads_at(l));
  return kv;
}
}  // namespace

namespace {
// Ragged maps per layer, spelled out (empty entries for uniform layers).
std::vector<std::vector<int64_t>> ragged_maps(const Architecture& a) {
  std::vector<std::vector<int64_t>> m(size_t(a.layers()));
  for (int64_t l = 0; l < a.layers(); ++l)
    if (a.ragged(l)) m[size_t(l)] = a.kv_map[size_t(l)];
  return m;
}
}  // namespace

bool operator==(const Architecture& a, const Architecture& b) {
  return a.family == b.family && a.vocab == b.vocab && a.context == b.context && a.width == b.width &&
         a.head_size == b.head_size && a.heads == b.heads && grouped(a) == grouped(b) &&
         ragged_maps(a) == ragged_maps(b) && a.ffn == b.ffn && a.pre_ln == b.pre_ln && a.tied == b.tied;
}

int64_t gate_size(const Architecture& a, GateKind k, int64_t layer) {
  if (k == GateKind::hidden || k == GateKind::hidden_kept) return a.width;
  SCION_CHECK(layer >= 0 && layer < a.layers(), "gate ", gate_kind_name(k), ": layer ", layer,
              " does not exist (the model has ", a.layers(), " layers)");
  if (k == GateKind::head) return a.heads[size_t(layer)];
  if (k == GateKind::ffn_unit) return a.ffn[size_t(layer)];
  return 1;
}

namespace surgery {

namespace {
constexpr GateKind kLayerGates[] = {GateKind::layer, GateKind::attention, GateKind::head, GateKind::ffn,
                                    GateKind::ffn_unit};
constexpr GateKind kHiddenGates[] = {GateKind::hidden, GateKind::hidden_kept};

// The model's hidden gate, whichever rule it follows (kind `hidden` and no value when none).
GateEntry hidden_gate(const TransformerModel& m) {
  for (GateKind k : kHiddenGates)
    if (Tensor h = m.gate(k, -1); h.defined()) return {k, -1, h};
  return {GateKind::hidden, -1, Tensor()};
}

// dst[.., j, ..] = src[.., index[j], ..] along `axis` (0 or 1) of a 1-D or 2-D f32 tensor.
Tensor select_axis(const Tensor& t_in, int axis, const std::vector<int64_t>& index) {
  Tensor t = t_in.detach().contiguous();
  SCION_CHECK(t.dim() == 1 || t.dim() == 2, "surgery: cannot select units of ", t.desc());
  const int64_t r0 = t.size(0), c0 = t.dim() == 2 ? t.size(1) : 1;
  const int64_t r1 = axis == 0 ? int64_t(index.size()) : r0, c1 = axis == 1 ? int64_t(index.size()) : c0;
  Tensor out = Tensor::empty(t.dim() == 2 ? Shape{r1, c1} : Shape{r1});
  const float* s = t.data<float>();
  float* d = out.data<float>();
  for (int64_t i = 0; i < r1; ++i)
    for (int64_t j = 0; j < c1; ++j) {
      const int64_t si = axis == 0 ? index[size_t(i)] : i, sj = axis == 1 ? index[size_t(j)] : j;
      d[i * c1 + j] = s[si * c0 + sj];
    }
  return out;
}

std::string block_rest(const TransformerModel& m, const std::string& name, int64_t layer) {
  const std::string p = m.block_prefix(layer);
  SCION_CHECK(name.rfind(p, 0) == 0, "surgery: parameter '", name, "' of layer ", layer, " does not start with '", p, "'");
  return name.substr(p.size());
}
}  // namespace

Tensor select_units(const Tensor& t, int axis, const std::vector<int64_t>& index) { return select_axis(t, axis, index); }

std::vector<int64_t> ragged_kv_map(const std::vector<int64_t>& kv_of_head, int64_t kv_heads) {
  const int64_t h = int64_t(kv_of_head.size());
  SCION_CHECK(kv_heads > 0 && h >= kv_heads, "surgery: ", h, " query heads cannot read ", kv_heads,
              " key/value heads (each key/value head is read by at least one query head)");
  for (int64_t i = 0; i < h; ++i) {
    const int64_t j = kv_of_head[size_t(i)], prev = i == 0 ? -1 : kv_of_head[size_t(i - 1)];
    SCION_CHECK(j < kv_heads && (j == prev + 1 || (i > 0 && j == prev)), "surgery: query head ", i,
                " reads key/value head ", j, "; a key/value map runs through heads 0..", kv_heads - 1,
                " in order, each read by at least one query head");
  }
  SCION_CHECK(kv_of_head.back() == kv_heads - 1, "surgery: key/value heads ", kv_of_head.back() + 1, "..",
              kv_heads - 1, " are read by no query head");
  if (h % kv_heads == 0) {
    bool uniform = true;
    for (int64_t i = 0; i < h; ++i) uniform = uniform && kv_of_head[size_t(i)] == i / (h / kv_heads);
    if (uniform) return {};
  }
  return kv_of_head;
}

std::string GateEntry::name() const { return std::string(gate_kind_name(kind)) + "." + std::to_string(layer); }

std::vector<GateEntry> gates(const TransformerModel& m) {
  std::vector<GateEntry> out;
  const int64_t L = m.architecture().layers();
  for (int64_t l = 0; l < L; ++l)
    for (GateKind k : kLayerGates)
      if (Tensor g = m.gate(k, l); g.defined()) out.push_back({k, l, g});
  if (GateEntry h = hidden_gate(m); h.value.defined()) out.push_back(h);
  return out;
}

void clear_gates(TransformerModel& m) {
  const int64_t L = m.architecture().layers();
  for (int64_t l = 0; l < L; ++l)
    for (GateKind k : kLayerGates) m.set_gate(k, l, Tensor());
  for (GateKind k : kHiddenGates) m.set_gate(k, -1, Tensor());
}

void reorder_blocks(TransformerModel& m, const std::vector<int64_t>& order, uint64_t seed) {
  NoGradGuard ng;
  const Architecture a = m.architecture();
  const int64_t L = a.layers();
  SCION_CHECK(!order.empty(), "surgery: the new block order is empty (a model keeps at least one block)");
  for (int64_t s : order)
    SCION_CHECK(s >= -1 && s < L, "surgery: block ", s, " does not exist (the model has ", L, " blocks)");
  Architecture na = a;
  na.heads.clear();
  na.kv_heads.clear();
  na.kv_map.clear();
  na.ffn.clear();
  const bool grouped_kv = !a.kv_heads.empty();
  for (size_t i = 0; i < order.size(); ++i) {
    // An identity block takes the sizes of the nearest real block below it (or of block 0).
    int64_t s = order[i];
    for (size_t k = i; s < 0 && k-- > 0;) s = order[k];
    if (s < 0) s = 0;
    na.heads.push_back(a.heads[size_t(s)]);
    if (grouped_kv) na.kv_heads.push_back(a.kv_heads_at(s));
    if (!a.kv_map.empty()) na.kv_map.push_back(a.ragged(s) ? a.kv_map[size_t(s)] : std::vector<int64_t>());
    na.ffn.push_back(a.ffn[size_t(s)]);
  }
  std::map<std::string, Tensor> cur;
  for (const auto& [n, t] : m.module().named_parameters()) cur[n] = t;
  nn::NamedTensors params;
  for (const auto& [name, fresh] : m.initial_parameters(na, seed)) {
    const ParamLayout lay = m.layout(name);
    if (lay.layer < 0) {
      params.emplace_back(name, cur.at(name));
      continue;
    }
    const int64_t s = order[size_t(lay.layer)];
    if (s >= 0) {
      params.emplace_back(name, cur.at(m.block_prefix(s) + block_rest(m, name, lay.layer)));
    } else {
      // Identity block: fresh weights, but nothing written into the residual stream.
      params.emplace_back(name, lay.residual_write ? Tensor::zeros(fresh.shape()) : fresh);
    }
  }
  std::map<std::pair<int, int64_t>, Tensor> old_gates;
  for (int64_t l = 0; l < L; ++l)
    for (GateKind k : kLayerGates) old_gates[{int(k), l}] = m.gate(k, l);
  const GateEntry hidden = hidden_gate(m);
  m.rebuild(na, params);
  // Gates travel with their blocks; an identity block starts ungated.
  for (size_t i = 0; i < order.size(); ++i)
    if (order[i] >= 0)
      for (GateKind k : kLayerGates) m.set_gate(k, int64_t(i), old_gates[{int(k), order[i]}]);
  m.set_gate(hidden.kind, -1, hidden.value);
}

void keep_units(TransformerModel& m, Unit unit, int64_t layer, const std::vector<int64_t>& keep) {
  NoGradGuard ng;
  const Architecture a = m.architecture();
  SCION_CHECK(unit == Unit::head || unit == Unit::ffn || unit == Unit::hidden,
              "surgery: keep_units takes heads, FFN units or hidden dimensions, not ", unit_name(unit));
  if (unit != Unit::hidden)
    SCION_CHECK(layer >= 0 && layer < a.layers(), "surgery: layer ", layer, " does not exist (the model has ",
                a.layers(), " layers)");
  const int64_t n = unit == Unit::hidden ? a.width : unit == Unit::head ? a.heads[size_t(layer)] : a.ffn[size_t(layer)];
  for (size_t i = 0; i < keep.size(); ++i) {
    SCION_CHECK(keep[i] >= 0 && keep[i] < n, "surgery: ", unit_name(unit), " ", keep[i], " does not exist (",
                n, " of them", unit == Unit::hidden ? "" : " in layer " + std::to_string(layer), ")");
    SCION_CHECK(i == 0 || keep[i] > keep[i - 1], "surgery: the units to keep must be sorted and distinct");
  }
  SCION_CHECK(unit != Unit::hidden || !keep.empty(), "surgery: a model keeps at least one hidden dimension");
  Architecture na = a;
  if (unit == Unit::hidden) na.width = int64_t(keep.size());
  if (unit == Unit::head) na.heads[size_t(layer)] = int64_t(keep.size());
  // A grouped-query layer keeps the key/value heads that some kept query head reads; the kept
  // query heads' map onto them may leave groups of different sizes (ragged).
  std::vector<int64_t> keep_kv;
  if (unit == Unit::head && a.kv_heads_at(layer) != n) {
    const std::vector<int64_t> old_map = a.kv_map_at(layer);
    for (int64_t h : keep)
      if (keep_kv.empty() || keep_kv.back() != old_map[size_t(h)]) keep_kv.push_back(old_map[size_t(h)]);
    std::vector<int64_t> new_map;
    for (int64_t h : keep) new_map.push_back(int64_t(std::find(keep_kv.begin(), keep_kv.end(), old_map[size_t(h)]) -
                                                     keep_kv.begin()));
    const std::vector<int64_t> ragged = keep.empty() ? std::vector<int64_t>() : ragged_kv_map(new_map, int64_t(keep_kv.size()));
    if (!ragged.empty() || a.ragged(layer)) {
      na.kv_map.resize(size_t(a.layers()));
      na.kv_map[size_t(layer)] = ragged;
    }
  }
  if (unit == Unit::head && !a.kv_heads.empty())
    na.kv_heads[size_t(layer)] = a.kv_heads_at(layer) != n ? int64_t(keep_kv.size()) : int64_t(keep.size());
  if (unit == Unit::ffn) na.ffn[size_t(layer)] = int64_t(keep.size());
  // The index along an axis of `u` in `l` that keeps only the kept units.
  const int64_t D = a.head_size;
  auto index_for = [&](const AxisLayout& ax, int64_t l) -> std::vector<int64_t> {
    const bool hit = (unit == Unit::hidden && ax.unit == Unit::hidden) ||
                     (unit == Unit::head && l == layer &&
                      (ax.unit == Unit::head || ax.unit == Unit::qkv || ax.unit == Unit::kv_head)) ||
                     (unit == Unit::ffn && l == layer && ax.unit == Unit::ffn);
    if (!hit) return {};
    std::vector<int64_t> idx;
    if (unit == Unit::head && l == layer && ax.unit == Unit::kv_head) {
      for (int64_t j : keep_kv)
        for (int64_t d = 0; d < D; ++d) idx.push_back(j * D + d);
      return idx;
    }
    if (unit != Unit::head) return keep;
    const int blocks = ax.unit == Unit::qkv ? 3 : 1;
    for (int b = 0; b < blocks; ++b)
      for (int64_t h : keep)
        for (int64_t d = 0; d < D; ++d) idx.push_back(b * n * D + h * D + d);
    return idx;
  };
  nn::NamedTensors params;
  const bool removes_sublayer = unit != Unit::hidden && keep.empty();
  for (const auto& [name, t] : m.module().named_parameters()) {
    const ParamLayout lay = m.layout(name);
    Tensor v = t;
    for (int ax = 0; ax < t.dim() && ax < 2; ++ax) {
      const std::vector<int64_t> idx = index_for(lay.axis[ax], lay.layer);
      if (!idx.empty()) v = select_axis(v, ax, idx);
    }
    params.emplace_back(name, v);
  }
  if (removes_sublayer) {
    // The sublayer's tensors, its LayerNorm included, are the ones the new architecture no
    // longer has: keep exactly those it has.
    std::map<std::string, Tensor> by(params.begin(), params.end());
    params.clear();
    for (const auto& [name, fresh] : m.initial_parameters(na, 0)) {
      auto it = by.find(name);
      SCION_CHECK(it != by.end(), "surgery: '", name, "' has no source when removing a sublayer");
      params.emplace_back(name, it->second);
    }
  }
  // Gates shrink with their structure.
  std::map<std::pair<int, int64_t>, Tensor> g;
  for (int64_t l = 0; l < a.layers(); ++l)
    for (GateKind k : kLayerGates) g[{int(k), l}] = m.gate(k, l);
  GateEntry hidden = hidden_gate(m);
  m.rebuild(na, params);
  for (int64_t l = 0; l < a.layers(); ++l)
    for (GateKind k : kLayerGates) {
      Tensor v = g[{int(k), l}];
      if (!v.defined() || l != layer) {
        m.set_gate(k, l, v);
        continue;
      }
      if ((unit == Unit::head && k == GateKind::head) || (unit == Unit::ffn && k == GateKind::ffn_unit))
        v = keep.empty() ? Tensor() : select_axis(v.view({v.numel()}), 0, keep);
      if (keep.empty() && ((unit == Unit::head && k == GateKind::attention) || (unit == Unit::ffn && k == GateKind::ffn)))
        v = Tensor();
      m.set_gate(k, l, v);
    }
  Tensor& h = hidden.value;
  if (h.defined() && unit == Unit::hidden) h = select_axis(h.view({h.numel()}), 0, keep);
  m.set_gate(hidden.kind, -1, h);
}

std::string block_source(const TransformerModel& m, const std::string& param, const std::vector<int64_t>& order) {
  if (order.empty()) return param;
  const ParamLayout lay = m.layout(param);
  if (lay.layer < 0) return param;
  SCION_CHECK(lay.layer < int64_t(order.size()), "surgery: layer ", lay.layer, " of '", param,
              "' is beyond the new depth ", order.size());
  const int64_t s = order[size_t(lay.layer)];
  return s < 0 ? std::string() : m.block_prefix(s) + block_rest(m, param, lay.layer);
}

TransformerModel& transformer(Model& target, const char* who) {
  auto* t = dynamic_cast<TransformerModel*>(&target);
  SCION_CHECK(t, who, ": the target is not a transformer model (hint: target a model.gpt or model.bert node, or a "
              "model plugin that implements scion::TransformerModel)");
  return *t;
}

}  // namespace surgery
}  // namespace scion
