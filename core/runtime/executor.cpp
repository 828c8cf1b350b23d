#include "runtime/executor.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "ops/cpu_engine.h"
#include "dist/buckets.h"
#include "dist/zero.h"
#include "graph/node_factory.h"
#include "runtime/checkpoint.h"
#include "runtime/resume_state.h"
#include "runtime/run_directory.h"
#include "runtime/step_graph.h"
#include "runtime/stop_signals.h"
#include "runtime/schedule.h"
#include "scion/autograd.h"
#include "scion/ops.h"
#include "scion/random.h"
#include "scion/checkpoint.h"
#include "scion/safetensors.h"
#include "scion/precision.h"
#include "scion/reported_values.h"
#include "scion/threads.h"

namespace scion::runtime {

namespace fs = std::filesystem;

namespace {

double now_s(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::string fmt_eta(double s) {
  char buf[32];
  if (s < 0 || !std::isfinite(s)) return "?";
  std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  return buf;
}

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
  ops::check_cpu_engine_environment();
  const bool bf16_native = matmul_bf16_native();
  if (matmul_precision() == MatmulPrecision::bf16 && device_.is_cpu() && !bf16_native && opt_.comm->is_writer())
    std::fprintf(stderr,
                 "warning: precision = \"bf16\": this CPU has no bf16 GEMM in oneDNN (it needs AVX-512; "
                 "SCION_CPU_BF16=emulate also forces this), so the bf16 GEMMs are emulated in f32: the same "
                 "rounding of their inputs, no faster than precision = \"f32\" (use it unless you want bf16's "
                 "numerics)\n");
  tty_ = opt_.progress == 1 || (opt_.progress < 0 && ::isatty(STDOUT_FILENO));
}

Executor::~Executor() { set_matmul_precision(previous_precision_); }

std::shared_ptr<Plugin> Executor::node(const std::string& name) const {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) throw Error("no node named '" + name + "' has been made yet");
  return it->second;
}

// ---- setting up ----------------------------------------------------------------------------------
void Executor::make_nodes() {
  // Evaluators last: they look up data and model nodes by name.
  std::vector<const NodeSpec*> order;
  for (const NodeSpec& n : g_.nodes)
    if (n.info->entry.kind != PluginKind::evaluator) order.push_back(&n);
  for (const NodeSpec& n : g_.nodes)
    if (n.info->entry.kind == PluginKind::evaluator) order.push_back(&n);
  const GraphContext graph = GraphContext::of(g_, opt_.comm->rank(), opt_.comm->world());
  for (const NodeSpec* np : order) {
    const NodeSpec& n = *np;
    try {
      nodes_[n.name] = make_node(reg_, n, graph, *this);
    } catch (const std::exception& e) {
      throw Error(source_prefix(n.pos) + "node '" + n.name + "' (" + n.plugin + "): " + e.what());
    }
  }
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
        throw Error(source_prefix(p) + "stage '" + s.name + "' uses loss '" + name + "', which acts on the evaluation metric '" + metric +
                    "', but the stage does not evaluate with '" + ev + "' (hint: metrics are named <evaluator>/<key>; " +
                    "add eval = { every = N, evaluators = [\"" + ev + "\"] } to the stage)");
      }
  // Parameter groups select by name: a group that selects nothing is refused here for every
  // stage up to the first with ops (whose names are known now), and for the others when they
  // start, before their first update.
  for (size_t si = 0; si < g_.stages.size() && g_.stages[si].ops.empty(); ++si) {
    if (g_.stages[si].train.empty()) continue;
    StagePlan plan = plan_stage(g_, si, *this);
    plan_parameters(plan, OptimizerSet::selection(g_.stages[si]), *this);
  }
}

// Rank 0 holds the run directory: locked before anything is written into it.
void Executor::open_run_directory() {
  if (!opt_.comm->is_writer()) return;
  dir_ = std::make_unique<RunDirectory>(out_dir_);
  dir_->lock();
}

// --resume: the newest checkpoint's counters, the parameters other nodes own, the ops of every
// stage begun so far re-applied (so that the models have the shapes the checkpoint was
// written with), then the weights and the nodes' state.
void Executor::resume_from_checkpoint() {
  if (auto found = ResumeState::find(out_dir_, g_)) resume_ = std::make_unique<ResumeState>(std::move(*found));
  if (!resume_) {
    if (opt_.comm->is_writer())
      std::printf("no checkpoint in %s/checkpoints: starting from the beginning\n", out_dir_.c_str());
    return;
  }
  const checkpoint::Counters& c = resume_->found().counters;
  step_ = c.step;
  stage_updates_ = resume_->stage_updates();
  tokens_ = c.tokens;
  flops_ = c.flops;
  elapsed_before_ = c.elapsed_s;
  resume_->restore_owned_parameters(g_, *this);
  // Ops see the run's update count at their stage's start, as in the uninterrupted run.
  StepContext ctx;
  ctx.seed = g_.run.seed;
  ctx.step = 0;
  const size_t si = resume_->stage_index();
  for (size_t k = 0; k <= si && k < g_.stages.size(); ++k) {
    if (k == si && resume_->stage_step() == 0) break;
    ctx.stage = g_.stages[k].name;
    apply_ops(k, ctx);
    ctx.step += g_.stages[k].steps;
  }
  resume_->restore_models_and_state(g_, *this);
  if (!opt_.comm->is_writer()) return;
  if (const auto done = resume_->ended_after())
    std::printf("%s: stage '%s' had ended after %lld updates; this graph gives it %lld, so it trains on to that total "
                "(on this graph's learning-rate schedule)\n",
                out_dir_.c_str(), g_.stages[si].name.c_str(), (long long)*done, (long long)g_.stages[si].steps);
  if (si == g_.stages.size())
    std::printf("%s: the run has finished (step %lld, every stage done): nothing left to train (hint: add a "
                "[[stages]] entry to train further)\n", out_dir_.c_str(), (long long)step_);
  else
    std::printf("resuming %s at step %lld (stage %zu, step %lld of it)\n", out_dir_.c_str(), (long long)step_, si,
                (long long)resume_->stage_step());
}

void Executor::run() {
  start_ = std::chrono::steady_clock::now();
  make_nodes();
  check_before_training();
  StopSignals stop_signals;
  open_run_directory();
  if (opt_.resume) resume_from_checkpoint();
  if (dir_) {
    // A fresh run in a directory used before starts clean, the earlier results moved aside:
    // its checkpoints would otherwise be resumed from, or outrank this run's.
    if (!resume_) dir_->move_earlier_results();
    dir_->write_graph(g_.resolved_toml, resume_ != nullptr, opt_.comm->world());
    dir_->open_metrics(opt_.resume, step_);
  }
  opt_.comm->barrier();  // the other ranks start once rank 0 has set the run directory up
  for (size_t si = resume_ ? resume_->stage_index() : 0; si < g_.stages.size(); ++si) train_stage(si);
  // Final weights of every model (and parameters other nodes own), next to the metrics, for
  // `scion eval` and `scion generate`.
  if (opt_.comm->is_writer())
    for (const auto& f : node_files(g_, *this))
      safetensors::save((fs::path(out_dir_) / f.file).string(), f.tensors, f.metadata);
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

// ---- a stage -------------------------------------------------------------------------------------
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
    if (optimizer_) optimizer_->move_state_to_host();
  }
  const GraphContext graph = GraphContext::of(g_, opt_.comm->rank(), opt_.comm->world());
  for (const OpSpec& op : g_.stages[si].ops) {
    auto inst = make_op(reg_, op, graph, k == 0 ? stage_seed : derive_seed(stage_seed, k), *this);
    ++k;
    auto model = std::dynamic_pointer_cast<Model>(node(op.target));
    std::map<std::string, Shape> before;
    for (const auto& [k, t] : model->module().named_parameters()) before[op.target + "." + k] = t.shape();
    inst->apply(*model, ctx);
    if (optimizer_) optimizer_->carry_across_op(*inst, op.target, *model, before);
    if (opt_.comm->is_writer() && !tty_)
      std::printf("[%s] op %s applied to %s: %lld parameters\n", g_.stages[si].name.c_str(), op.plugin.c_str(),
                  op.target.c_str(), (long long)model->module().parameter_count());
  }
}

// The stage's optimizer: the previous stage's when plugin, settings and groups are the same
// (moments of tensors that kept their shape continue, resized ones restart), else fresh.
void Executor::start_optimizer(const StagePlan& plan) {
  const StageSpec& s = *plan.spec;
  const size_t si = plan.index;
  optimizer_same_config_ = si > 0 && !s.train.empty() && same_optimizer_configuration(g_.stages[si - 1], s);
  if (s.train.empty()) {
    optimizer_.reset();
  } else if (optimizer_ && optimizer_same_config_) {
    optimizer_->take_learning_rates(s);  // same groups; the learning rates are this stage's
  } else {
    optimizer_ = make_optimizer_set(s);
  }
  for (const auto& n : s.train)
    if (auto m = std::dynamic_pointer_cast<Model>(node(n))) m->module().set_training(true);
}

std::unique_ptr<OptimizerSet> Executor::make_optimizer_set(const StageSpec& s) {
  return OptimizerSet::make(s, [&](const std::string& plugin, const Json& params) {
    return std::dynamic_pointer_cast<Optimizer>(reg_.create(plugin, Params(params, plugin), *this));
  });
}

// Several ranks: the gradient buckets of the trained parameters, and with [run] zero = 1 the
// shards of the optimizer state.
void Executor::start_data_parallel(StagePlan& plan) {
  if (!optimizer_ || opt_.comm->world() <= 1) return;
  std::vector<Tensor> ps;
  for (const auto& p : plan.params) ps.push_back(p.tensor);
  plan.buckets = std::make_shared<GradBuckets>(*opt_.comm, ps);
  if (g_.run.zero_stage != 1) return;
  plan.zero = std::make_shared<ZeroShards>(*opt_.comm, ps);
  for (size_t k = 0; k < ps.size(); ++k) plan.param_index[&ps[k].impl()] = k;
  zero_ = plan.zero;
  if (!tty_ || opt_.comm->is_writer()) {
    size_t all = 0;
    for (const auto& t : ps) all += size_t(t.numel());
    std::printf("[%s] zero-1: rank %d steps %zu of %zu parameter elements (optimizer state for those only)\n",
                plan.spec->name.c_str(), opt_.comm->rank(), plan.zero->owned_elements(), all);
  }
}

// ZeRO-1: this rank keeps the optimizer state of the parameters it owns, and only that (a
// resumed checkpoint and the state carried across a stage's ops hold every parameter's). The
// optimizer is made afresh with the kept state, as a resume makes it.
void Executor::keep_own_shard_state(const StagePlan& plan) {
  if (!plan.zero || !optimizer_) return;
  std::set<std::string> mine;
  for (size_t k = 0; k < plan.params.size(); ++k)
    if (plan.zero->mine(k)) mine.insert(plan.params[k].name);
  nn::NamedTensors kept;
  bool others = false;
  for (auto& [key, t] : optimizer_->state_tensors()) {
    if (mine.count(key.substr(0, key.rfind('.'))))
      kept.emplace_back(key, t);
    else
      others = true;
  }
  if (!others) return;
  optimizer_ = make_optimizer_set(*plan.spec);
  optimizer_->load_state_tensors(kept);
}

// Everything before a stage's first update: its optimizer (with the moments of a resumed
// checkpoint), its ops, its models on the device, its parameters and their groups, the data-
// parallel buckets. Returns the update the stage continues from (0 unless resumed).
int64_t Executor::begin_stage(StagePlan& plan, StepContext& ctx) {
  const StageSpec& s = *plan.spec;
  const std::shared_ptr<ZeroShards> shards_before = std::move(zero_);
  start_optimizer(plan);
  // ZeRO-1 into a stage that continues the optimizer: every rank takes every rank's moments,
  // so that the stage's ops carry them alike everywhere and a parameter that changes owner
  // keeps its moments (keep_own_shard_state then drops the others).
  if (shards_before && optimizer_ && optimizer_same_config_)
    optimizer_->load_state_tensors(shards_before->gather_state(optimizer_->state_tensors(), true));
  const bool resumed_here = resume_ && resume_->stage_index() == plan.index && resume_->take();
  const int64_t stage_step = resumed_here ? resume_->stage_step() : 0;
  // Resuming: the checkpoint holds the moments this stage continues from (loaded before the
  // stage's ops so that a growth op maps them as in the uninterrupted run).
  std::vector<std::string> resumed_state;
  if (optimizer_ && resumed_here && (stage_step > 0 || optimizer_same_config_)) {
    auto loaded = resume_->optimizer_state(s.name);
    for (const auto& [k, t] : loaded) resumed_state.push_back(k);
    optimizer_->load_state_tensors(loaded);
  }
  if (stage_step == 0) {
    ctx.step = step_;
    apply_ops(plan.index, ctx);
  }
  // A CUDA run: the models' parameters and buffers live on the device, moved after the stage's
  // ops (growth builds its new tensors on the CPU) and before the optimizer collects them; the
  // optimizer's moments follow their parameters. Checkpoints are written from host copies and
  // read on the CPU, so they are the same files whatever the device.
  if (device_.is_cuda())
    for (const auto& [name, p] : nodes_)
      if (auto m = std::dynamic_pointer_cast<Model>(p)) m->module().to(device_);
  if (optimizer_) plan_parameters(plan, *optimizer_, *this);
  if (stage_step > 0 && !resumed_state.empty()) {
    std::set<std::string> names;
    for (const auto& p : plan.params) names.insert(p.name);
    resume_->check_optimizer_keys(resumed_state, names, s.name);
  }
  start_data_parallel(plan);
  keep_own_shard_state(plan);
  // The models this stage does not train keep no gradient of their own, even where gradients
  // pass through them to a trained node upstream (a frozen model under a trained prompt).
  for (const auto& [name, p] : nodes_)
    if (auto m = std::dynamic_pointer_cast<Model>(p))
      for (auto& [pn, t] : m->module().named_parameters()) Tensor(t).set_requires_grad(plan.trained.count(name) > 0);
  return stage_step;
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

  StagePlan plan = plan_stage(g_, si, *this);
  int64_t stage_step = begin_stage(plan, ctx);
  StepGraph graph(*this, plan);
  const auto stage_t0 = std::chrono::steady_clock::now();
  const int64_t first = stage_step;
  // Stages before this one that a resumed checkpoint did not record ran in full.
  while (stage_updates_.size() < si) stage_updates_.push_back(g_.stages[stage_updates_.size()].steps);
  stage_updates_.resize(si + 1);
  stage_updates_[si] = stage_step;
  while (stage_step < s.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    ctx.step = step_;
    ctx.stage_step = stage_step;
    ctx.training = true;
    const StepResult r = train_step(plan, graph, ctx);
    ++step_;
    ++stage_step;
    stage_updates_[si] = stage_step;
    tokens_ += double(plan.tokens_per_step * opt_.comm->world());
    flops_ += r.flops * opt_.comm->world();
    log_step(plan, r, stage_step, now_s(t0), double(stage_step - first) / std::max(1e-9, now_s(stage_t0)));
    if (s.eval_every > 0 && (stage_step % s.eval_every == 0 || stage_step == s.steps)) {
      if (tty_) std::printf("\n");
      evaluate(plan, ctx);
    }
    end_update(plan, ctx, stage_step);
  }
  if (tty_) std::printf("\n");
}

// After an update: the end of the stage's hooks, a checkpoint when one is due or a stop
// signal came (every rank stops at the same update), and then the stop.
bool Executor::end_update(const StagePlan& plan, const StepContext& ctx, int64_t stage_step) {
  const StageSpec& s = *plan.spec;
  const bool last = stage_step == s.steps;
  if (last)  // before the checkpoint that closes the stage, so what the hooks keep is saved
    for (const NodeSpec* n : plan.run_nodes) node(n->name)->end_stage(ctx);
  const bool due = (s.checkpoint_every > 0 && stage_step % s.checkpoint_every == 0) || last;
  int sig = StopSignals::received();
  if (opt_.comm->world() > 1) {
    std::vector<double> v{double(sig)};
    opt_.comm->allreduce(v, Reduce::max);
    sig = int(v[0]);
  }
  if (due || sig) save_checkpoint(last ? plan.index + 1 : plan.index, last ? 0 : stage_step);
  if (sig) {
    // The other ranks leave once rank 0's checkpoint is complete: a rank that exits 128 + signal
    // first makes mpirun end the job, rank 0 with it.
    opt_.comm->barrier();
    if (tty_) std::printf("\n");
    throw Interrupted(sig, std::string(signal_name(sig)) + " at step " + std::to_string(step_) + " (stage '" + s.name +
                               "', update " + std::to_string(stage_step) + " of " + std::to_string(s.steps) +
                               "): checkpoint written to " + out_dir_ + "/checkpoints; continue with --resume");
  }
  return due;
}

// ---- a step ---------------------------------------------------------------------------------------
// Which nodes run: the losses and trained nodes and what they read, except through the ports a
// loss declares idle now (a teacher whose alpha is 0). Data nodes always advance, so that a
// stream does not depend on what was skipped.
std::set<std::string> Executor::active_nodes(const StagePlan& plan, const StepContext& ctx) const {
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
  for (const auto& [l, w] : plan.spec->losses) visit(l);
  for (const auto& n : plan.spec->train) visit(n);
  for (const NodeSpec* n : plan.run_nodes)
    if (n->info->entry.kind == PluginKind::data) active.insert(n->name);
  return active;
}

// The weighted sum of the losses. Over ranks, the terms and metrics logged are means (so the
// non-finite check decides alike on every rank: a NaN on one rank is a NaN in the mean); the
// loss backpropagated stays this rank's.
void Executor::sum_losses(const StagePlan& plan, const StepGraph& graph, StepResult& r) const {
  for (const auto& [name, w] : plan.spec->losses) {
    const Tensor& l = graph.losses.at(name);
    SCION_CHECK(l.defined() && l.numel() == 1, "loss node '", name, "' did not produce a scalar");
    r.terms[name] = l.item();
    Tensor wl = w == 1.0 ? l : ops::mul_scalar(l, float(w));
    r.total = r.total.defined() ? ops::add(r.total, wl) : wl;
    for (const auto& [k, v] : graph.metrics.at(name)) r.loss_metrics[name + "/" + k] = v;
  }
  if (opt_.comm->world() > 1) {
    std::vector<double> v;
    for (const auto& [k, x] : r.terms) v.push_back(x);
    for (const auto& [k, x] : r.loss_metrics) v.push_back(x);
    opt_.comm->allreduce(v, Reduce::mean);
    size_t i = 0;
    for (auto& [k, x] : r.terms) x = v[i++];
    for (auto& [k, x] : r.loss_metrics) x = v[i++];
  }
  for (const auto& [name, w] : plan.spec->losses) r.loss += w * r.terms.at(name);
}

// A step that is not finite never reaches the optimizer (docs/runtime.md, "Numerical guard"):
// the run stops (NonFiniteError), or with on_nonfinite = "skip" the step is dropped.
Executor::StepResult& Executor::not_finite(const StagePlan& plan, const StepContext& ctx, StepResult& r,
                                           const std::string& what) {
  const std::string at = "step " + std::to_string(ctx.step + 1) + " (stage '" + plan.spec->name + "', its update " +
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
}

// The optimizer, group by group: the stage's schedule scales each group's peak lr (a group
// with lr_schedule = false keeps its peak); a group with sign -1 steps up its gradient (ascent). With ZeRO-1 a rank steps its own shard.
void Executor::step_optimizer(const StagePlan& plan, const std::vector<const StagePlan::Param*>& stepped, double lr,
                              const StepContext& ctx, float clip_scale) {
  const StageSpec& s = *plan.spec;
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
    // The clip factor: folded into the update's own pass by an optimizer that takes it (AdamW),
    // else applied to the group's gradients here (the same f32 products either way).
    StepContext gctx = ctx;
    const float scale = group.clip ? clip_scale : 1.f;
    if (scale != 1.f && group.opt->takes_grad_scale()) {
      gctx.grad_scale = scale;
    } else if (scale != 1.f) {
      for (auto& [name, t] : mine) t.set_grad(ops::mul_scalar(t.grad(), scale));
    }
    const double group_lr = !group.lr_schedule ? group.lr
                            : group.lr == s.lr ? lr
                            : s.lr > 0       ? group.lr * (lr / s.lr)
                                             : group.lr * learning_rate(s.schedule_offset + ctx.stage_step, s.schedule_steps,
                                                                        1.0, s.warmup, s.decay, 0.0);
    group.opt->step(mine, group_lr, gctx);
  }
  if (plan.zero) plan.zero->share_parameters();  // every parameter from its owner
}

// One optimizer update, top to bottom.
Executor::StepResult Executor::train_step(const StagePlan& plan, StepGraph& graph, const StepContext& ctx) {
  const StageSpec& s = *plan.spec;
  StepResult r;

  // 1. Which nodes run.
  const std::set<std::string> active = active_nodes(plan, ctx);

  // 2. Data -> forward -> losses: one pass of the flow graph, after the nodes' begin_step
  // hooks (a pruning loss sets its sampled gates into the model there).
  for (const NodeSpec* n : plan.run_nodes) node(n->name)->begin_step(ctx);
  graph.run(ctx, active);

  // 3. The weighted sum of the losses, finite or not.
  sum_losses(plan, graph, r);
  for (const auto& [name, v] : r.terms)
    if (!std::isfinite(v)) return not_finite(plan, ctx, r, "loss term '" + name + "' is " + std::to_string(v));
  if (!std::isfinite(r.loss))
    return not_finite(plan, ctx, r,
                      "the weighted sum of the losses is " + std::to_string(r.loss) + " (a loss weight is not finite?)");
  // FLOPs: a trained model's forward and backward, a third of it for a forward alone, at the
  // sequence length the model read.
  for (const auto& m : plan.models)
    if (active.count(m)) {
      const double per_token = std::dynamic_pointer_cast<Model>(node(m))->flops_per_token(graph.seq_len.at(m));
      r.flops += double(plan.tokens_per_step) * (plan.trained.count(m) ? per_token : per_token / 3.0);
    }
  r.lr = learning_rate(s.schedule_offset + ctx.stage_step, s.schedule_steps, s.lr, s.warmup, s.decay, s.min_lr);
  if (!optimizer_) return r;
  if (!std::isfinite(r.lr)) return not_finite(plan, ctx, r, "the learning rate is " + std::to_string(r.lr));

  // 4. Backward; with several ranks, each bucket's all-reduce (the mean over ranks) starts as
  // backward completes it (core/dist/buckets.h).
  SCION_CHECK(r.total.requires_grad(), "stage '", s.name, "': the losses do not depend on the trained models ",
              "(are the loss inputs connected to a trained model's outputs?)");
  if (plan.buckets) {
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
  std::vector<Tensor> grads, unclipped;  // the clipped groups' gradients; the others'
  for (const auto& p : plan.params)
    if (p.tensor.grad().defined()) {
      stepped.push_back(&p);
      (optimizer_->groups[p.group].clip ? grads : unclipped).push_back(p.tensor.grad());
    }

  // 6. The global norm of the groups inside clipping (the logged norm is theirs) and the clip
  // factor, which the optimizer applies (step 7).
  r.grad_norm = ops::global_norm(grads);
  if (!std::isfinite(r.grad_norm) || (!unclipped.empty() && !std::isfinite(ops::global_norm(unclipped)))) {
    std::string first = "?";
    for (size_t i = 0; i < stepped.size(); ++i)
      if (!std::isfinite(ops::global_norm({stepped[i]->tensor.grad()}))) {
        first = stepped[i]->name;
        break;
      }
    return not_finite(plan, ctx, r,
                      "the gradient norm is " + std::to_string(r.grad_norm) + ", first in parameter '" + first + "'");
  }

  // 7. The optimizer, group by group, with the clip factor.
  step_optimizer(plan, stepped, r.lr, ctx, s.clip > 0 ? ops::clip_factor(r.grad_norm, float(s.clip)) : 1.f);
  for (const auto& p : plan.params) {
    Tensor t = p.tensor;
    t.zero_grad();
  }
  // 8. The nodes' end_step hooks (clamp log alpha, advance a schedule).
  for (const NodeSpec* n : plan.run_nodes) node(n->name)->end_step(ctx);
  return r;
}

// ---- what a run leaves ------------------------------------------------------------------------------
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
  dir_->log(line);
  const double eta = double(s.steps - stage_step) / std::max(rate, 1e-9);
  if (tty_)
    std::printf("\r[%s] step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s   ", s.name.c_str(),
                (long long)stage_step, (long long)s.steps, loss, r.lr, tps, fmt_eta(eta).c_str());
  else
    std::printf("[%s] step %lld/%lld loss %.4f lr %.3e tokens/s %.0f\n", s.name.c_str(), (long long)stage_step,
                (long long)s.steps, loss, r.lr, tps);
  std::fflush(stdout);
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
  // What the nodes report of themselves after hearing them (a mixture's domain weights).
  for (const NodeSpec* n : plan.run_nodes)
    if (auto r = std::dynamic_pointer_cast<ReportsValues>(node(n->name)))
      for (const auto& [k, v] : r->reported_values()) {
        all[n->name + "/" + k] = v;
        line[n->name + "/" + k] = Json(v);
      }
  if (opt_.comm->is_writer()) {
    dir_->log(line);
    if (!tty_) {
      std::printf("[%s] eval step %lld:", s.name.c_str(), (long long)step_);
      for (const auto& [k, v] : all) std::printf(" %s=%.4g", k.c_str(), v);
      std::printf("\n");
    }
  }
}

void Executor::save_checkpoint(size_t si, int64_t stage_step) {
  // The optimizer state, all of it on rank 0 (with ZeRO every rank takes part in the gather).
  nn::NamedTensors opt_state;
  if (optimizer_) opt_state = zero_ ? zero_->gather_state(optimizer_->state_tensors()) : optimizer_->state_tensors();
  if (!opt_.comm->is_writer()) return;
  if (optimizer_) check_parameters_finite(g_, *this, step_);
  checkpoint::Contents c;
  c.counters = {step_, int64_t(si), stage_step, tokens_, flops_, elapsed_before_ + now_s(start_), stage_updates_};
  c.nodes = Json(Json::object_t{});
  for (const NodeSpec& n : g_.nodes)
    if (Json st = node(n.name)->state(); !st.is_null()) c.nodes[n.name] = st;
  c.files = node_files(g_, *this);
  if (optimizer_) c.files.push_back({::scion::checkpoint::kOptimizerFile, opt_state, {}});
  checkpoint::write(fs::path(out_dir_) / "checkpoints", c);
}

}  // namespace scion::runtime
