// Growth as it is done on decoder LLMs: G_stack (Du et al., NeurIPS 2024), the whole trained
// layer sequence stacked g times, and HyperCloning (Samragh et al., 2024), width multiplied by
// an integer factor with every unit cloned so that the function is kept. Both through the
// SDK's model surgery (scion/growth.h), for any transformer model plugin.
#include <cmath>
#include <cstdio>

#include "grow_ops.h"
#include "scion/sizes.h"

namespace scion::growth {
namespace {

// The sizes of an op's target model node as its parameters give them; unknown when the node
// loads a file (the file's sizes are read only when the run starts).
struct TargetSizes {
  bool known = false;
  int64_t layers = 0, width = 0, heads = 0, kv_heads = 0, ffn = 0, vocab = 0, context = 0;
  bool tied = true, swiglu = false;

  static TargetSizes of(const GraphNodeView* n) {
    TargetSizes t;
    if (!n || n->kind != PluginKind::model) return t;
    const Params& p = n->params;
    for (const char* k : {"layers", "width", "heads", "vocab", "context"})
      if (!p.has(k)) return t;
    if (p.has("load") && !p.string("load").empty()) return t;
    t.known = true;
    t.layers = p.integer("layers"), t.width = p.integer("width"), t.heads = p.integer("heads");
    t.vocab = p.integer("vocab"), t.context = p.integer("context");
    t.kv_heads = p.has("kv_heads") && p.integer("kv_heads") > 0 ? p.integer("kv_heads") : t.heads;
    t.ffn = p.has("ffn") && p.integer("ffn") > 0 ? p.integer("ffn") : 4 * t.width;
    t.tied = p.has("tied") && p.boolean("tied");
    t.swiglu = n->plugin == "model.llama";
    return t;
  }
  // Parameters at `layers` blocks: attention (q and o full, k and v per key/value head), the
  // MLP (two matrices, SwiGLU's three), the norms, the embeddings and an untied head.
  double params(int64_t at_layers) const {
    const double w = double(width), hs = double(width / std::max<int64_t>(1, heads)), f = double(ffn);
    const double attention = 2 * w * w + 2 * w * double(kv_heads) * hs;
    const double mlp = (swiglu ? 3 : 2) * w * f;
    return double(at_layers) * (attention + mlp + 4 * w) + double(vocab) * w * (tied ? 1 : 2) +
           (swiglu ? 0 : double(context) * w);
  }
};

// Tokens one update reads from the data node feeding `model`'s tokens (per rank), or 0.
double tokens_per_update(const GraphView& g, const GraphNodeView* model) {
  const GraphNodeView* data = model ? g.input_source(*model, "tokens") : nullptr;
  if (!data || !data->params.has("batch_size") || !data->params.has("seq_len")) return 0;
  return double(data->params.integer("batch_size")) * double(data->params.integer("seq_len"));
}

// The index of the stage an op's check runs for (its view is named "<stage>.ops.<i>").
int stage_of(const GraphView& g, const GraphNodeView& self) {
  const std::string stage = self.name.substr(0, self.name.rfind(".ops."));
  for (size_t i = 0; i < g.stages.size(); ++i)
    if (g.stages[i].name == stage) return int(i);
  return -1;
}

// Whether an op before this one (in an earlier stage, or earlier in this stage's list)
// targets `model`: its sizes are then not the node's.
bool changed_before(const GraphView& g, const GraphNodeView& self, int stage, const std::string& model) {
  const size_t index = size_t(std::stoul(self.name.substr(self.name.rfind('.') + 1)));
  for (int i = 0; i <= stage; ++i) {
    const auto& ops = g.stages[size_t(i)].ops;
    for (size_t k = 0; k < ops.size() && (i < stage || k < index); ++k)
      if (ops[k].second == model) return true;
  }
  return false;
}

std::string si(double v) {
  const char* units[] = {"", "k", "M", "G", "T", "P", "E", "Z", "Y"};
  int u = 0;
  while (std::fabs(v) >= 1000 && u < 8) v /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g%s", v, units[u]);
  return buf;
}

// ---- G_stack -----------------------------------------------------------------------------

class GStack final : public DepthOp {
 public:
  explicit GStack(const Params& p)
      : factor_(p.integer("factor")), layers_(p.integer("layers")), carry_(p.string("optimizer") == "carry") {}
  void apply(Model& t, const StepContext& ctx) override {
    TransformerModel& m = growable(t, ctx, "grow.gstack");
    const int64_t L = m.architecture().layers();
    int64_t g = factor_;
    if (layers_ > 0) {
      SCION_CHECK(layers_ % L == 0 && layers_ > L, "grow.gstack: layers ", layers_, " is not a multiple (above 1) of the ",
                  "model's ", L, " layers (hint: G_stack stacks the whole layer sequence; choose a multiple of ", L, ")");
      g = layers_ / L;
    }
    const Architecture a = m.architecture();
    check_fits(a, a.width, a.ffn.empty() ? 0 : a.ffn[0], checked_mul(L, g, "grow.gstack's depth"), "grow.gstack");
    reorder(m, gstack_order(L, g), 0);
  }
  // G_stack's recipe restarts AdamW at growth ("reset"); "carry" continues each copy's source
  // layer's moments, as StackingBERT does.
  std::string state_source(const std::string& param) const override {
    return carry_ ? DepthOp::state_source(param) : "";
  }

 private:
  int64_t factor_, layers_;
  bool carry_;
};

std::vector<GraphProblem> check_gstack(const GraphView& g, const GraphNodeView& self) {
  std::vector<GraphProblem> out;
  const GraphNodeView* model = g.node(self.inputs.at("target"));
  const TargetSizes t = TargetSizes::of(model);
  const int64_t factor = self.params.integer("factor"), layers = self.params.integer("layers");
  // The sizes are the node's only while no earlier stage changed them.
  const int here = stage_of(g, self);
  if (!t.known || here < 0 || changed_before(g, self, here, model->name)) return out;
  const int64_t L = t.layers;
  if (layers > 0 && (layers % L != 0 || layers <= L))
    out.push_back({"layers", "layers " + std::to_string(layers) + " is not a multiple (above 1) of the " +
                                 std::to_string(L) + " layers of '" + model->name + "'",
                   "G_stack stacks the whole layer sequence: choose a multiple of " + std::to_string(L) +
                       ", or set factor instead"});
  const int64_t grown = layers > 0 ? layers : L * factor;
  // The growth-timing rule, for the target this graph trains after the growth.
  const double per_update = tokens_per_update(g, model);
  if (per_update <= 0) return out;
  double before = 0, after = 0;
  for (size_t i = 0; i < g.stages.size(); ++i) (int(i) < here ? before : after) += double(g.stages[i].steps) * per_update;
  const double N = t.params(grown), C = 6 * N * after;
  if (after <= 0) return out;
  const double d = gstack_growth_tokens(N, C);
  GraphProblem note{"", "G_stack's growth-timing rule (log10 d = 0.88 log10 N + 163.27 / log10 C - 5.74): a target of N = " +
                            si(N) + " parameters (" + std::to_string(grown) + " layers) trained on " + si(after) +
                            " tokens from this stage on (C = 6ND = " + si(C) + " FLOPs) grows after d = " + si(d) +
                            " tokens of the small model; this graph grows after " + si(before) + " tokens",
                    N < 1e9 ? "the rule was fitted for LLM-scale targets (its README's examples: 7B-70B parameters); "
                              "this far below, it extrapolates"
                            : ""};
  note.note = true;
  out.push_back(note);
  return out;
}

// ---- HyperCloning --------------------------------------------------------------------------

class HyperClone final : public Op {
 public:
  explicit HyperClone(const Params& p)
      : factor_(p.integer("factor")), ffn_factor_(p.integer("ffn_factor")), snr_db_(p.number("snr_db")),
        seed_(p.context().seed) {}
  void apply(Model& t, const StepContext& ctx) override {
    TransformerModel& m = growable(t, ctx, "grow.hyperclone");
    const Architecture a = m.architecture();
    WidthOptions o;
    o.width = checked_mul(a.width, factor_, "grow.hyperclone's width");
    o.ffn = a.ffn.empty() ? 0 : checked_mul(a.ffn[0], ffn_factor_ > 0 ? ffn_factor_ : factor_, "grow.hyperclone's FFN");
    check_fits(a, o.width, o.ffn, a.layers(), "grow.hyperclone");  // before anything is allocated
    o.uniform = true;  // tiles: new unit j copies unit j mod old
    o.method = Method::fpi;
    o.snr_db = snr_db_;
    o.keep_single_kv_head = true;
    o.seed = seed_;
    widen(m, o, "grow.hyperclone");
  }
  // The cloned model trains afresh: every resized parameter's optimizer state restarts.
  std::string state_source(const std::string&) const override { return ""; }

 private:
  int64_t factor_, ffn_factor_;
  double snr_db_;
  uint64_t seed_;
};

std::vector<GraphProblem> check_hyperclone(const GraphView& g, const GraphNodeView& self) {
  std::vector<GraphProblem> out;
  const GraphNodeView* model = g.node(self.inputs.at("target"));
  const TargetSizes t = TargetSizes::of(model);
  const int here = stage_of(g, self);
  if (!t.known || here < 0 || changed_before(g, self, here, model->name)) return out;
  if (t.width % t.heads != 0 || t.heads % t.kv_heads != 0)
    out.push_back({"", "'" + model->name + "' has " + std::to_string(t.heads) + " heads on " +
                           std::to_string(t.kv_heads) + " key/value heads at width " + std::to_string(t.width) +
                           ": whole heads and key/value groups cannot be cloned",
                   "fix the model's heads / kv_heads first"});
  return out;
}

PluginEntry gstack_entry() {
  PluginEntry e = op_entry(
      "grow.gstack",
      "G_stack: the whole layer sequence stacked g times ([0..L-1] x g); restarts the optimizer (or carries each copy's "
      "source moments); validate prints the growth-timing rule",
      {int_param("factor", 4, "growth factor g: the grown model has g times the layers (G_stack's best: 4)").at_least(2),
       int_param("layers", 0, "target depth instead of factor: a multiple of the current depth (0 = use factor)")
           .at_least(0),
       str_param("optimizer", "reset",
                 "reset: fresh optimizer moments (G_stack's recipe); carry: each copy continues its source layer's")
           .one_of({"reset", "carry"})},
      [](const Params& p, const NodeResolver&) { return std::make_shared<GStack>(p); });
  e.check = check_gstack;
  return e;
}

PluginEntry hyperclone_entry() {
  PluginEntry e = op_entry(
      "grow.hyperclone",
      "HyperCloning: width x factor, every hidden unit, head, key/value head and FFN unit cloned (tiled), the weights "
      "that read clones divided, so the grown model computes the same logits; unties the head",
      {int_param("factor", 2, "hidden width multiplier n (heads and key/value heads x n at a fixed head size)").at_least(2),
       int_param("ffn_factor", 0, "FFN width multiplier m (0 = factor)").at_least(0),
       num_param("snr_db", 0.0,
                 "HyperCloning's noisy variant: signal-to-noise ratio in dB of noise added to one copy of each pair and "
                 "subtracted from the other (still exact); 0 = symmetric clones")
           .at_least(0)},
      [](const Params& p, const NodeResolver&) { return std::make_shared<HyperClone>(p); });
  e.check = check_hyperclone;
  return e;
}

}  // namespace
}  // namespace scion::growth

using scion::growth::gstack_entry;
using scion::growth::hyperclone_entry;
SCION_REGISTER_PLUGIN(gstack_entry)
SCION_REGISTER_PLUGIN(hyperclone_entry)
