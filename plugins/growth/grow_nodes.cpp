// grow.* op nodes: applied to a transformer model node when a stage starts, through the SDK's
// model-surgery interface only (any model plugin implementing scion::TransformerModel).
#include "grow_ops.h"
#include "masked_growth.h"
#include "scion/growth.h"
#include "scion/random.h"
#include "scion/sizes.h"

namespace scion::growth {
namespace {

std::vector<int64_t> parse_ints(const std::vector<std::string>& v, const char* who) {
  std::vector<int64_t> out;
  for (const auto& s : v) {
    try {
      out.push_back(std::stoll(s));
    } catch (const std::exception&) {
      throw Error(std::string(who) + ": '" + s + "' is not an integer");
    }
  }
  return out;
}

WidthOptions width_options(const Params& p, Method m) {
  WidthOptions o;
  o.width = p.integer("width");
  o.ffn = p.integer("ffn");
  o.uniform = p.boolean("uniform");
  o.noise = float(p.number("noise"));
  o.seed = p.context().seed;
  o.method = m;
  return o;
}

class Wider final : public Op {
 public:
  explicit Wider(const Params& p) : p_(p) {}
  void apply(Model& t, const StepContext& ctx) override {
    widen(growable(t, ctx, "grow.net2wider"), width_options(p_, Method::fpi), "grow.net2wider");
  }
  Params p_;
};

class Deeper final : public DepthOp {
 public:
  explicit Deeper(const Params& p)
      : after_(parse_ints(p.strings("after"), "grow.net2deeper")), seed_(p.context().seed) {}
  void apply(Model& t, const StepContext& ctx) override {
    TransformerModel& m = growable(t, ctx, "grow.net2deeper");
    reorder(m, identity_insertion_order(m.architecture().layers(), after_), seed_);
  }
  std::vector<int64_t> after_;
  uint64_t seed_;
};

class Stack final : public DepthOp {
 public:
  void apply(Model& t, const StepContext& ctx) override {
    TransformerModel& m = growable(t, ctx, "grow.stack");
    reorder(m, stacking_order(m.architecture().layers()), 0);
  }
};

class Bert2Bert final : public DepthOp {
 public:
  explicit Bert2Bert(const Params& p) : p_(p) {}
  void apply(Model& t, const StepContext& ctx) override {
    const std::string m = p_.string("method");
    SCION_CHECK(m == "fpi" || m == "aki", "grow.bert2bert: method must be fpi or aki, got '", m, "'");
    WidthOptions o = width_options(p_, m == "aki" ? Method::aki : Method::fpi);
    const int64_t layers = p_.integer("layers");
    TransformerModel& mt = growable(t, ctx, "grow.bert2bert");
    const Architecture c = mt.architecture();
    const int64_t ffn = c.ffn.empty() ? 0 : c.ffn[0];
    // Refuse a request that would shrink or leave the model as it is (likely a typo in a graph).
    if (o.width == 0) o.width = c.width;
    SCION_CHECK(o.width >= c.width, "grow.bert2bert: width ", o.width, " is smaller than the model's ", c.width);
    SCION_CHECK(layers == 0 || layers >= c.layers(), "grow.bert2bert: layers ", layers, " is fewer than the model's ",
                c.layers());
    const bool widens = o.width > c.width || (o.ffn > 0 && o.ffn != ffn);
    SCION_CHECK(widens || layers > c.layers(), "grow.bert2bert: width ", o.width, ", ffn ", o.ffn, " and layers ",
                layers, " do not grow the model (width ", c.width, ", ffn ", ffn, ", ", c.layers(),
                " layers; hint: set width, ffn or layers above the current size)");
    if (layers > c.layers())
      check_fits(c, o.width, o.ffn > 0 ? o.ffn : checked_mul(ffn, o.width, "the grown FFN") / std::max<int64_t>(c.width, 1),
                 layers, "grow.bert2bert");
    if (widens) widen(mt, o, "grow.bert2bert");
    if (layers > c.layers()) reorder(mt, bert2bert_depth_order(c.layers(), layers), derive_seed(o.seed, 0xde));
  }
  Params p_;
};

class Masked final : public Op {
 public:
  explicit Masked(const Params& p) : p_(p) {}
  void apply(Model& t, const StepContext& ctx) override {
    MaskedOptions o;
    o.width = p_.integer("width");
    o.ffn = p_.integer("ffn");
    o.layers = p_.integer("layers");
    o.ramp_steps = p_.integer("ramp_steps");
    const std::string init = p_.string("new_layers");
    SCION_CHECK(init == "random" || init == "stack", "grow.masked: new_layers must be random or stack, got '", init, "'");
    o.stack_new_layers = init == "stack";
    o.seed = p_.context().seed;
    TransformerModel& m = growable(t, ctx, "grow.masked");
    grow_masked(m, o, ctx.step);
    model_ = &m;
  }
  // MSG's transfer of optimizer state: the old moments take the old units' places, the new
  // units start from zero moments.
  Tensor carry_state(const std::string& param, const Tensor& old_state, const Shape& new_shape) const override {
    Tensor t = Tensor::zeros(new_shape);
    place_old(param, model_->layout(param), old_state, t);
    return t;
  }
  Params p_;
  const TransformerModel* model_ = nullptr;
};

class Subnets final : public Op {
 public:
  explicit Subnets(const Params& p) : enabled_(p.boolean("enabled")), min_layers_(p.integer("min_layers")) {}
  void apply(Model& t, const StepContext&) override {
    surgery::transformer(t, "grow.subnets").set_depth_sampling(enabled_, min_layers_);
  }
  bool enabled_;
  int64_t min_layers_;
};

std::vector<ParamSpec> width_params() {
  return {int_param("width", 0, "new hidden width (a multiple of the head size)").at_least(1).needed(),
          int_param("ffn", 0, "new FFN width (0 = keep the FFN/width ratio)").at_least(0),
          bool_param("uniform", true, "uniform unit duplication (exact under LayerNorm)"),
          num_param("noise", 0.0,
                    "std of symmetry-breaking noise on divided copies, zero-sum over each unit's copies (exact where "
                    "fpi with a uniform map is)").at_least(0)};
}

PluginEntry wider_entry() {
  return op_entry("grow.net2wider", "Net2WiderNet: copy units, divide their outgoing weights; unties the head",
                  width_params(), [](const Params& p, const NodeResolver&) { return std::make_shared<Wider>(p); });
}
PluginEntry deeper_entry() {
  return op_entry("grow.net2deeper", "Net2DeeperNet: insert identity blocks (exact in pre-LN GPT)",
                  {{"after", ParamType::string_list, Json(), true, "insert one block after each listed layer (-1 = bottom)"}},
                  [](const Params& p, const NodeResolver&) { return std::make_shared<Deeper>(p); });
}
PluginEntry stack_entry() {
  return op_entry("grow.stack", "StackingBERT: L layers -> 2L, order [0..L-1, 0..L-1]", {},
                  [](const Params&, const NodeResolver&) { return std::make_shared<Stack>(); });
}
PluginEntry b2b_entry() {
  auto params = width_params();
  params[0] = int_param("width", 0, "new hidden width, a multiple of the head size (0 = unchanged)").at_least(0);
  params.push_back(str_param("method", "aki", "fpi | aki (new units of layer l from layer l+1)").one_of({"fpi", "aki"}));
  params.push_back(int_param("layers", 0, "target depth by bert2BERT stacking (0 = unchanged)").at_least(0));
  return op_entry("grow.bert2bert", "bert2BERT: FPI or AKI width growth, then depth by stacking", params,
                  [](const Params& p, const NodeResolver&) { return std::make_shared<Bert2Bert>(p); });
}
PluginEntry subnets_entry() {
  return op_entry("grow.subnets", "bert2BERT two-stage training: train sampled bottom sub-models (on) / the full model (off)",
                  {bool_param("enabled", true, "sample a prefix depth each step from now on (false: full model)"),
                   int_param("min_layers", 1, "smallest prefix depth sampled").at_least(1)},
                  [](const Params& p, const NodeResolver&) { return std::make_shared<Subnets>(p); });
}

PluginEntry masked_entry() {
  return op_entry("grow.masked", "MSG: new hidden units, heads, FFN units and layers behind structural gates rising 0 -> 1 "
                  "(exact at growth; old optimizer moments carry over)",
                  {int_param("width", 0,
                             "new hidden width, a multiple of the head size; heads follow at a fixed head size (0 = unchanged)")
                       .at_least(0),
                   int_param("ffn", 0, "new FFN width (0 = unchanged)").at_least(0),
                   int_param("layers", 0, "new layer count, added on top (0 = unchanged)").at_least(0),
                   int_param("ramp_steps", 1000, "updates (across stages) for the masks to reach 1").at_least(1),
                   str_param("new_layers", "random",
                             "random | stack: new layer l starts from old layer l mod L (MSG's stack_block); exact either way")
                       .one_of({"random", "stack"})},
                  [](const Params& p, const NodeResolver&) { return std::make_shared<Masked>(p); });
}

}  // namespace
}  // namespace scion::growth

using scion::growth::b2b_entry;
using scion::growth::deeper_entry;
using scion::growth::masked_entry;
using scion::growth::stack_entry;
using scion::growth::subnets_entry;
using scion::growth::wider_entry;
SCION_REGISTER_PLUGIN(wider_entry)
SCION_REGISTER_PLUGIN(deeper_entry)
SCION_REGISTER_PLUGIN(stack_entry)
SCION_REGISTER_PLUGIN(b2b_entry)
SCION_REGISTER_PLUGIN(masked_entry)
SCION_REGISTER_PLUGIN(subnets_entry)
