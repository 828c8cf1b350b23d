#include "growth.h"

#include <map>
#include <regex>

#include "scion/autograd.h"
#include "scion/random.h"

namespace scion::growth {

namespace {

enum class Role : uint8_t { none, residual, heads, qkv, ffn };
struct Axis {
  Role role = Role::none;
  bool divide = false;  // in-axis: divide by copy count; out-axis: copy
};
struct Rule {
  Axis axis[2];
  int64_t layer = -1;  // per-layer tensors: their layer index
};

struct Maps {
  UnitMap residual;
  std::vector<UnitMap> heads, ffn;  // per layer
  int64_t head_dim = 0;
};

// Source index and divisor for new index j along an axis.
void source_of(const Maps& m, Role r, int64_t layer, int64_t j, int64_t& src, int64_t& copies, bool& fresh) {
  switch (r) {
    case Role::none: src = j, copies = 1, fresh = false; return;
    case Role::residual:
      src = m.residual.g[size_t(j)], copies = m.residual.count[size_t(src)], fresh = j >= m.residual.old_size();
      return;
    case Role::ffn: {
      const UnitMap& f = m.ffn[size_t(layer)];
      src = f.g[size_t(j)], copies = f.count[size_t(src)], fresh = j >= f.old_size();
      return;
    }
    case Role::heads:
    case Role::qkv: {
      const UnitMap& h = m.heads[size_t(layer)];
      const int64_t D = m.head_dim, block_new = h.new_size() * D, block_old = h.old_size() * D;
      const int64_t block = r == Role::qkv ? j / block_new : 0, in = j % block_new;
      const int64_t hs = h.g[size_t(in / D)];
      src = block * block_old + hs * D + in % D, copies = h.count[size_t(hs)], fresh = in / D >= h.old_size();
      return;
    }
  }
}

int64_t new_extent(const Maps& m, Role r, int64_t layer, int64_t old) {
  switch (r) {
    case Role::none: return old;
    case Role::residual: return m.residual.new_size();
    case Role::ffn: return m.ffn[size_t(layer)].new_size();
    case Role::heads: return m.heads[size_t(layer)].new_size() * m.head_dim;
    case Role::qkv: return 3 * m.heads[size_t(layer)].new_size() * m.head_dim;
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
    if (!rule.axis[ax].divide) continue;
    const int64_t n_div = ax == 0 ? r1 : c1, n_other = ax == 0 ? c1 : r1;
    std::vector<int64_t> src(static_cast<size_t>(n_div)), copies(static_cast<size_t>(n_div));
    for (int64_t k = 0; k < n_div; ++k) {
      bool fresh;
      source_of(m, rule.axis[ax].role, rule.layer, k, src[size_t(k)], copies[size_t(k)], fresh);
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

// Expands a 1-D or 2-D tensor. `upper` (AKI) supplies the new out-units when defined.
Tensor expand(const Tensor& w_in, const Rule& rule, const Maps& m, const Tensor& upper_in, float noise, uint64_t seed) {
  Tensor w = w_in.detach().contiguous();
  Tensor upper = upper_in.defined() ? upper_in.detach().contiguous() : Tensor();
  const int64_t nd = w.dim();
  SCION_CHECK(nd == 1 || nd == 2, "growth: cannot expand ", w.desc());
  const int64_t r0 = w.size(0), c0 = nd == 2 ? w.size(1) : 1;
  const Axis a0 = rule.axis[0], a1 = nd == 2 ? rule.axis[1] : Axis{};
  const int64_t r1 = new_extent(m, a0.role, rule.layer, r0), c1 = nd == 2 ? new_extent(m, a1.role, rule.layer, c0) : 1;
  Tensor out = Tensor::empty(nd == 2 ? Shape{r1, c1} : Shape{r1});
  const float* src = w.data<float>();
  const float* up = upper.defined() ? upper.data<float>() : nullptr;
  float* dst = out.data<float>();
  for (int64_t i = 0; i < r1; ++i) {
    int64_t si, ci;
    bool fi;
    source_of(m, a0.role, rule.layer, i, si, ci, fi);
    for (int64_t j = 0; j < c1; ++j) {
      int64_t sj = j, cj = 1;
      bool fj = false;
      if (nd == 2) source_of(m, a1.role, rule.layer, j, sj, cj, fj);
      // AKI: a new out-unit (a copied, not divided, axis) reads the upper layer's weights.
      const bool from_upper = up && ((!a0.divide && a0.role != Role::none && fi) || (!a1.divide && a1.role != Role::none && fj));
      float v = (from_upper ? up : src)[si * c0 + sj];
      if (a0.divide) v /= float(ci);
      if (a1.divide) v /= float(cj);
      dst[i * c1 + j] = v;
    }
  }
  if (noise > 0.f) add_zero_sum_noise(out, rule, m, noise, seed);
  return out;
}

Rule gpt_rule(const std::string& name) {
  static const std::regex layer_re(R"(transformer\.h\.(\d+)\.(.*))");
  std::smatch mt;
  Rule r;
  const Axis R{Role::residual, false}, Rd{Role::residual, true};
  if (std::regex_match(name, mt, layer_re)) {
    r.layer = std::stoll(mt[1]);
    const std::string s = mt[2];
    if (s == "ln_1.weight" || s == "ln_1.bias" || s == "ln_2.weight" || s == "ln_2.bias" || s == "attn.c_proj.bias" ||
        s == "mlp.c_proj.bias")
      r.axis[0] = R;
    else if (s == "attn.c_attn.weight") r.axis[0] = Rd, r.axis[1] = {Role::qkv, false};
    else if (s == "attn.c_attn.bias") r.axis[0] = {Role::qkv, false};
    else if (s == "attn.c_proj.weight") r.axis[0] = {Role::heads, true}, r.axis[1] = R;
    else if (s == "mlp.c_fc.weight") r.axis[0] = Rd, r.axis[1] = {Role::ffn, false};
    else if (s == "mlp.c_fc.bias") r.axis[0] = {Role::ffn, false};
    else if (s == "mlp.c_proj.weight") r.axis[0] = {Role::ffn, true}, r.axis[1] = R;
    else throw Error("growth: no rule for GPT parameter '" + name + "'");
    return r;
  }
  if (name == "transformer.wte.weight" || name == "transformer.wpe.weight") r.axis[1] = R;
  else if (name == "transformer.ln_f.weight" || name == "transformer.ln_f.bias") r.axis[0] = R;
  else if (name == "lm_head.weight") r.axis[1] = Rd;
  else throw Error("growth: no rule for GPT parameter '" + name + "'");
  return r;
}

Rule bert_rule(const std::string& name) {
  static const std::regex layer_re(R"(bert\.encoder\.layer\.(\d+)\.(.*))");
  std::smatch mt;
  Rule r;
  const Axis R{Role::residual, false}, Rd{Role::residual, true};
  if (std::regex_match(name, mt, layer_re)) {
    r.layer = std::stoll(mt[1]);
    const std::string s = mt[2];
    if (s.find("LayerNorm") != std::string::npos || s == "attention.output.dense.bias" || s == "output.dense.bias")
      r.axis[0] = R;
    else if (s == "attention.self.query.weight" || s == "attention.self.key.weight" || s == "attention.self.value.weight")
      r.axis[0] = {Role::heads, false}, r.axis[1] = Rd;
    else if (s == "attention.self.query.bias" || s == "attention.self.key.bias" || s == "attention.self.value.bias")
      r.axis[0] = {Role::heads, false};
    else if (s == "attention.output.dense.weight") r.axis[0] = R, r.axis[1] = {Role::heads, true};
    else if (s == "intermediate.dense.weight") r.axis[0] = {Role::ffn, false}, r.axis[1] = Rd;
    else if (s == "intermediate.dense.bias") r.axis[0] = {Role::ffn, false};
    else if (s == "output.dense.weight") r.axis[0] = R, r.axis[1] = {Role::ffn, true};
    else throw Error("growth: no rule for BERT parameter '" + name + "'");
    return r;
  }
  if (name.rfind("bert.embeddings.", 0) == 0) {
    if (name.find("LayerNorm") != std::string::npos) r.axis[0] = R;
    else r.axis[1] = R;
  } else if (name == "cls.predictions.transform.dense.weight") r.axis[0] = R, r.axis[1] = Rd;
  else if (name == "cls.predictions.transform.dense.bias" || name.find("transform.LayerNorm") != std::string::npos)
    r.axis[0] = R;
  else if (name == "cls.predictions.decoder.weight") r.axis[1] = Rd;
  else if (name == "cls.predictions.bias") {
  } else throw Error("growth: no rule for BERT parameter '" + name + "'");
  return r;
}

Maps build_maps(int64_t old_width, int64_t old_heads, int64_t old_ffn, int64_t layers, const WidthOptions& o,
                int64_t& new_heads, int64_t& new_ffn, const char* who) {
  const int64_t D = old_width / old_heads;
  SCION_CHECK(o.width >= old_width, who, ": new width ", o.width, " is smaller than the old ", old_width);
  SCION_CHECK(o.width % D == 0, who, ": new width ", o.width, " is not a multiple of the head size ", D,
              " (heads grow at a fixed head size)");
  new_heads = o.width / D;
  new_ffn = o.ffn > 0 ? o.ffn : old_ffn * o.width / old_width;  // 0: keep the FFN/width ratio
  SCION_CHECK(new_ffn >= old_ffn, who, ": new FFN width ", new_ffn, " is smaller than the old ", old_ffn);
  Maps m;
  m.head_dim = D;
  m.residual = make_map(old_width, o.width, o.uniform, derive_seed(o.seed, 1));
  for (int64_t l = 0; l < layers; ++l) {  // head and FFN maps are sampled per layer
    m.heads.push_back(make_map(old_heads, new_heads, o.uniform, derive_seed(o.seed, 1000 + uint64_t(l))));
    m.ffn.push_back(make_map(old_ffn, new_ffn, o.uniform, derive_seed(o.seed, 2000 + uint64_t(l))));
  }
  return m;
}

// The tensor of the same name in layer l+1 (AKI's source of new units), if any.
Tensor upper_of(const nn::NamedTensors& sd, const std::string& name, const std::string& layer_prefix, int64_t layer,
                int64_t layers) {
  if (layer < 0 || layer + 1 >= layers) return Tensor();
  const std::string here = layer_prefix + std::to_string(layer) + ".";
  const std::string up = layer_prefix + std::to_string(layer + 1) + "." + name.substr(here.size());
  for (const auto& [n, t] : sd)
    if (n == up) return t;
  return Tensor();
}

template <class RuleFn>
nn::NamedTensors widen_state(const nn::NamedTensors& sd, RuleFn rule, const Maps& maps, const WidthOptions& o,
                             const std::string& layer_prefix, int64_t layers) {
  nn::NamedTensors out;
  uint64_t k = 0;
  for (const auto& [name, t] : sd) {
    const Rule r = rule(name);
    Tensor upper = o.method == Method::aki ? upper_of(sd, name, layer_prefix, r.layer, layers) : Tensor();
    out.emplace_back(name, expand(t, r, maps, upper, o.noise, derive_seed(o.seed, 5000 + k++)));
  }
  return out;
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

std::unique_ptr<lm::GptModel> widen(const lm::GptModel& src, const WidthOptions& o) {
  NoGradGuard ng;
  const lm::GptConfig& c = src.config();
  lm::GptConfig nc = c;
  int64_t H = 0, F = 0;
  Maps maps = build_maps(c.width, c.heads, c.ffn, c.layers, o, H, F, "grow.net2wider");
  nc.width = o.width;
  nc.heads = H;
  nc.ffn = F;
  nc.tied = false;  // a tied head cannot be both copied (input) and divided (output)
  nn::NamedTensors sd = src.state_dict();
  if (c.tied) sd.emplace_back("lm_head.weight", src.parameter("transformer.wte.weight"));
  auto out = std::make_unique<lm::GptModel>(nc);
  out->load_state_dict(widen_state(sd, gpt_rule, maps, o, "transformer.h.", c.layers));
  return out;
}

std::unique_ptr<lm::BertModel> widen(const lm::BertModel& src, const WidthOptions& o) {
  NoGradGuard ng;
  const lm::BertConfig& c = src.config();
  lm::BertConfig nc = c;
  int64_t H = 0, F = 0;
  Maps maps = build_maps(c.width, c.heads, c.ffn, c.layers, o, H, F, "grow.bert2bert");
  nc.width = o.width;
  nc.heads = H;
  nc.ffn = F;
  nc.tied = false;
  nn::NamedTensors sd = src.state_dict();
  if (c.tied) sd.emplace_back("cls.predictions.decoder.weight", src.parameter("bert.embeddings.word_embeddings.weight"));
  auto out = std::make_unique<lm::BertModel>(nc);
  out->load_state_dict(widen_state(sd, bert_rule, maps, o, "bert.encoder.layer.", c.layers));
  return out;
}

namespace {
template <class Model, class Config>
std::unique_ptr<Model> deepen_impl(const Model& src, const std::vector<int64_t>& order, const std::string& prefix,
                                   const std::vector<std::string>& zero_for_identity, const char* who) {
  NoGradGuard ng;
  Config nc = src.config();
  const int64_t L = nc.layers;
  SCION_CHECK(!order.empty(), who, ": the new layer order is empty");
  for (int64_t s : order)
    SCION_CHECK(s >= -1 && s < L, who, ": layer ", s, " does not exist in the source (", L, " layers)");
  nc.layers = int64_t(order.size());
  auto out = std::make_unique<Model>(nc);
  nn::NamedTensors sd = src.state_dict(), fresh = out->state_dict(), result;
  std::map<std::string, Tensor> by_name(sd.begin(), sd.end());
  for (const auto& [name, t] : fresh) {
    if (name.rfind(prefix, 0) != 0) {
      result.emplace_back(name, by_name.at(name));
      continue;
    }
    const size_t dot = name.find('.', prefix.size());
    const int64_t l = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
    const std::string rest = name.substr(dot + 1);
    const int64_t s = order[size_t(l)];
    if (s >= 0) {
      result.emplace_back(name, by_name.at(prefix + std::to_string(s) + "." + rest));
    } else {
      // Identity block: keep the fresh initialisation but zero the projections that write
      // into the residual stream, so the block adds nothing.
      bool zero = false;
      for (const auto& z : zero_for_identity) zero |= rest == z;
      result.emplace_back(name, zero ? Tensor::zeros(t.shape()) : t);
    }
  }
  out->load_state_dict(result);
  return out;
}
}  // namespace

std::unique_ptr<lm::GptModel> deepen(const lm::GptModel& src, const std::vector<int64_t>& order) {
  return deepen_impl<lm::GptModel, lm::GptConfig>(
      src, order, "transformer.h.",
      {"attn.c_proj.weight", "attn.c_proj.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"}, "grow (GPT depth)");
}

std::unique_ptr<lm::BertModel> deepen(const lm::BertModel& src, const std::vector<int64_t>& order) {
  return deepen_impl<lm::BertModel, lm::BertConfig>(
      src, order, "bert.encoder.layer.",
      {"attention.output.dense.weight", "attention.output.dense.bias", "output.dense.weight", "output.dense.bias"},
      "grow (BERT depth)");
}

std::vector<int64_t> stacking_order(int64_t L) {
  std::vector<int64_t> o;
  for (int rep = 0; rep < 2; ++rep)
    for (int64_t l = 0; l < L; ++l) o.push_back(l);
  return o;
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

std::string layer_source(const std::string& param, const std::vector<int64_t>& order) {
  for (const std::string prefix : {"transformer.h.", "bert.encoder.layer."}) {
    if (param.rfind(prefix, 0) != 0) continue;
    const size_t dot = param.find('.', prefix.size());
    const int64_t l = std::stoll(param.substr(prefix.size(), dot - prefix.size()));
    if (order.empty()) return param;
    SCION_CHECK(l >= 0 && l < int64_t(order.size()), "layer ", l, " of '", param, "' is beyond the new depth ",
                order.size());
    const int64_t s = order[size_t(l)];
    return s < 0 ? std::string() : prefix + std::to_string(s) + param.substr(dot);
  }
  return param;
}

}  // namespace scion::growth
