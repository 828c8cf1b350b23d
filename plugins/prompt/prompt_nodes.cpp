// The prompt injectors (SDK PromptInjector): nodes between a data node and a model that
// rewrite the model's inputs.
//
//  * prompt.domain: ELLE's domain prompt. Each window becomes <domain> x_0 .. x_{T-2}: a domain
//    token (id first_id + the row's domain index, a token of the model's vocabulary, so its
//    embedding is learned with the model) takes the first position and the window is
//    shortened by one to keep the block size. The target at the prompt position is the
//    window's first token x_0 (ELLE's: the domain token predicts it), or none (-100,
//    `first_target = false`, for MLM windows, whose targets are not the next tokens); no
//    target is a domain token. ELLE writes <s> <domain> tokens: windows cut from a stream
//    here have no <s>, so the domain token comes first.
//  * prompt.tuning: prompt tuning (Lester et al., 2021): `length` trainable vectors prepended
//    to the input embeddings (the model's optional prompt_embeds port). Listed in `train`
//    with the model left out, only the prompt learns; its tensor is saved on its own
//    (<node>.safetensors), so one base model serves many prompts, and `load` starts from one.
#include "scion/files.h"
#include "scion/ops.h"
#include "scion/plugin.h"
#include "scion/random.h"
#include "scion/safetensors.h"

namespace scion::prompt {
namespace {

constexpr int64_t kIgnoreIndex = -100;

class DomainPrompt final : public PromptInjector {
 public:
  explicit DomainPrompt(const Params& p) : first_(p.integer("first_id")), first_target_(p.boolean("first_target")) {}
  TensorMap inject(const TensorMap& in, const StepContext&) override {
    const Tensor x = in.at("tokens").contiguous(), y = in.at("targets").contiguous(), d = in.at("domain").contiguous();
    SCION_CHECK(x.dim() == 2 && y.shape() == x.shape() && d.dim() == 1 && d.size(0) == x.size(0),
                "prompt.domain: tokens and targets [B, T] and domain [B] expected, got ", x.desc(), ", ", y.desc(), ", ",
                d.desc());
    const int64_t B = x.size(0), T = x.size(1);
    Tensor nx = Tensor::empty({B, T}, DType::i64), ny = Tensor::empty({B, T}, DType::i64);
    const int64_t *xs = x.data<int64_t>(), *ys = y.data<int64_t>(), *ds = d.data<int64_t>();
    int64_t *xo = nx.data<int64_t>(), *yo = ny.data<int64_t>();
    for (int64_t b = 0; b < B; ++b) {
      xo[b * T] = first_ + ds[b];
      yo[b * T] = first_target_ ? xs[b * T] : kIgnoreIndex;
      for (int64_t t = 1; t < T; ++t) xo[b * T + t] = xs[b * T + t - 1], yo[b * T + t] = ys[b * T + t - 1];
    }
    return {{"tokens", nx}, {"targets", ny}};
  }

 private:
  int64_t first_;
  bool first_target_;
};

// The model nodes that read port `port` of node `self`.
std::vector<const GraphNodeView*> readers(const GraphView& g, const std::string& self, const std::string& port) {
  std::vector<const GraphNodeView*> out;
  for (const auto& n : g.nodes)
    for (const auto& [in, src] : n.inputs)
      if (src == self + "." + port && n.kind == PluginKind::model) out.push_back(&n);
  return out;
}
int64_t int_or(const Params& p, const std::string& k, int64_t fallback) {
  return p.all().contains(k) && p.all().at(k).is_number_integer() ? p.integer(k) : fallback;
}

PluginEntry domain_entry() {
  PluginEntry e;
  e.name = "prompt.domain";
  e.kind = PluginKind::prompt;
  e.version = "1.0.0";
  e.description = "ELLE's domain prompt: <domain> x_0..x_{T-2}, a learned vocabulary token per domain predicting x_0";
  e.params = {int_param("first_id", 0, "token id of the first domain's prompt (domain i uses first_id + i)").at_least(0).needed(),
              bool_param("first_target", true, "the target at the prompt is the window's first token (ELLE's causal LM); "
                         "false: none (-100), for MLM")};
  e.inputs = {{"tokens", "tokens:i64[B,T]", false, "input ids [B, T]"},
              {"targets", "targets:i64[B,T]", false, "target ids [B, T]"},
              {"domain", "domain:i64[B]", false, "each row's domain index (data.domains)"}};
  e.outputs = {{"tokens", "tokens:i64[B,T]", false, "<domain> then the window shortened by one"},
               {"targets", "targets:i64[B,T]", false, "x_0 (or -100) at the prompt, then the window's targets"}};
  // The prompt tokens must be rows of every model that reads them.
  e.check = [](const GraphView& g, const GraphNodeView& self) {
    std::vector<GraphProblem> out;
    const GraphNodeView* src = g.input_source(self, "domain");
    const int64_t n = src && src->params.all().contains("domains") ? int64_t(src->params.strings("domains").size()) : 1;
    const int64_t last = self.params.integer("first_id") + n - 1;
    for (const GraphNodeView* m : readers(g, self.name, "tokens")) {
      const int64_t vocab = int_or(m->params, "vocab", -1);
      if (vocab >= 0 && last >= vocab)
        out.push_back({"first_id", "the domain prompts take ids " + std::to_string(self.params.integer("first_id")) + ".." +
                                       std::to_string(last) + ", beyond the vocabulary of model '" + m->name + "' (" +
                                       std::to_string(vocab) + ")",
                       "give '" + m->name + "' vocab >= " + std::to_string(last + 1) + " (the tokenizer's ids first, then one "
                       "row per domain) and first_id = the tokenizer's vocabulary size"});
    }
    return out;
  };
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<DomainPrompt>(p); };
  return e;
}

class SoftPrompt final : public PromptInjector {
 public:
  explicit SoftPrompt(const Params& p) {
    const int64_t k = p.integer("length"), C = p.integer("width");
    const std::string load = p.string("load");
    if (!load.empty()) {
      auto t = safetensors::load(load).tensors;
      SCION_CHECK(t.size() == 1 && t[0].second.shape() == (Shape{k, C}), "prompt.tuning: '", load,
                  "' does not hold one [", k, ", ", C, "] prompt");
      emb_ = t[0].second.contiguous().clone();
    } else {
      emb_ = Tensor::randn({k, C}, derive_seed(p.context().seed, 1), 0.f, float(p.number("init_std")));
    }
    emb_.set_requires_grad(true);
  }
  TensorMap inject(const TensorMap& in, const StepContext&) override {
    const Tensor& x = in.at("tokens");
    const int64_t B = x.size(0);
    // [B, k, C]: the one prompt broadcast over the batch (its gradient sums over rows).
    Tensor pe = ops::add(Tensor::zeros({B, emb_.size(0), emb_.size(1)}), emb_);
    return {{"tokens", x}, {"prompt_embeds", pe}};
  }
  nn::NamedTensors owned_parameters() override { return {{"embeddings", emb_}}; }

 private:
  Tensor emb_;
};

PluginEntry tuning_entry() {
  PluginEntry e;
  e.name = "prompt.tuning";
  e.kind = PluginKind::prompt;
  e.version = "1.0.0";
  e.description = "prompt tuning: `length` trainable vectors prepended to a (frozen) model's input embeddings";
  e.params = {int_param("length", 8, "soft-prompt vectors").at_least(1),
              int_param("width", 0, "their size: the model's hidden size").at_least(1).needed(),
              num_param("init_std", 0.02, "std of their normal initialisation").at_least(0),
              {"load", ParamType::string, Json(""), false, "a saved prompt (<node>.safetensors of a run) to start from", true}};
  e.inputs = {{"tokens", "tokens:i64[B,T]", false, "input ids [B, T]"}};
  e.outputs = {{"tokens", "tokens:i64[B,T]", false, "the input ids, unchanged"},
               {"prompt_embeds", "embeds:f32[B,{length},{width}]", false, "the prompt for every row [B, k, C]"}};
  // The prompt and the window must fit the model's positions together.
  e.check = [](const GraphView& g, const GraphNodeView& self) {
    std::vector<GraphProblem> out;
    const GraphNodeView* src = g.input_source(self, "tokens");
    const int64_t T = src ? int_or(src->params, "seq_len", 0) : 0, k = self.params.integer("length");
    for (const GraphNodeView* m : readers(g, self.name, "prompt_embeds")) {
      const int64_t ctx = int_or(m->params, "context", -1), width = int_or(m->params, "width", -1);
      if (ctx >= 0 && k + T > ctx)
        out.push_back({"length", "a prompt of " + std::to_string(k) + " vectors before windows of " + std::to_string(T) +
                                     " tokens is longer than the context of model '" + m->name + "' (" + std::to_string(ctx) + ")",
                       "set length <= " + std::to_string(std::max<int64_t>(0, ctx - T)) + ", or a shorter seq_len"});
      if (width >= 0 && width != self.params.integer("width"))
        out.push_back({"width", "width " + std::to_string(self.params.integer("width")) + " differs from model '" + m->name +
                                    "''s hidden size " + std::to_string(width),
                       "width = " + std::to_string(width)});
    }
    return out;
  };
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<SoftPrompt>(p); };
  return e;
}

}  // namespace
}  // namespace scion::prompt

using scion::prompt::domain_entry;
using scion::prompt::tuning_entry;
SCION_REGISTER_PLUGIN(domain_entry)
SCION_REGISTER_PLUGIN(tuning_entry)
