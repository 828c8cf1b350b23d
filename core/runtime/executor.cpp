#include "runtime/executor.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/file.h>
#include <tbb/flow_graph.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cpu/cpu_kernels.h"
#include "dist/buckets.h"
#include "dist/zero.h"
#include "graph/node_factory.h"
#include "runtime/checkpoint.h"
#include "runtime/schedule.h"
#include "scion/autograd.h"
#include "scion/ops.h"
#include "scion/random.h"
#include "scion/checkpoint.h"
#include "scion/files.h"
#include "scion/safetensors.h"
#include "scion/precision.h"
#include "scion/threads.h"

namespace scion::runtime {

namespace fs = std::filesystem;

namespace {

double now_s(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string fmt_eta(double s) {
  char buf[32];
  if (s < 0 || !std::isfinite(s)) return "?";
  std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  return buf;
}

}  // namespace

// ---- the optimizer of a stage ----------------------------------------------------------------
// One optimizer instance per parameter group (a group may use another plugin or other
// settings), the stage's default group last. The state of every instance is keyed
// "<node>.<param>.<what>" as one optimizer's would be, so a checkpoint holds one
// optimizer.safetensors and each key goes back to the group that selects its parameter.
class Executor::OptimizerSet {
 public:
  struct Group {
    std::shared_ptr<Optimizer> opt;
    std::vector<std::string> nodes;  // empty: every trained node
    std::string match = "*";
    double lr = 0;  // peak learning rate
    int sign = 1;
    bool selects(const std::string& param) const {
      const size_t dot = param.find('.');
      const std::string node = param.substr(0, dot), name = dot == std::string::npos ? "" : param.substr(dot + 1);
      if (!nodes.empty() && std::find(nodes.begin(), nodes.end(), node) == nodes.end()) return false;
      return ::fnmatch(match.c_str(), name.c_str(), 0) == 0;
    }
  };
  std::vector<Group> groups;  // the first that selects a parameter wins; the last selects all

  // The stage's groups without their optimizers: enough to say which parameter is in which.
  static OptimizerSet selection(const StageSpec& s) {
    OptimizerSet set;
    for (const ParamGroupSpec& g : s.param_groups) set.groups.push_back({nullptr, g.nodes, g.match, g.lr, g.sign});
    set.groups.push_back({nullptr, {}, "*", s.lr, 1});
    return set;
  }

  size_t group_of(const std::string& param) const {
    for (size_t i = 0; i + 1 < groups.size(); ++i)
      if (groups[i].selects(param)) return i;
    return groups.size() - 1;
  }
  nn::NamedTensors state_tensors() const {
    nn::NamedTensors all;
    for (const Group& g : groups)
      for (auto& st : g.opt->state_tensors()) all.push_back(std::move(st));
    return all;
  }
  void load_state_tensors(const nn::NamedTensors& state) {
    std::vector<nn::NamedTensors> per(groups.size());
    for (const auto& [k, t] : state) per[group_of(k.substr(0, k.rfind('.')))].emplace_back(k, t);
    for (size_t i = 0; i < groups.size(); ++i)
      if (!per[i].empty()) groups[i].opt->load_state_tensors(per[i]);
  }
};

namespace {

// What decides whether the next stage continues this stage's optimizer: its plugin, its own
// settings and its groups, but not the learning-rate schedule (each stage has its own).
std::string optimizer_identity(const StageSpec& st) {
  auto own = [](Json j) {
    if (j.is_object())
      for (const char* k : {"lr", "warmup", "decay", "min_lr", "clip"}) j.erase(k);
    return json_dump(j);
  };
  std::string id = st.optimizer + " " + own(st.optimizer_params);
  for (const ParamGroupSpec& g : st.param_groups) {
    id += " | " + g.optimizer + " " + own(g.optimizer_params) + " " + g.match + " " + std::to_string(g.sign);
    for (const auto& n : g.nodes) id += " " + n;
  }
  return id;
}

std::string where(const SourcePos& p) {
  return p.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) + ": ";
}

// The sequence length a model reads: the last axis of its token input ([B, T]).
int64_t seq_len_of(const TensorMap& in) {
  auto it = in.find("tokens");
  if (it != in.end() && it->second.dim() >= 2) return it->second.shape().back();
  for (const auto& [port, t] : in)
    if (t.dim() >= 2) return t.shape()[1];
  return 1;
}

}  // namespace

Executor::Executor(GraphSpec graph, const PluginRegistry& registry, RunOptions opt)
    : g_(std::move(graph)), reg_(registry), opt_(std::move(opt)) {
  device_ = g_.run.device.resolve();
  if (!opt_.comm) opt_.comm = make_communicator(g_.run.comm, device_.is_cuda());
  out_dir_ = opt_.out_dir.empty() ? "runs/" + g_.run.name : opt_.out_dir;
#ifndef SCION_HAVE_CUDA
  SCION_CHECK(device_.is_cpu(), "device ", device_.str(),
              " requested, but this build of Scion has no CUDA backend (configure with -DSCION_CUDA=ON on a "
              "machine with nvcc; or use --device cpu)");
#endif
  SCION_CHECK(device_.is_cpu() || device_.index < cuda_device_count(), "device ", device_.str(),
              " requested but this machine has ", cuda_device_count(), " CUDA device(s) (use --device cpu)");
  set_num_threads(opt_.threads >= 0 ? opt_.threads : g_.run.threads);
  previous_precision_ = matmul_precision();
  set_matmul_precision(g_.run.precision);
  // The CPU GEMM settings of the environment (SCION_CPU_BF16, SCION_CPU_GEMM) are read and a
  // bad value refused here, before the run writes anything, not at its first product.
  cpu::gemm_f32_engine();
  const bool bf16_native = matmul_bf16_native();
  if (matmul_precision() == MatmulPrecision::bf16 && device_.is_cpu() && !bf16_native && opt_.comm->is_writer())
    std::fprintf(stderr,
                 "warning: precision = \"bf16\": this CPU has no bf16 GEMM in oneDNN (it needs AVX-512; "
                 "SCION_CPU_BF16=emulate also forces this), so the bf16 GEMMs are emulated in f32: the same "
                 "rounding of their inputs, no faster than precision = \"f32\" (use it unless you want bf16's "
                 "numerics)\n");
  tty_ = opt_.progress == 1 || (opt_.progress < 0 && ::isatty(STDOUT_FILENO));
}

Executor::~Executor() {
  set_matmul_precision(previous_precision_);
  if (metrics_) std::fclose(metrics_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
}

std::shared_ptr<Plugin> Executor::node(const std::string& name) const {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) throw Error("no node named '" + name + "' has been made yet");
  return it->second;
}

void Executor::make_nodes() {
  // Evaluators last: they look up data and model nodes by name.
  std::vector<const NodeSpec*> order;
  for (const NodeSpec& n : g_.nodes)
    if (n.info->entry.kind != PluginKind::evaluator) order.push_back(&n);
  for (const NodeSpec& n : g_.nodes)
    if (n.info->entry.kind == PluginKind::evaluator) order.push_back(&n);
  const NodeContext ctx = NodeContext::of(g_, opt_.comm->rank(), opt_.comm->world());
  for (const NodeSpec* np : order) {
    const NodeSpec& n = *np;
    try {
      nodes_[n.name] = make_node(reg_, n, ctx, *this);
    } catch (const std::exception& e) {
      throw Error(where(n.pos) + "node '" + n.name + "' (" + n.plugin + "): " + e.what());
    }
  }
}

void Executor::apply_ops(size_t si, const StepContext& ctx) {
  // Each op of the stage draws its own random stream (the first keeps the stage's seed).
  const uint64_t stage_seed = derive_seed(g_.run.seed, 0x0b5 + si);
  uint64_t k = 0;
  if (device_.is_cuda() && !g_.stages[si].ops.empty()) {
    // Model surgery and the ops' mapping of optimizer state read host memory: on a CUDA run the
    // models and the optimizer's state come back to the CPU for the stage's ops; train_stage
    // moves the models to the device again afterwards (and AdamW its moments, lazily).
    for (const auto& [name, p] : nodes_)
      if (auto m = std::dynamic_pointer_cast<Model>(p)) m->module().to(Device::cpu());
    if (optimizer_) {
      nn::NamedTensors host;
      for (const auto& [key, t] : optimizer_->state_tensors()) host.emplace_back(key, t.to(Device::cpu()));
      optimizer_->load_state_tensors(host);
    }
  }
  for (const OpSpec& op : g_.stages[si].ops) {
    auto inst = make_op(reg_, op, k == 0 ? stage_seed : derive_seed(stage_seed, k), *this);
    ++k;
    auto model = std::dynamic_pointer_cast<Model>(node(op.target));
    std::map<std::string, Shape> before;
    for (const auto& [k, t] : model->module().named_parameters()) before[op.target + "." + k] = t.shape();
    inst->apply(*model, ctx);
    carry_optimizer_state(*inst, op.target, *model, before);
    if (opt_.comm->is_writer() && !tty_)
      std::printf("[%s] op %s applied to %s: %lld parameters\n", g_.stages[si].name.c_str(), op.plugin.c_str(),
                  op.target.c_str(), (long long)model->module().parameter_count());
  }
}

// The optimizer's state is keyed "<node>.<param>.<what>". After an op, each parameter
// continues the state of the parameter the op names as its source (itself unless the op moved
// layers; none for a new identity block, whose state restarts at zero). Where the shape
// changed, the state tensors shaped as the source was are handed to the op, which maps them
// (MSG carries the moments of the old units over) or declines; declined state keeps its old
// shape, and an optimizer restarts a parameter whose state no longer matches it.
void Executor::carry_optimizer_state(const Op& op, const std::string& target, Model& model,
                                     const std::map<std::string, Shape>& before) {
  if (!optimizer_) return;
  std::map<std::string, std::vector<std::pair<std::string, Tensor>>> old;  // param -> (what, state)
  for (const auto& [name, state] : optimizer_->state_tensors()) {
    const size_t dot = name.rfind('.');
    if (dot != std::string::npos) old[name.substr(0, dot)].emplace_back(name.substr(dot + 1), state);
  }
  nn::NamedTensors mapped;
  auto restart = [&](const std::string& p) {
    if (auto it = old.find(p); it != old.end())
      for (const auto& [what, st] : it->second)
        mapped.emplace_back(p + "." + what, Tensor::zeros(st.shape(), st.dtype(), st.device()));
  };
  for (const auto& [k, t] : model.module().named_parameters()) {
    const std::string p = target + "." + k, src_k = op.state_source(k);
    if (src_k.empty()) {
      restart(p);
      continue;
    }
    const std::string src = target + "." + src_k;
    auto shape_was = before.find(src);
    SCION_CHECK(src == p || shape_was != before.end(), "op's state_source names '", src_k, "' for '", k,
                "', which the model did not have before the op");
    auto st = old.find(src);
    if (shape_was == before.end() || st == old.end()) {  // a new parameter, or one without state yet
      if (src != p) restart(p);
      continue;
    }
    const bool resized = shape_was->second != t.shape();
    if (src == p && !resized) continue;  // untouched: keeps its own state
    for (const auto& [what, state] : st->second) {
      // Per-element state of a resized parameter goes through the op; the rest (a step count,
      // or state the op declines) moves as it is, and an optimizer restarts a mismatch.
      Tensor m = resized && state.shape() == shape_was->second ? op.carry_state(k, state, t.shape()) : Tensor();
      SCION_CHECK(!m.defined() || m.shape() == t.shape(), "op mapped optimizer state '", src, ".", what, "' to ",
                  m.desc(), " but the parameter is now ", t.desc());
      mapped.emplace_back(p + "." + what, m.defined() ? m : state);
    }
  }
  if (!mapped.empty()) optimizer_->load_state_tensors(mapped);
}

// ---- signals ------------------------------------------------------------------------------------
// SIGINT / SIGTERM (Slurm's preemption signal) ask the run to stop after the step in progress,
// with a checkpoint; a second one stops at once (the default action).
namespace {
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal.exchange(sig) != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}
// Installs the handlers for the life of a run and puts the earlier ones back.
class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};
const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }
}  // namespace

// ---- the plan of a stage ---------------------------------------------------------------------
struct Executor::StagePlan {
  size_t index = 0;
  const StageSpec* spec = nullptr;
  std::vector<const NodeSpec*> run_nodes;  // its losses and everything upstream, in dependency order
  std::set<std::string> trained;           // the nodes listed in train
  std::vector<std::string> models;         // the model nodes among run_nodes
  int64_t tokens_per_step = 0;             // on this rank
  // The trained parameters, after the stage's ops, each with its group in optimizer_.
  struct Param {
    std::string name;  // "<node>.<param>"
    Tensor tensor;
    size_t group = 0;
  };
  std::vector<Param> params;
  std::shared_ptr<GradBuckets> buckets;  // with several ranks: the gradient buckets of `params`
  std::shared_ptr<ZeroShards> zero;      // [run] zero = 1 with several ranks: who owns which parameter
  std::map<const TensorImpl*, size_t> param_index;  // params: position, by tensor
};

void Executor::log_metrics(const Json& line) {
  if (!metrics_) return;
  // Every line is valid JSON: a value that is not finite (a skipped step's loss, an infinite
  // perplexity) is written as null, which the report draws as a gap.
  Json clean = line;
  for (auto& [k, v] : clean.items())
    if (v.is_number_float() && !std::isfinite(v.get<double>())) v = Json();
  const std::string s = json_dump(clean);
  std::fprintf(metrics_, "%s\n", s.c_str());
  std::fflush(metrics_);
}

void Executor::evaluate(const StagePlan& plan, const StepContext& ctx) {
  const StageSpec& s = *plan.spec;
  if (s.evaluators.empty()) return;
  Json line;
  line["step"] = Json(step_);
  line["stage"] = Json(s.name);
  line["tokens"] = Json(tokens_);
  line["flops"] = Json(flops_);
  std::map<std::string, double> all;
  for (const auto& e : s.evaluators) {
    auto ev = std::dynamic_pointer_cast<Evaluator>(node(e));
    StepContext c = ctx;
    c.training = false;
    c.step = step_;  // the model after step_ updates
    NoGradGuard ng;
    for (const auto& [k, v] : ev->evaluate(c)) {
      all[e + "/" + k] = v;
      line[e + "/" + k] = Json(v);
    }
  }
  // Every node the stage runs hears the results (a loss's switch, a replay sampler).
  for (const NodeSpec* n : plan.run_nodes) node(n->name)->observe(all);
  if (opt_.comm->is_writer()) {
    log_metrics(line);
    if (!tty_) {
      std::printf("[%s] eval step %lld:", s.name.c_str(), (long long)step_);
      for (const auto& [k, v] : all) std::printf(" %s=%.4g", k.c_str(), v);
      std::printf("\n");
    }
  }
}

nn::NamedTensors Executor::parameters_of(const std::string& name) const {
  auto p = node(name);
  if (auto m = std::dynamic_pointer_cast<Model>(p)) return m->module().named_parameters();
  return p->owned_parameters();
}

Executor::StagePlan Executor::plan_stage(size_t si) const {
  StagePlan plan;
  plan.index = si;
  plan.spec = &g_.stages[si];
  const StageSpec& s = *plan.spec;
  std::set<std::string> needed;
  std::function<void(const std::string&)> need = [&](const std::string& n) {
    if (!needed.insert(n).second) return;
    for (const auto& [port, src] : g_.node(n)->inputs) need(src.node);
  };
  for (const auto& [l, w] : s.losses) need(l);
  for (const NodeSpec& n : g_.nodes)
    if (needed.count(n.name)) plan.run_nodes.push_back(&n);
  plan.trained = {s.train.begin(), s.train.end()};
  for (const NodeSpec* n : plan.run_nodes) {
    if (n->info->entry.kind == PluginKind::model) plan.models.push_back(n->name);
    if (n->info->entry.kind != PluginKind::data) continue;
    if (!s.data.empty() && std::find(s.data.begin(), s.data.end(), n->name) == s.data.end())
      throw Error("stage '" + s.name + "': loss inputs come from data node '" + n->name +
                  "', which is not in the stage's data list");
    plan.tokens_per_step += std::dynamic_pointer_cast<DataSource>(node(n->name))->tokens_per_batch();
  }
  return plan;
}

// Which parameters the stage trains and in which group each is. Runs once the stage's ops
// have shaped the models; a group that selects nothing, or a trained node that owns no
// parameters, is an error here, before the stage's first update.
void Executor::plan_parameters(StagePlan& plan, const OptimizerSet& groups) const {
  const StageSpec& s = *plan.spec;
  plan.params.clear();
  std::vector<size_t> count(groups.groups.size(), 0);
  for (const auto& n : s.train) {
    const nn::NamedTensors own = parameters_of(n);
    if (own.empty())
      throw Error(where(s.pos) + "stage '" + s.name + "' trains node '" + n + "', which has no trainable parameters " +
                  "(hint: a node other than a model is trainable when its plugin owns parameters)");
    for (const auto& [k, t] : own) {
      StagePlan::Param p{n + "." + k, t, 0};
      p.group = groups.group_of(p.name);
      ++count[p.group];
      plan.params.push_back(std::move(p));
    }
  }
  for (size_t i = 0; i < s.param_groups.size(); ++i) {
    if (count[i] > 0) continue;
    const ParamGroupSpec& g = s.param_groups[i];
    std::string nodes;
    for (const auto& n : g.nodes.empty() ? s.train : g.nodes) nodes += (nodes.empty() ? "" : ", ") + n;
    throw Error(where(g.pos) + "parameter group " + std::to_string(i) + " of stage '" + s.name +
                "' selects no parameter: none of " + nodes + " has a parameter matching '" + g.match +
                "' that an earlier group did not take (hint: patterns match the name within the node, e.g. "
                "\"h.*.attn.*\" or \"*.bias\"; `scion inspect` lists a checkpoint's names)");
  }
}

// The stage's optimizer: the previous stage's when plugin, settings and groups are the same
// (moments of tensors that kept their shape continue, resized ones restart), else fresh.
void Executor::start_optimizer(const StagePlan& plan) {
  const StageSpec& s = *plan.spec;
  const size_t si = plan.index;
  optimizer_same_config_ =
      si > 0 && !s.train.empty() && optimizer_identity(g_.stages[si - 1]) == optimizer_identity(s);
  optimizer_carried_ = optimizer_ && optimizer_same_config_;
  if (s.train.empty()) {
    optimizer_.reset();
  } else if (optimizer_carried_) {
    // Same groups (optimizer_identity); the learning rates are this stage's.
    for (size_t i = 0; i < s.param_groups.size(); ++i) optimizer_->groups[i].lr = s.param_groups[i].lr;
    optimizer_->groups.back().lr = s.lr;
  } else {
    optimizer_ = std::make_unique<OptimizerSet>();
    auto make = [&](const std::string& plugin, const Json& params) {
      return std::dynamic_pointer_cast<Optimizer>(reg_.create(plugin, Params(params, plugin), *this));
    };
    for (const ParamGroupSpec& g : s.param_groups)
      optimizer_->groups.push_back({make(g.optimizer, g.optimizer_params), g.nodes, g.match, g.lr, g.sign});
    optimizer_->groups.push_back({make(s.optimizer, s.optimizer_params), {}, "*", s.lr, 1});
  }
  for (const auto& n : s.train)
    if (auto m = std::dynamic_pointer_cast<Model>(node(n))) m->module().set_training(true);
}

// ---- the flow graph of a stage ---------------------------------------------------------------
// One continue_node per node the stage runs, with an edge per input; one pass runs the active
// nodes in dependency order (independent ones concurrently) and leaves the losses' values.
class Executor::StepGraph {
 public:
  StepGraph(const Executor& ex, const StagePlan& plan) : start_(fg_) {
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
      auto body = [this, &ex, n, mode](const tbb::flow::continue_msg&) {
        run_node(*n, ex.node(n->name), mode);
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
  void run(const StepContext& ctx, const std::set<std::string>& active) {
    ctx_ = ctx;
    active_ = &active;
    start_.try_put(tbb::flow::continue_msg());
    fg_.wait_for_all();
  }
  // Filled by run(), one slot per node (each written by its own node only).
  std::map<std::string, Tensor> losses;
  std::map<std::string, std::map<std::string, double>> metrics;
  std::map<std::string, int64_t> seq_len;  // of each model's input

 private:
  enum class Mode { trained, pass_gradient, no_tape };
  void run_node(const NodeSpec& spec, const std::shared_ptr<Plugin>& p, Mode mode) {
    if (!active_->count(spec.name)) {  // skipped at this step: nothing reads it
      outputs_.at(spec.name).clear();
      return;
    }
    TensorMap in;
    for (const auto& [port, src] : spec.inputs) {
      const std::string &sn = src.node, &sp = src.port;
      if (!active_->count(sn)) continue;  // an idle port of a loss
      auto it = outputs_.at(sn).find(sp);
      if (it == outputs_.at(sn).end())
        throw Error("node '" + sn + "' produced no output '" + sp + "' for node '" + spec.name + "'");
      in[port] = it->second;
    }
    switch (spec.info->entry.kind) {
      case PluginKind::data: {
        outputs_.at(spec.name) = std::dynamic_pointer_cast<DataSource>(p)->next(ctx_);
        // Data sources make host tensors; a CUDA run's batches go to the device here, once.
        if (ctx_.device.is_cuda())
          for (auto& [port, t] : outputs_.at(spec.name))
            if (t.defined()) t = t.to(ctx_.device);
        break;
      }
      case PluginKind::model: {
        auto m = std::dynamic_pointer_cast<Model>(p);
        seq_len.at(spec.name) = seq_len_of(in);
        StepContext model_ctx = ctx_;
        model_ctx.wanted_outputs = &wanted_.at(spec.name);
        StepContext eval_ctx = model_ctx;
        eval_ctx.training = false;
        if (mode == Mode::trained) {
          outputs_.at(spec.name) = m->forward(in, model_ctx);
        } else if (mode == Mode::pass_gradient) {  // frozen (no dropout), gradients flow through
          outputs_.at(spec.name) = m->forward(in, eval_ctx);
        } else {  // a teacher or a model not trained in this stage: no tape, no dropout
          NoGradGuard ng;
          outputs_.at(spec.name) = m->forward(in, eval_ctx);
        }
        break;
      }
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

  tbb::flow::graph fg_;
  tbb::flow::broadcast_node<tbb::flow::continue_msg> start_;
  std::map<std::string, std::unique_ptr<tbb::flow::continue_node<tbb::flow::continue_msg>>> nodes_;
  std::map<std::string, TensorMap> outputs_;
  std::map<std::string, std::set<std::string>> wanted_;  // fixed for the stage, read concurrently
  StepContext ctx_;
  const std::set<std::string>* active_ = nullptr;
};

// ---- training ---------------------------------------------------------------------------------
// One optimizer update, top to bottom.
Executor::StepResult Executor::train_step(const StagePlan& plan, StepGraph& graph, const StepContext& ctx) {
  const StageSpec& s = *plan.spec;
  StepResult r;

  // 1. Which nodes run: the losses and trained nodes and what they read, except through the
  // ports a loss declares idle now (a teacher whose α is 0). Data nodes always advance, so
  // that a stream does not depend on what was skipped.
  std::set<std::string> active;
  std::function<void(const std::string&)> visit = [&](const std::string& n) {
    if (!active.insert(n).second) return;
    const NodeSpec* spec = g_.node(n);
    std::set<std::string> idle;
    if (spec->info->entry.kind == PluginKind::loss)
      for (const auto& port : std::dynamic_pointer_cast<Loss>(node(n))->idle_inputs(ctx)) idle.insert(port);
    for (const auto& [port, src] : spec->inputs)
      if (!idle.count(port)) visit(src.node);
  };
  for (const auto& [l, w] : s.losses) visit(l);
  for (const auto& n : s.train) visit(n);
  for (const NodeSpec* n : plan.run_nodes)
    if (n->info->entry.kind == PluginKind::data) active.insert(n->name);

  // 2. Data -> forward -> losses: one pass of the flow graph, after the nodes' begin_step
  // hooks (a pruning loss sets its sampled gates into the model there).
  for (const NodeSpec* n : plan.run_nodes) node(n->name)->begin_step(ctx);
  graph.run(ctx, active);

  // 3. The weighted sum of the losses.
  for (const auto& [name, w] : s.losses) {
    const Tensor& l = graph.losses.at(name);
    SCION_CHECK(l.defined() && l.numel() == 1, "loss node '", name, "' did not produce a scalar");
    r.terms[name] = l.item();
    Tensor wl = w == 1.0 ? l : ops::mul_scalar(l, float(w));
    r.total = r.total.defined() ? ops::add(r.total, wl) : wl;
    for (const auto& [k, v] : graph.metrics.at(name)) r.loss_metrics[name + "/" + k] = v;
  }
  // Over ranks, the terms and metrics logged are means (so the non-finite check below decides
  // alike on every rank: a NaN on one rank is a NaN in the mean); the loss backpropagated
  // stays this rank's.
  if (opt_.comm->world() > 1) {
    std::vector<double> v;
    for (const auto& [k, x] : r.terms) v.push_back(x);
    for (const auto& [k, x] : r.loss_metrics) v.push_back(x);
    opt_.comm->allreduce(v, Reduce::mean);
    size_t i = 0;
    for (auto& [k, x] : r.terms) x = v[i++];
    for (auto& [k, x] : r.loss_metrics) x = v[i++];
  }
  for (const auto& [name, w] : s.losses) r.loss += w * r.terms.at(name);
  // A step that is not finite never reaches the optimizer (docs/runtime.md, "Numerical guard").
  auto not_finite = [&](const std::string& what) {
    const std::string at = "step " + std::to_string(ctx.step + 1) + " (stage '" + s.name + "', its update " +
                           std::to_string(ctx.stage_step + 1) + "): " + what;
    if (!g_.run.skip_nonfinite)
      throw NonFiniteError(at + "; the weights were not updated and no checkpoint of this state is written (hint: "
                           "lower the learning rate, clip gradients, check the data; [run] on_nonfinite = \"skip\" "
                           "skips such steps instead)");
    for (const auto& p : plan.params) Tensor(p.tensor).zero_grad();
    ++skipped_steps_;
    std::fprintf(stderr, "warning: %s; step skipped (%lld so far)\n", at.c_str(), (long long)skipped_steps_);
    r.skipped = true;
    return r;
  };
  for (const auto& [name, v] : r.terms)
    if (!std::isfinite(v)) return not_finite("loss term '" + name + "' is " + std::to_string(v));
  if (!std::isfinite(r.loss))
    return not_finite("the weighted sum of the losses is " + std::to_string(r.loss) + " (a loss weight is not finite?)");
  // FLOPs: a trained model's forward and backward, a third of it for a forward alone, at the
  // sequence length the model read.
  for (const auto& m : plan.models)
    if (active.count(m)) {
      const double per_token = std::dynamic_pointer_cast<Model>(node(m))->flops_per_token(graph.seq_len.at(m));
      r.flops += double(plan.tokens_per_step) * (plan.trained.count(m) ? per_token : per_token / 3.0);
    }
  r.lr = learning_rate(ctx.stage_step, s.steps, s.lr, s.warmup, s.decay, s.min_lr);
  if (!optimizer_) return r;
  if (!std::isfinite(r.lr)) return not_finite("the learning rate is " + std::to_string(r.lr));

  // 4. Backward.
  SCION_CHECK(r.total.requires_grad(), "stage '", s.name, "': the losses do not depend on the trained models ",
              "(are the loss inputs connected to a trained model's outputs?)");
  if (plan.buckets) {  // data parallel: each bucket's all-reduce starts as backward completes it
    plan.buckets->begin_step();
    autograd::LeafReadyHook hook([&](const TensorImpl* leaf) { plan.buckets->on_ready(leaf); });
    r.total.backward();
    plan.buckets->finish();
  } else {
    r.total.backward();
  }

  // 5. The parameters that got a gradient. One that got none (a layer a sub-model step
  // skipped) is not stepped at all: no momentum, no weight decay, its step count unchanged,
  // as PyTorch's optimizers skip a parameter whose .grad is None. Whether a parameter gets a
  // gradient depends on the graph and the step only, so it is the same on every rank.
  std::vector<const StagePlan::Param*> stepped;
  std::vector<Tensor> grads;
  for (const auto& p : plan.params)
    if (p.tensor.grad().defined()) {
      stepped.push_back(&p);
      grads.push_back(p.tensor.grad());
    }

  // 6. Gradient all-reduce: the mean over ranks, done by the buckets during backward above
  // (core/dist/buckets.h).

  // 7. Clip the global norm.
  r.grad_norm = s.clip > 0 ? ops::clip_grad_norm(grads, float(s.clip)) : ops::global_norm(grads);
  if (!std::isfinite(r.grad_norm)) {
    std::string first = "?";
    for (size_t i = 0; i < stepped.size(); ++i)
      if (!std::isfinite(ops::global_norm({stepped[i]->tensor.grad()}))) {
        first = stepped[i]->name;
        break;
      }
    return not_finite("the gradient norm is " + std::to_string(r.grad_norm) + ", first in parameter '" + first + "'");
  }

  // 8. The optimizer, group by group: the stage's schedule scales each group's peak lr; a
  // group with sign -1 steps up its gradient (ascent).
  for (size_t gi = 0; gi < optimizer_->groups.size(); ++gi) {
    const OptimizerSet::Group& group = optimizer_->groups[gi];
    nn::NamedTensors mine;
    for (const StagePlan::Param* p : stepped) {
      if (p->group != gi) continue;
      if (plan.zero && !plan.zero->mine(plan.param_index.at(&p->tensor.impl()))) continue;  // another rank's shard
      Tensor t = p->tensor;
      if (group.sign < 0) t.set_grad(ops::neg(t.grad()));
      mine.emplace_back(p->name, t);
    }
    if (mine.empty()) continue;
    const double lr = group.lr == s.lr ? r.lr
                      : s.lr > 0       ? group.lr * (r.lr / s.lr)
                                       : group.lr * learning_rate(ctx.stage_step, s.steps, 1.0, s.warmup, s.decay, 0.0);
    group.opt->step(mine, lr, ctx);
  }
  if (plan.zero) plan.zero->share_parameters();  // every parameter from its owner
  for (const auto& p : plan.params) {
    Tensor t = p.tensor;
    t.zero_grad();
  }
  // 9. The nodes' end_step hooks (clamp log alpha, advance a schedule).
  for (const NodeSpec* n : plan.run_nodes) node(n->name)->end_step(ctx);
  return r;
}

void Executor::log_step(const StagePlan& plan, const StepResult& r, int64_t stage_step, double dt, double rate) {
  const StageSpec& s = *plan.spec;
  if (!opt_.comm->is_writer() || (stage_step % s.log_every != 0 && stage_step != s.steps)) return;
  Json line;
  for (const auto& [k, v] : r.loss_metrics) line[k] = Json(v);
  line["step"] = Json(step_);
  line["stage"] = Json(s.name);
  for (const auto& [k, v] : r.terms) line[k] = Json(v);  // each term under its node's name
  const double loss = r.loss;
  line["loss"] = Json(loss);  // the weighted total
  line["lr"] = Json(r.lr);
  line["grad_norm"] = Json(r.grad_norm);
  const double tps = double(plan.tokens_per_step * opt_.comm->world()) / dt;
  line["tokens_per_s"] = Json(tps);
  line["tokens"] = Json(tokens_);
  line["flops"] = Json(flops_);
  line["elapsed_s"] = Json(elapsed_before_ + now_s(start_));
  if (skipped_steps_ > 0) line["skipped_steps"] = Json(skipped_steps_);
  log_metrics(line);
  const double eta = double(s.steps - stage_step) / std::max(rate, 1e-9);
  if (tty_)
    std::printf("\r[%s] step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s   ", s.name.c_str(),
                (long long)stage_step, (long long)s.steps, loss, r.lr, tps, fmt_eta(eta).c_str());
  else
    std::printf("[%s] step %lld/%lld loss %.4f lr %.3e tokens/s %.0f\n", s.name.c_str(), (long long)stage_step,
                (long long)s.steps, loss, r.lr, tps);
  std::fflush(stdout);
}

void Executor::train_stage(size_t si) {
  const StageSpec& s = g_.stages[si];
  StepContext ctx;
  ctx.stage = s.name;
  ctx.seed = g_.run.seed;
  ctx.device = device_;
  ctx.rank = opt_.comm->rank();
  ctx.world = opt_.comm->world();
  if (ctx.world > 1) ctx.allreduce_sum = [c = opt_.comm](double* v, size_t n) { c->allreduce_host(v, n, Reduce::sum); };

  StagePlan plan = plan_stage(si);
  zero_.reset();
  start_optimizer(plan);
  int64_t stage_step = resume_stage_step_;
  resume_stage_step_ = 0;
  const bool resumed_here = resumed_;
  resumed_ = false;
  // Resuming: the checkpoint holds the moments this stage continues from (loaded before the
  // stage's ops so that a growth op maps them as in the uninterrupted run).
  // A stage that continues its moments and finds none in the checkpoint is an error: a fresh
  // optimizer would change the curve without a word.
  std::vector<std::string> resumed_state;
  if (optimizer_ && resumed_here && (stage_step > 0 || optimizer_same_config_)) {
    const fs::path f = fs::path(resume_dir_) / ::scion::checkpoint::kOptimizerFile;
    const bool held = resume_manifest_ ? resume_files_.count(::scion::checkpoint::kOptimizerFile) > 0 : fs::exists(f);
    SCION_CHECK(held, "resume: '", f.string(), "' is missing: stage '", s.name,
                "' continues the optimizer state saved with the checkpoint (hint: restore the file, or resume from "
                "an earlier checkpoint folder)");
    auto loaded = safetensors::load(f.string()).tensors;
    for (const auto& [k, t] : loaded) resumed_state.push_back(k);
    optimizer_->load_state_tensors(loaded);
  }
  if (stage_step == 0) {
    ctx.step = step_;
    apply_ops(si, ctx);
  }
  // A CUDA run: the models' parameters and buffers live on the device, moved after the stage's
  // ops (growth builds its new tensors on the CPU) and before the optimizer collects them; the
  // optimizer's moments follow their parameters. Checkpoints are written from host copies and
  // read on the CPU, so they are the same files whatever the device.
  if (device_.is_cuda())
    for (const auto& [name, p] : nodes_)
      if (auto m = std::dynamic_pointer_cast<Model>(p)) m->module().to(device_);
  if (optimizer_) plan_parameters(plan, *optimizer_);
  // Mid-stage the parameter names are final: moments of a parameter the stage does not train
  // mean the file came from another graph or run.
  if (stage_step > 0 && !resumed_state.empty()) {
    std::set<std::string> names;
    for (const auto& p : plan.params) names.insert(p.name);
    for (const auto& k : resumed_state) {
      const std::string param = k.substr(0, k.rfind('.'));
      SCION_CHECK(names.count(param), "resume: '", resume_dir_, "/", ::scion::checkpoint::kOptimizerFile,
                  "' holds state '", k, "' for parameter '", param, "', which stage '", s.name,
                  "' does not train: the file belongs to another graph or run");
    }
  }
  if (optimizer_ && opt_.comm->world() > 1) {
    std::vector<Tensor> ps;
    for (const auto& p : plan.params) ps.push_back(p.tensor);
    plan.buckets = std::make_shared<GradBuckets>(*opt_.comm, ps);
    if (g_.run.zero_stage == 1) {
      plan.zero = std::make_shared<ZeroShards>(*opt_.comm, ps);
      for (size_t k = 0; k < ps.size(); ++k) plan.param_index[&ps[k].impl()] = k;
      zero_ = plan.zero;
      if (!tty_ || opt_.comm->is_writer())
        std::printf("[%s] zero-1: rank %d steps %zu of %zu parameter elements (optimizer state for those only)\n",
                    s.name.c_str(), opt_.comm->rank(), plan.zero->owned_elements(), [&] {
                      size_t n = 0;
                      for (const auto& t : ps) n += size_t(t.numel());
                      return n;
                    }());
    }
  }
  // The models this stage does not train keep no gradient of their own, even where gradients
  // pass through them to a trained node upstream (a frozen model under a trained prompt).
  for (const auto& [name, p] : nodes_)
    if (auto m = std::dynamic_pointer_cast<Model>(p))
      for (auto& [pn, t] : m->module().named_parameters()) Tensor(t).set_requires_grad(plan.trained.count(name) > 0);
  StepGraph graph(*this, plan);

  const auto stage_t0 = std::chrono::steady_clock::now();
  const int64_t first = stage_step;
  while (stage_step < s.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    ctx.step = step_;
    ctx.stage_step = stage_step;
    ctx.training = true;
    const StepResult r = train_step(plan, graph, ctx);
    ++step_;
    ++stage_step;
    tokens_ += double(plan.tokens_per_step * opt_.comm->world());
    flops_ += r.flops * opt_.comm->world();
    log_step(plan, r, stage_step, now_s(t0), double(stage_step - first) / std::max(1e-9, now_s(stage_t0)));
    if (s.eval_every > 0 && (stage_step % s.eval_every == 0 || stage_step == s.steps)) {
      if (tty_) std::printf("\n");
      evaluate(plan, ctx);
    }
    const bool last = stage_step == s.steps;
    if (last)  // before the checkpoint that closes the stage, so what the hooks keep is saved
      for (const NodeSpec* n : plan.run_nodes) node(n->name)->end_stage(ctx);
    const bool due = (s.checkpoint_every > 0 && stage_step % s.checkpoint_every == 0) || last;
    int sig = g_stop_signal.load();
    if (opt_.comm->world() > 1) {  // every rank stops at the same update
      std::vector<double> v{double(sig)};
      opt_.comm->allreduce(v, Reduce::max);
      sig = int(v[0]);
    }
    if (due || sig) save_checkpoint(last ? si + 1 : si, last ? 0 : stage_step);
    if (sig) {
      if (tty_) std::printf("\n");
      throw Interrupted(sig, std::string(signal_name(sig)) + " at step " + std::to_string(step_) + " (stage '" + s.name +
                                 "', update " + std::to_string(stage_step) + " of " + std::to_string(s.steps) +
                                 "): checkpoint written to " + out_dir_ + "/checkpoints; continue with --resume");
    }
  }
  if (tty_) std::printf("\n");
}

// ---- checkpoints (the files: checkpoint.cpp) --------------------------------------------------
namespace {
// Every node's tensors as checkpoint files: a model's state dict, and the parameters a
// non-model node owns, each as <node>.safetensors.
std::vector<checkpoint::TensorFile> node_files(const GraphSpec& g, const Executor& ex) {
  std::vector<checkpoint::TensorFile> files;
  for (const NodeSpec& n : g.nodes) {
    auto p = ex.node(n.name);
    if (auto m = std::dynamic_pointer_cast<Model>(p))
      files.push_back({n.name + ".safetensors", m->module().state_dict(),
                       {{::scion::checkpoint::kPluginKey, n.plugin}, {::scion::checkpoint::kConfigKey, json_dump(m->config())}}});
    else if (auto own = p->owned_parameters(); !own.empty())
      files.push_back({n.name + ".safetensors", own, {{::scion::checkpoint::kPluginKey, n.plugin}}});
  }
  return files;
}
}  // namespace

// Before a checkpoint: an update can overflow the weights even when its loss and gradient
// were finite; such a state is never saved as if it were good.
void Executor::check_parameters_finite() const {
  for (const NodeSpec& n : g_.nodes)
    for (const auto& [name, t] : parameters_of(n.name))
      if (!std::isfinite(ops::global_norm({t})))
        throw NonFiniteError("after step " + std::to_string(step_) + ", parameter '" + n.name + "." + name +
                             "' is not finite; no checkpoint of this state is written (hint: lower the learning "
                             "rate or clip gradients)");
}

void Executor::save_checkpoint(size_t si, int64_t stage_step) {
  // The optimizer state, all of it on rank 0 (with ZeRO every rank takes part in the gather).
  nn::NamedTensors opt_state;
  if (optimizer_) opt_state = zero_ ? zero_->gather_state(optimizer_->state_tensors()) : optimizer_->state_tensors();
  if (!opt_.comm->is_writer()) return;
  if (optimizer_) check_parameters_finite();
  checkpoint::Contents c;
  c.counters = {step_, int64_t(si), stage_step, tokens_, flops_, elapsed_before_ + now_s(start_)};
  c.nodes = Json(Json::object_t{});
  for (const NodeSpec& n : g_.nodes)
    if (Json st = node(n.name)->state(); !st.is_null()) c.nodes[n.name] = st;
  c.files = node_files(g_, *this);
  if (optimizer_) c.files.push_back({::scion::checkpoint::kOptimizerFile, opt_state, {}});
  checkpoint::write(fs::path(out_dir_) / "checkpoints", c);
}

bool Executor::load_checkpoint(size_t& si, int64_t& stage_step) {
  const auto found = checkpoint::read_latest(fs::path(out_dir_) / "checkpoints");
  if (!found) return false;
  resume_dir_ = found->dir.string();
  resume_manifest_ = found->manifest;
  resume_files_ = {found->files.begin(), found->files.end()};
  SCION_CHECK(found->counters.stage_index <= int64_t(g_.stages.size()) &&
                  (found->counters.stage_index == int64_t(g_.stages.size())
                       ? found->counters.stage_step == 0
                       : found->counters.stage_step < g_.stages[size_t(found->counters.stage_index)].steps),
              "resume: '", resume_dir_, "/state.json' is at stage ", found->counters.stage_index, ", update ",
              found->counters.stage_step, ", which this graph (", g_.stages.size(),
              " stages) does not have (hint: resume with the graph the run was started with)");
  step_ = found->counters.step;
  si = size_t(found->counters.stage_index);
  stage_step = found->counters.stage_step;
  tokens_ = found->counters.tokens;
  flops_ = found->counters.flops;
  elapsed_before_ = found->counters.elapsed_s;
  // Parameters owned by non-model nodes first: an op may read them (op.cofi_prune prunes by
  // the masks a loss.cofi node trained), so they hold their saved values when the ops re-run.
  for (const NodeSpec& n : g_.nodes) {
    auto p = node(n.name);
    if (std::dynamic_pointer_cast<Model>(p)) continue;
    nn::NamedTensors own = p->owned_parameters();
    if (own.empty()) continue;
    // Back into the node's own tensors, checked first so that a mismatch changes nothing.
    const auto loaded = found->load(n.name + ".safetensors").tensors;
    std::map<std::string, Tensor> by_name(loaded.begin(), loaded.end());
    for (const auto& [k, t] : own) {
      auto it = by_name.find(k);
      SCION_CHECK(it != by_name.end(), "resume: node '", n.name, "' owns parameter '", k,
                  "', which the checkpoint does not have");
      SCION_CHECK(it->second.shape() == t.shape(), "resume: parameter '", n.name, ".", k, "' is ",
                  it->second.desc(), " in the checkpoint but ", t.desc(), " in the node");
    }
    NoGradGuard ng;
    for (auto& [k, t] : own) {
      Tensor dst = t;
      dst.copy_(by_name.at(k));
    }
  }
  // Re-apply the ops of every stage begun so far so that the models have the shapes the
  // checkpoint was written with; the weights are then overwritten.
  // Ops see the run's update count at their stage's start, as in the uninterrupted run.
  StepContext ctx;
  ctx.seed = g_.run.seed;
  ctx.step = 0;
  for (size_t k = 0; k <= si && k < g_.stages.size(); ++k) {
    if (k == si && stage_step == 0) break;
    ctx.stage = g_.stages[k].name;
    apply_ops(k, ctx);
    ctx.step += g_.stages[k].steps;
  }
  for (const NodeSpec& n : g_.nodes) {
    auto p = node(n.name);
    if (auto m = std::dynamic_pointer_cast<Model>(p))
      m->module().load_state_dict(found->load(n.name + ".safetensors").tensors);
    if (found->nodes.contains(n.name)) p->restore(found->nodes.at(n.name));
  }
  return true;
}

std::map<std::string, double> Executor::evaluate_only(const std::vector<std::string>& evaluators) {
  make_nodes();
  StepContext ctx;
  ctx.seed = g_.run.seed;
  ctx.training = false;
  ctx.device = device_;
  std::map<std::string, double> all;
  NoGradGuard ng;
  for (const auto& e : evaluators)
    for (const auto& [k, v] : std::dynamic_pointer_cast<Evaluator>(node(e))->evaluate(ctx)) all[e + "/" + k] = v;
  return all;
}

// What can only be checked once the nodes exist, before anything runs or is written.
void Executor::check_before_training() const {
  // A loss that acts on evaluation metrics (loss.inherit's until_surpassed) in a stage that
  // does not produce them would never see one: refuse before anything runs or is written.
  for (const StageSpec& s : g_.stages)
    for (const auto& [name, w] : s.losses)
      for (const std::string& metric : std::dynamic_pointer_cast<Loss>(node(name))->needed_metrics()) {
        const size_t slash = metric.find('/');
        const std::string ev = metric.substr(0, slash);
        const bool there = s.eval_every > 0 && slash != std::string::npos &&
                           std::find(s.evaluators.begin(), s.evaluators.end(), ev) != s.evaluators.end();
        if (there) continue;
        const SourcePos& p = g_.node(name)->pos;
        throw Error(where(p) + "stage '" + s.name + "' uses loss '" + name + "', which acts on the evaluation metric '" + metric +
                    "', but the stage does not evaluate with '" + ev + "' (hint: metrics are named <evaluator>/<key>; " +
                    "add eval = { every = N, evaluators = [\"" + ev + "\"] } to the stage)");
      }
  // Parameter groups select by name: a group that selects nothing is refused here for every
  // stage up to the first with ops (whose names are known now), and for the others when they
  // start, before their first update.
  for (size_t si = 0; si < g_.stages.size() && g_.stages[si].ops.empty(); ++si) {
    if (g_.stages[si].train.empty()) continue;
    StagePlan plan = plan_stage(si);
    plan_parameters(plan, OptimizerSet::selection(g_.stages[si]));
  }
}

// One live run per run directory: an exclusive flock on <dir>/.lock, released by the OS when
// the process dies however it dies, so a stale lock never blocks a rerun.
void Executor::lock_run_directory() {
  fs::create_directories(out_dir_);
  const fs::path lp = fs::path(out_dir_) / ".lock";
  lock_fd_ = ::open(lp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  SCION_CHECK(lock_fd_ >= 0, "cannot open '", lp.string(), "': ", std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    const ssize_t n = ::pread(lock_fd_, buf, sizeof buf - 1, 0);
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw RunDirectoryBusy("run directory '" + out_dir_ + "' is in use by another scion run" +
                           (n > 0 ? " (pid " + std::string(buf, size_t(n)) + ")" : std::string()) +
                           " (hint: wait for it, or give this run another --out or [run] name)");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(lock_fd_, 0) == 0 && ::pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
  }  // the pid is only for the message above
}

// A fresh run in a directory an earlier run used moves that run's results (checkpoints,
// metrics, graph, weights) to <dir>/earlier/<UTC time>/ before writing anything: a run that
// then fails at its first step has destroyed nothing.
void Executor::move_earlier_results() {
  std::vector<fs::path> earlier;
  for (const auto& e : fs::directory_iterator(out_dir_)) {
    const std::string fn = e.path().filename().string();
    if (fn != ".lock" && fn != "earlier") earlier.push_back(e.path());
  }
  if (earlier.empty()) return;
  char stamp[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  fs::path dst = fs::path(out_dir_) / "earlier" / stamp;
  for (int k = 2; fs::exists(dst); ++k) dst = fs::path(out_dir_) / "earlier" / (std::string(stamp) + "-" + std::to_string(k));
  fs::create_directories(dst);
  for (const auto& p : earlier) fs::rename(p, dst / p.filename());
  std::printf("%s: moved the earlier run's results to %s (use --resume to continue a run instead)\n",
              out_dir_.c_str(), dst.c_str());
}

void Executor::run() {
  start_ = std::chrono::steady_clock::now();
  make_nodes();
  check_before_training();
  StopSignals stop_signals;
  if (opt_.comm->is_writer()) lock_run_directory();
  size_t first_stage = 0;
  int64_t stage_step = 0;
  if (opt_.resume) {
    if (load_checkpoint(first_stage, stage_step)) {
      resumed_ = true;
      if (opt_.comm->is_writer())
        std::printf("resuming %s at step %lld (stage %zu, step %lld of it)\n", out_dir_.c_str(), (long long)step_,
                    first_stage, (long long)stage_step);
    } else if (opt_.comm->is_writer()) {
      std::printf("no checkpoint in %s/checkpoints: starting from the beginning\n", out_dir_.c_str());
    }
  }
  if (opt_.comm->is_writer()) {
    // A fresh run in a directory used before starts clean, the earlier results moved aside:
    // its checkpoints would otherwise be resumed from, or outrank this run's.
    if (!resumed_) move_earlier_results();
    const fs::path gp = fs::path(out_dir_) / "graph.toml";
    if (resumed_ && fs::exists(gp)) {
      // Resuming with another graph (an override, an edited file) is allowed, but the curve
      // then no longer continues the interrupted run's: say so.
      std::ifstream in(gp, std::ios::binary);
      const std::string before((std::istreambuf_iterator<char>(in)), {});
      if (before != g_.resolved_toml)
        std::fprintf(stderr,
                     "warning: %s differs from the graph being resumed; the run continues from its checkpoint, but "
                     "not on the curve an uninterrupted run of either graph would give\n",
                     gp.c_str());
    }
    files::write_atomic(gp.string(), g_.resolved_toml);
    const fs::path mp = fs::path(out_dir_) / "metrics.jsonl";
    if (opt_.resume && fs::exists(mp)) {
      // Keep only the lines up to the checkpoint's step: the run continues from there.
      std::ifstream in(mp);
      std::vector<std::string> keep;
      std::string line;
      while (std::getline(in, line)) {
        try {
          if (json_int(json_parse(line).at("step")) <= step_) keep.push_back(line);
        } catch (const std::exception&) {  // a torn last line (the kill came mid-write), not a metric
        }
      }
      in.close();
      std::string all;
      for (const auto& l : keep) all += l + "\n";
      files::write_atomic(mp.string(), all);
      metrics_ = std::fopen(mp.c_str(), "a");
    } else {
      metrics_ = std::fopen(mp.c_str(), "w");
    }
    SCION_CHECK(metrics_, "cannot write '", mp.string(), "'");
  }
  opt_.comm->barrier();  // the other ranks start once rank 0 has set the run directory up
  for (size_t si = first_stage; si < g_.stages.size(); ++si) {
    resume_stage_step_ = si == first_stage ? stage_step : 0;
    train_stage(si);
  }
  // Final weights of every model (and parameters other nodes own), next to the metrics, for
  // `scion eval` and `scion generate`.
  if (opt_.comm->is_writer())
    for (const auto& f : node_files(g_, *this))
      safetensors::save((fs::path(out_dir_) / f.file).string(), f.tensors, f.metadata);
}

}  // namespace scion::runtime
