#include "runtime/step_graph.h"

#include "scion/autograd.h"

namespace scion::runtime {

namespace {
// The sequence length a model reads: the last axis of its token input ([B, T]).
int64_t seq_len_of(const TensorMap& in) {
  auto it = in.find("tokens");
  if (it != in.end() && it->second.dim() >= 2) return it->second.shape().back();
  for (const auto& [port, t] : in)
    if (t.dim() >= 2) return t.shape()[1];
  return 1;
}
}  // namespace

StepGraph::StepGraph(const NodeResolver& nodes, const StagePlan& plan) : start_(fg_) {
  for (const NodeSpec* n : plan.run_nodes) {
    outputs_[n->name];
    wanted_[n->name];
    losses[n->name];
    metrics[n->name];
    seq_len[n->name] = 1;
  }
  // A node on a gradient path (trained, or reading a trained node's output: a frozen model
  // under a trained prompt) runs with a tape; only a trained one in training mode.
  std::set<std::string> tape;
  for (const NodeSpec* n : plan.run_nodes) {  // dependency order: sources are decided first
    bool t = plan.trained.count(n->name) > 0;
    for (const auto& [port, src] : n->inputs) t = t || tape.count(src.node);
    if (t) tape.insert(n->name);
  }
  for (const NodeSpec* n : plan.run_nodes) {
    const Mode mode = plan.trained.count(n->name) ? Mode::trained : tape.count(n->name) ? Mode::pass_gradient : Mode::no_tape;
    auto body = [this, &nodes, n, mode](const tbb::flow::continue_msg&) {
      run_node(*n, nodes.node(n->name), mode);
      return tbb::flow::continue_msg();
    };
    nodes_[n->name] = std::make_unique<tbb::flow::continue_node<tbb::flow::continue_msg>>(fg_, body);
  }
  // The ports each node's readers take: a model skips the outputs nobody reads (its
  // logits, when the loss applies the LM head itself).
  for (const NodeSpec* n : plan.run_nodes)
    for (const auto& [port, src] : n->inputs) wanted_[src.node].insert(src.port);
  for (const NodeSpec* n : plan.run_nodes) {
    std::set<std::string> preds;
    for (const auto& [port, src] : n->inputs) preds.insert(src.node);
    if (preds.empty()) tbb::flow::make_edge(start_, *nodes_.at(n->name));
    for (const auto& pr : preds) tbb::flow::make_edge(*nodes_.at(pr), *nodes_.at(n->name));
  }
}

void StepGraph::run(const StepContext& ctx, const std::set<std::string>& active) {
  ctx_ = ctx;
  active_ = &active;
  start_.try_put(tbb::flow::continue_msg());
  fg_.wait_for_all();
}

TensorMap StepGraph::inputs_of(const NodeSpec& spec) const {
  TensorMap in;
  for (const auto& [port, src] : spec.inputs) {
    const std::string &sn = src.node, &sp = src.port;
    if (!active_->count(sn)) continue;  // an idle port of a loss
    auto it = outputs_.at(sn).find(sp);
    if (it == outputs_.at(sn).end())
      throw Error("node '" + sn + "' produced no output '" + sp + "' for node '" + spec.name + "'");
    in[port] = it->second;
  }
  return in;
}

void StepGraph::run_model(const NodeSpec& spec, Model& m, const TensorMap& in, Mode mode) {
  seq_len.at(spec.name) = seq_len_of(in);
  StepContext model_ctx = ctx_;
  model_ctx.wanted_outputs = &wanted_.at(spec.name);
  StepContext eval_ctx = model_ctx;
  eval_ctx.training = false;
  if (mode == Mode::trained) {
    outputs_.at(spec.name) = m.forward(in, model_ctx);
  } else if (mode == Mode::pass_gradient) {  // frozen (no dropout), gradients flow through
    outputs_.at(spec.name) = m.forward(in, eval_ctx);
  } else {  // a teacher or a model not trained in this stage: no tape, no dropout
    NoGradGuard ng;
    outputs_.at(spec.name) = m.forward(in, eval_ctx);
  }
}

void StepGraph::run_node(const NodeSpec& spec, const std::shared_ptr<Plugin>& p, Mode mode) {
  if (!active_->count(spec.name)) {  // skipped at this step: nothing reads it
    outputs_.at(spec.name).clear();
    return;
  }
  const TensorMap in = inputs_of(spec);
  switch (spec.info->entry.kind) {
    case PluginKind::data: {
      outputs_.at(spec.name) = std::dynamic_pointer_cast<DataSource>(p)->next(ctx_);
      // Data sources make host tensors; a CUDA run's batches go to the device here, once.
      if (ctx_.device.is_cuda())
        for (auto& [port, t] : outputs_.at(spec.name))
          if (t.defined()) t = t.to(ctx_.device);
      break;
    }
    case PluginKind::model: run_model(spec, *std::dynamic_pointer_cast<Model>(p), in, mode); break;
    case PluginKind::prompt: {
      auto pi = std::dynamic_pointer_cast<PromptInjector>(p);
      if (mode != Mode::no_tape) {
        outputs_.at(spec.name) = pi->inject(in, ctx_);
      } else {
        NoGradGuard ng;
        outputs_.at(spec.name) = pi->inject(in, ctx_);
      }
      break;
    }
    case PluginKind::loss: {
      auto& mets = metrics.at(spec.name);
      mets.clear();
      losses.at(spec.name) = std::dynamic_pointer_cast<Loss>(p)->compute(in, ctx_, mets);
      break;
    }
    default: break;
  }
}

}  // namespace scion::runtime
