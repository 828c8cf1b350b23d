// grow.* op nodes: applied to a model node (model.gpt or model.bert) when a stage starts.
// Built into the scion_lm plugin library (they need the concrete model types).
#include "growth.h"
#include "lm_nodes.h"

namespace scion::growth {
namespace {

using lm::BertNode;
using lm::GptNode;

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

// A model inside a grow.masked ramp computes through its masks; replacing it would drop them
// and change its function mid-ramp.
template <class N>
void refuse_mid_ramp(const N& node, const StepContext& ctx, const char* who) {
  const growth::MaskedFrom& r = node.mask_ramp();
  const int64_t done = ctx.step - r.at_step;
  SCION_CHECK(!r.active() || done >= r.ramp_steps, who, ": the model is ", done, " of ", r.ramp_steps,
              " updates into a grow.masked ramp; growing it now would drop the masks and change what it "
              "computes (hint: apply this op in a stage that starts after the ramp ends)");
}

// Runs `gpt` or `bert` on the target's concrete model node; growth ops refuse a model that is
// still ramping in its masks (grows = false for ops that keep the model, such as grow.subnets).
template <class Fg, class Fb>
void on_model(Model& target, const StepContext& ctx, const char* who, Fg gpt, Fb bert, bool grows = true) {
  if (auto* g = dynamic_cast<GptNode*>(&target)) {
    if (grows) refuse_mid_ramp(*g, ctx, who);
    return gpt(*g);
  }
  if (auto* b = dynamic_cast<BertNode*>(&target)) {
    if (grows) refuse_mid_ramp(*b, ctx, who);
    return bert(*b);
  }
  throw Error(std::string(who) + " grows model.gpt and model.bert nodes only");
}

WidthOptions width_options(const Params& p, Method m) {
  WidthOptions o;
  o.width = p.i("width");
  o.ffn = p.i("ffn");
  o.uniform = p.b("uniform");
  o.noise = float(p.f("noise"));
  o.seed = uint64_t(p.i("__seed"));
  o.method = m;
  return o;
}

class Wider final : public Op {
 public:
  explicit Wider(const Params& p) : p_(p) {}
  void apply(Model& t, const StepContext& ctx) override {
    const WidthOptions o = width_options(p_, Method::fpi);
    on_model(t, ctx, "grow.net2wider", [&](GptNode& g) { g.replace(widen(g.gpt(), o)); },
             [&](BertNode& b) { b.replace(widen(b.bert(), o)); });
  }
  Params p_;
};

// Depth ops move layers: each new layer's optimizer state continues its source layer's (as
// StackingBERT's --double-optimizer), an identity block's restarts.
class DepthOp : public Op {
 public:
  std::string state_source(const std::string& param) const override { return layer_source(param, order_); }

 protected:
  std::vector<int64_t> order_;  // set by apply(); empty = the depth did not change
};

class Deeper final : public DepthOp {
 public:
  explicit Deeper(const Params& p) : after_(parse_ints(p.strings("after"), "grow.net2deeper")) {}
  void apply(Model& t, const StepContext& ctx) override {
    on_model(t, ctx, "grow.net2deeper",
        [&](GptNode& g) {
          order_ = identity_insertion_order(g.gpt().config().layers, after_);
          g.replace(deepen(g.gpt(), order_));
        },
        [&](BertNode& b) {
          order_ = identity_insertion_order(b.bert().config().layers, after_);
          b.replace(deepen(b.bert(), order_));
        });
  }
  std::vector<int64_t> after_;
};

class Stack final : public DepthOp {
 public:
  void apply(Model& t, const StepContext& ctx) override {
    on_model(t, ctx, "grow.stack",
        [&](GptNode& g) {
          order_ = stacking_order(g.gpt().config().layers);
          g.replace(deepen(g.gpt(), order_));
        },
        [&](BertNode& b) {
          order_ = stacking_order(b.bert().config().layers);
          b.replace(deepen(b.bert(), order_));
        });
  }
};

class Bert2Bert final : public DepthOp {
 public:
  explicit Bert2Bert(const Params& p) : p_(p) {}
  void apply(Model& t, const StepContext& ctx) override {
    const std::string m = p_.s("method");
    SCION_CHECK(m == "fpi" || m == "aki", "grow.bert2bert: method must be fpi or aki, got '", m, "'");
    WidthOptions o = width_options(p_, m == "aki" ? Method::aki : Method::fpi);
    const int64_t layers = p_.i("layers");
    // Refuse a request that would shrink or leave the model as it is (likely a typo in a graph).
    auto check = [&](const auto& c) {
      if (o.width == 0) o.width = c.width;
      SCION_CHECK(o.width >= c.width, "grow.bert2bert: width ", o.width, " is smaller than the model's ", c.width);
      SCION_CHECK(layers == 0 || layers >= c.layers, "grow.bert2bert: layers ", layers, " is fewer than the model's ",
                  c.layers);
      const bool widens = o.width > c.width || (o.ffn > 0 && o.ffn != c.ffn);
      SCION_CHECK(widens || layers > c.layers,
                  "grow.bert2bert: width ", o.width, ", ffn ", o.ffn, " and layers ", layers,
                  " do not grow the model (width ", c.width, ", ffn ", c.ffn, ", ", c.layers,
                  " layers; hint: set width, ffn or layers above the current size)");
      return widens;
    };
    on_model(t, ctx, "grow.bert2bert",
        [&](GptNode& g) {
          auto wide = check(g.gpt().config()) ? widen(g.gpt(), o) : nullptr;
          const lm::GptModel& base = wide ? *wide : g.gpt();
          const int64_t from = base.config().layers;
          if (layers > from) g.replace(deepen(base, order_ = bert2bert_depth_order(from, layers)));
          else if (wide) g.replace(std::move(wide));
        },
        [&](BertNode& b) {
          auto wide = check(b.bert().config()) ? widen(b.bert(), o) : nullptr;
          const lm::BertModel& base = wide ? *wide : b.bert();
          const int64_t from = base.config().layers;
          if (layers > from) b.replace(deepen(base, order_ = bert2bert_depth_order(from, layers)));
          else if (wide) b.replace(std::move(wide));
        });
  }
  Params p_;
};

class Masked final : public Op {
 public:
  explicit Masked(const Params& p) : p_(p) {}
  void apply(Model& t, const StepContext& ctx) override {
    MaskedOptions o;
    o.width = p_.i("width");
    o.ffn = p_.i("ffn");
    o.layers = p_.i("layers");
    o.ramp_steps = p_.i("ramp_steps");
    const std::string init = p_.s("new_layers");
    SCION_CHECK(init == "random" || init == "stack", "grow.masked: new_layers must be random or stack, got '", init, "'");
    o.stack_new_layers = init == "stack";
    o.seed = uint64_t(p_.i("__seed"));
    auto grown = [&](auto& node, auto&& src) {
      auto g = grow_masked(src, o);
      g.from.at_step = ctx.step;
      node.replace(std::move(g.model));
      node.set_mask_ramp(g.from);
    };
    on_model(t, ctx, "grow.masked", [&](GptNode& g) { grown(g, g.gpt()); }, [&](BertNode& b) { grown(b, b.bert()); });
  }
  // MSG's transfer of optimizer state: the old moments take the old units' places, the new
  // units start from zero moments.
  Tensor carry_state(const std::string& param, const Tensor& old_state, const Shape& new_shape) const override {
    Tensor t = Tensor::zeros(new_shape);
    place_old(param, old_state, t);
    return t;
  }
  Params p_;
};

class Subnets final : public Op {
 public:
  explicit Subnets(const Params& p) : s_{p.b("enabled"), p.i("min_layers")} {}
  void apply(Model& t, const StepContext& ctx) override {
    on_model(
        t, ctx, "grow.subnets", [&](GptNode& g) { g.set_subnets(s_); }, [&](BertNode& b) { b.set_subnets(s_); },
        /*grows=*/false);
  }
  lm::SubnetSampling s_;
};

std::vector<ParamSpec> width_params() {
  return {int_param("width", 0, "new hidden width (a multiple of the head size)").at_least(1).needed(),
          int_param("ffn", 0, "new FFN width (0 = keep the FFN/width ratio)").at_least(0),
          bool_param("uniform", true, "uniform unit duplication (exact under LayerNorm)"),
          num_param("noise", 0.0,
                    "std of symmetry-breaking noise on divided copies, zero-sum over each unit's copies (exact where "
                    "fpi with a uniform map is)").at_least(0)};
}

PluginEntry op_entry(const char* name, const char* desc, std::vector<ParamSpec> params, Factory f) {
  PluginEntry e;
  e.name = name;
  e.kind = PluginKind::op;
  e.version = "1.0.0";
  e.description = desc;
  e.params = std::move(params);
  e.factory = std::move(f);
  return e;
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
  return op_entry("grow.masked", "MSG: new hidden units, heads, FFN units and layers behind masks rising 0 -> 1 "
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
