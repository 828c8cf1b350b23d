#include "runtime/executor.h"

#include <tbb/flow_graph.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/schedule.h"
#include "scion/ops.h"
#include "scion/random.h"
#include "scion/checkpoint.h"
#include "scion/files.h"
#include "scion/safetensors.h"
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

Executor::Executor(GraphSpec graph, const PluginRegistry& registry, RunOptions opt)
    : g_(std::move(graph)), reg_(registry), opt_(std::move(opt)) {
  if (!opt_.comm) opt_.comm = std::make_shared<SingleProcess>();
  out_dir_ = opt_.out_dir.empty() ? "runs/" + g_.name : opt_.out_dir;
  std::string dev = opt_.device.empty() ? g_.device : opt_.device;
  if (dev == "auto") dev = cuda_available() ? "cuda" : "cpu";
  device_ = Device::parse(dev);
  SCION_CHECK(device_.is_cpu() || cuda_available(), "device ", device_.str(),
              " requested but no CUDA device is available (use --device cpu)");
  SCION_CHECK(device_.is_cpu(), "device ", device_.str(),
              ": training on CUDA needs the CUDA kernels of every op, which this build does not have yet");
  set_num_threads(opt_.threads >= 0 ? opt_.threads : g_.threads);
  tty_ = opt_.progress == 1 || (opt_.progress < 0 && ::isatty(STDOUT_FILENO));
}

Executor::~Executor() {
  if (metrics_) std::fclose(metrics_);
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
  Json::Array stage_names;  // for nodes that act per stage (data.text's stage_files)
  for (const StageSpec& s : g_.stages) stage_names.push_back(Json(s.name));
  for (const NodeSpec* np : order) {
    const NodeSpec& n = *np;
    Json params = n.params;
    for (const auto& [k, target] : n.refs) params[k] = Json(target);
    params["frozen"] = Json(n.frozen);
    params["__seed"] = Json(int64_t(derive_seed(g_.seed, std::hash<std::string>{}(n.name)) >> 11));
    params["__rank"] = Json(opt_.comm->rank());
    params["__world"] = Json(opt_.comm->world());
    params["__stages"] = Json(stage_names);
    try {
      nodes_[n.name] = reg_.create(n.plugin, Params(params, n.name), *this);
    } catch (const std::exception& e) {
      throw Error(n.pos.file + ":" + std::to_string(n.pos.line) + ":" + std::to_string(n.pos.column) + ": node '" +
                  n.name + "' (" + n.plugin + "): " + e.what());
    }
  }
}

void Executor::apply_ops(size_t si, const StepContext& ctx) {
  // Each op of the stage draws its own random stream (the first keeps the stage's seed).
  const uint64_t stage_seed = derive_seed(g_.seed, 0x0b5 + si);
  uint64_t k = 0;
  for (const OpSpec& op : g_.stages[si].ops) {
    Json params = op.params;
    params["target"] = Json(op.target);
    params["__seed"] = Json(int64_t((k == 0 ? stage_seed : derive_seed(stage_seed, k)) >> 11));
    ++k;
    auto inst = std::dynamic_pointer_cast<Op>(reg_.create(op.plugin, Params(params, op.plugin), *this));
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

void Executor::log_metrics(const Json& line) {
  if (!metrics_) return;
  const std::string s = line.dump();
  std::fprintf(metrics_, "%s\n", s.c_str());
  std::fflush(metrics_);
}

void Executor::evaluate(const StageSpec& s, const StepContext& ctx) {
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
  for (const auto& [name, w] : s.losses) std::dynamic_pointer_cast<Loss>(node(name))->observe(all);
  if (opt_.comm->is_writer()) {
    log_metrics(line);
    if (!tty_) {
      std::printf("[%s] eval step %lld:", s.name.c_str(), (long long)step_);
      for (const auto& [k, v] : all) std::printf(" %s=%.4g", k.c_str(), v);
      std::printf("\n");
    }
  }
}

// ---- checkpoints --------------------------------------------------------------------------
// runs/<name>/checkpoints/step_<N>/{<model>.safetensors, optimizer.safetensors, state.json},
// written into a temporary folder and renamed; latest.json (atomic) names the newest one.
void Executor::save_checkpoint(size_t si, int64_t stage_step) {
  if (!opt_.comm->is_writer()) return;
  const fs::path root = fs::path(out_dir_) / "checkpoints";
  const std::string name = "step_" + std::to_string(step_);
  const fs::path tmp = root / (name + ".tmp"), dst = root / name;
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  Json state;
  state[checkpoint::kStep] = Json(step_);
  state[checkpoint::kStageIndex] = Json(int64_t(si));
  state[checkpoint::kStageStep] = Json(stage_step);
  state[checkpoint::kTokens] = Json(tokens_);
  state[checkpoint::kFlops] = Json(flops_);
  state[checkpoint::kElapsed] = Json(elapsed_before_ + now_s(start_));
  Json nodes_state;
  for (const NodeSpec& n : g_.nodes) {
    auto p = node(n.name);
    if (auto m = std::dynamic_pointer_cast<Model>(p)) {
      safetensors::save((tmp / (n.name + ".safetensors")).string(), m->module().state_dict(),
                        {{checkpoint::kPluginKey, n.plugin}, {checkpoint::kConfigKey, m->config().dump()}});
    }
    Json st = p->state();
    if (!st.is_null()) nodes_state[n.name] = st;
  }
  state[checkpoint::kNodes] = nodes_state;
  if (optimizer_) safetensors::save((tmp / checkpoint::kOptimizerFile).string(), optimizer_->state_tensors());
  files::write_atomic((tmp / checkpoint::kStateFile).string(), state.dump() + "\n");
  fs::remove_all(dst);
  fs::rename(tmp, dst);
  Json latest;
  latest[checkpoint::kLatestCheckpoint] = Json(name);
  latest[checkpoint::kLatestStep] = Json(step_);
  files::write_atomic((root / checkpoint::kLatestFile).string(), latest.dump() + "\n");
  // Keep the checkpoint just written and the newest one before it. Anything else goes: older
  // ones, leftovers of a killed write (step_N.tmp), and a later-numbered one that a kill
  // left unnamed by latest.json (an abandoned timeline: keeping it by number would make the
  // checkpoint just written the one removed).
  int64_t previous = -1;
  for (const auto& d : fs::directory_iterator(root)) {
    const std::string fn = d.path().filename().string();
    if (d.is_directory() && fn.rfind("step_", 0) == 0 && fn.find(".tmp") == std::string::npos) {
      const int64_t k = std::stoll(fn.substr(5));
      if (k < step_) previous = std::max(previous, k);
    }
  }
  std::vector<fs::path> stale;
  for (const auto& d : fs::directory_iterator(root)) {
    const std::string fn = d.path().filename().string();
    if (!d.is_directory() || fn.rfind("step_", 0) != 0 || fn == name) continue;
    if (fn.find(".tmp") == std::string::npos && std::stoll(fn.substr(5)) == previous) continue;
    stale.push_back(d.path());
  }
  for (const auto& d : stale) fs::remove_all(d);
}

bool Executor::load_checkpoint(size_t& si, int64_t& stage_step) {
  const fs::path root = fs::path(out_dir_) / "checkpoints";
  if (!fs::exists(root / checkpoint::kLatestFile)) return false;
  std::ifstream lf(root / checkpoint::kLatestFile);
  const std::string ltext((std::istreambuf_iterator<char>(lf)), {});
  const Json latest = Json::parse(ltext, (root / checkpoint::kLatestFile).string());
  const fs::path dir = root / latest.at(checkpoint::kLatestCheckpoint).as_string();
  std::ifstream sf(dir / checkpoint::kStateFile);
  SCION_CHECK(sf.good(), "resume: '", (dir / checkpoint::kStateFile).string(), "' is missing");
  const std::string stext((std::istreambuf_iterator<char>(sf)), {});
  const Json state = Json::parse(stext, (dir / checkpoint::kStateFile).string());
  step_ = state.at(checkpoint::kStep).as_int();
  si = size_t(state.at(checkpoint::kStageIndex).as_int());
  stage_step = state.at(checkpoint::kStageStep).as_int();
  tokens_ = state.at(checkpoint::kTokens).as_number();
  flops_ = state.at(checkpoint::kFlops).as_number();
  elapsed_before_ = state.at(checkpoint::kElapsed).as_number();
  // Re-apply the ops of every stage begun so far so that the models have the shapes the
  // checkpoint was written with; the weights are then overwritten.
  // Ops see the run's update count at their stage's start, as in the uninterrupted run.
  StepContext ctx;
  ctx.seed = g_.seed;
  ctx.step = 0;
  for (size_t k = 0; k <= si && k < g_.stages.size(); ++k) {
    if (k == si && stage_step == 0) break;
    ctx.stage = g_.stages[k].name;
    apply_ops(k, ctx);
    ctx.step += g_.stages[k].steps;
  }
  for (const NodeSpec& n : g_.nodes) {
    auto p = node(n.name);
    if (auto m = std::dynamic_pointer_cast<Model>(p)) {
      auto loaded = safetensors::load((dir / (n.name + ".safetensors")).string());
      m->module().load_state_dict(loaded.tensors);
    }
    if (state.at(checkpoint::kNodes).contains(n.name)) p->restore(state.at(checkpoint::kNodes).at(n.name));
  }
  return true;
}

// ---- training -----------------------------------------------------------------------------
void Executor::train_stage(size_t si) {
  const StageSpec& s = g_.stages[si];
  StepContext ctx;
  ctx.stage = s.name;
  ctx.seed = g_.seed;
  ctx.device = device_;
  ctx.rank = opt_.comm->rank();
  ctx.world = opt_.comm->world();

  // The nodes this stage runs each step: its losses and everything upstream of them.
  std::set<std::string> needed;
  std::function<void(const std::string&)> need = [&](const std::string& n) {
    if (!needed.insert(n).second) return;
    for (const auto& [port, src] : g_.node(n)->inputs) need(src.substr(0, src.find('.')));
  };
  for (const auto& [l, w] : s.losses) need(l);
  std::vector<const NodeSpec*> run_nodes;
  for (const NodeSpec& n : g_.nodes)
    if (needed.count(n.name)) run_nodes.push_back(&n);
  for (const NodeSpec* n : run_nodes)
    if (n->info->entry.kind == PluginKind::data && !s.data.empty() &&
        std::find(s.data.begin(), s.data.end(), n->name) == s.data.end())
      throw Error("stage '" + s.name + "': loss inputs come from data node '" + n->name +
                  "', which is not in the stage's data list");
  const std::set<std::string> trained(s.train.begin(), s.train.end());

  // Parameters trained in this stage, by "node.param" name.
  auto trained_params = [&] {
    nn::NamedTensors out;
    for (const auto& m : s.train)
      for (auto& [k, t] : std::dynamic_pointer_cast<Model>(node(m))->module().named_parameters())
        out.emplace_back(m + "." + k, t);
    return out;
  };
  // Optimizer for this stage (its moments live in the checkpoint).
  // The optimizer carries over from the previous stage when its plugin and its own
  // parameters are the same (the learning-rate schedule may differ): moments of tensors that
  // kept their shape continue, resized (grown) tensors restart. Otherwise a fresh one.
  auto own_params = [](const StageSpec& st) {
    Json j = st.optimizer_params;
    if (j.is_object())
      for (const char* k : {"lr", "warmup", "decay", "min_lr", "clip"}) j.as_object().erase(k);
    return j.dump();
  };
  const bool same_config = si > 0 && !s.train.empty() && g_.stages[si - 1].optimizer == s.optimizer &&
                           own_params(g_.stages[si - 1]) == own_params(s);
  const bool carry = optimizer_ && same_config;
  if (!carry) {
    optimizer_.reset();
    if (!s.train.empty()) {
      Json params = s.optimizer_params;
      optimizer_ = std::dynamic_pointer_cast<Optimizer>(reg_.create(s.optimizer, Params(params, s.optimizer), *this));
    }
  }
  for (const auto& m : s.train) std::dynamic_pointer_cast<Model>(node(m))->module().set_training(true);

  // The nodes that run at one step: the stage's losses and trained models and whatever they
  // read, except through ports a loss declares idle at this step (a teacher whose α is 0).
  // Data nodes always advance, so that the stream does not depend on what was skipped.
  std::set<std::string> active;
  auto find_active = [&](const StepContext& c) {
    active.clear();
    std::function<void(const std::string&)> visit = [&](const std::string& n) {
      if (!active.insert(n).second) return;
      const NodeSpec* spec = g_.node(n);
      std::set<std::string> idle;
      if (spec->info->entry.kind == PluginKind::loss)
        for (const auto& port : std::dynamic_pointer_cast<Loss>(node(n))->idle_inputs(c)) idle.insert(port);
      for (const auto& [port, src] : spec->inputs)
        if (!idle.count(port)) visit(src.substr(0, src.find('.')));
    };
    for (const auto& [l, w] : s.losses) visit(l);
    for (const auto& m : s.train) visit(m);
    for (const NodeSpec* n : run_nodes)
      if (n->info->entry.kind == PluginKind::data) active.insert(n->name);
  };

  // One slot of outputs per node; the flow graph fills them in dependency order.
  std::map<std::string, TensorMap> outputs;
  std::map<std::string, Tensor> loss_values;
  std::map<std::string, std::map<std::string, double>> loss_metrics;
  tbb::flow::graph fg;
  tbb::flow::broadcast_node<tbb::flow::continue_msg> start(fg);
  std::map<std::string, std::unique_ptr<tbb::flow::continue_node<tbb::flow::continue_msg>>> fnodes;
  for (const NodeSpec* n : run_nodes) {
    outputs[n->name];
    loss_values[n->name];
    loss_metrics[n->name];
  }
  for (const NodeSpec* n : run_nodes) {
    const NodeSpec& spec = *n;
    auto body = [this, &spec, &outputs, &loss_values, &loss_metrics, &ctx, &trained,
                 &active](const tbb::flow::continue_msg&) {
      if (!active.count(spec.name)) {  // skipped at this step: nothing reads it
        outputs.at(spec.name).clear();
        return tbb::flow::continue_msg();
      }
      TensorMap in;
      for (const auto& [port, src] : spec.inputs) {
        const std::string sn = src.substr(0, src.find('.')), sp = src.substr(src.find('.') + 1);
        if (!active.count(sn)) continue;  // an idle port of a loss
        auto it = outputs.at(sn).find(sp);
        if (it == outputs.at(sn).end())
          throw Error("node '" + sn + "' produced no output '" + sp + "' for node '" + spec.name + "'");
        in[port] = it->second;
      }
      auto p = node(spec.name);
      switch (spec.info->entry.kind) {
        case PluginKind::data: outputs.at(spec.name) = std::dynamic_pointer_cast<DataSource>(p)->next(ctx); break;
        case PluginKind::model: {
          auto m = std::dynamic_pointer_cast<Model>(p);
          if (trained.count(spec.name)) {
            outputs.at(spec.name) = m->forward(in, ctx);
          } else {  // a teacher or a model not trained in this stage: no tape, no dropout
            NoGradGuard ng;
            StepContext eval_ctx = ctx;
            eval_ctx.training = false;
            outputs.at(spec.name) = m->forward(in, eval_ctx);
          }
          break;
        }
        case PluginKind::loss: {
          auto& mets = loss_metrics.at(spec.name);
          mets.clear();
          loss_values.at(spec.name) = std::dynamic_pointer_cast<Loss>(p)->compute(in, ctx, mets);
          break;
        }
        default: break;
      }
      return tbb::flow::continue_msg();
    };
    fnodes[spec.name] = std::make_unique<tbb::flow::continue_node<tbb::flow::continue_msg>>(fg, body);
  }
  for (const NodeSpec* n : run_nodes) {
    std::set<std::string> preds;
    for (const auto& [port, src] : n->inputs) preds.insert(src.substr(0, src.find('.')));
    if (preds.empty()) tbb::flow::make_edge(start, *fnodes[n->name]);
    for (const auto& pr : preds) tbb::flow::make_edge(*fnodes.at(pr), *fnodes[n->name]);
  }

  // FLOPs per step: 6N per token for trained models, 2N (a forward) for the others.
  int64_t tokens_per_step = 0, seq_len = 1;
  for (const NodeSpec* n : run_nodes)
    if (n->info->entry.kind == PluginKind::data) {
      auto d = std::dynamic_pointer_cast<DataSource>(node(n->name));
      tokens_per_step += d->tokens_per_batch();
    }
  (void)seq_len;

  int64_t stage_step = resume_stage_step_;
  resume_stage_step_ = 0;
  const bool resumed_here = resumed_;
  resumed_ = false;
  // Resuming: the checkpoint holds the moments this stage continues from (loaded before the
  // stage's ops so that a growth op maps them as in the uninterrupted run).
  if (optimizer_ && resumed_here && (stage_step > 0 || same_config)) {
    const fs::path root = fs::path(out_dir_) / "checkpoints";
    std::ifstream lf(root / checkpoint::kLatestFile);
    const std::string ltext((std::istreambuf_iterator<char>(lf)), {});
    const fs::path dir = root / Json::parse(ltext).at(checkpoint::kLatestCheckpoint).as_string();
    if (fs::exists(dir / checkpoint::kOptimizerFile))
      optimizer_->load_state_tensors(safetensors::load((dir / checkpoint::kOptimizerFile).string()).tensors);
  }
  if (stage_step == 0) {
    ctx.step = step_;
    apply_ops(si, ctx);
  }
  std::map<std::string, double> model_flops;  // per step, of each model that runs
  for (const NodeSpec* n : run_nodes)
    if (n->info->entry.kind == PluginKind::model) {
      auto m = std::dynamic_pointer_cast<Model>(node(n->name));
      const double per_token = m->flops_per_token(1);
      model_flops[n->name] = double(tokens_per_step) * (trained.count(n->name) ? per_token : per_token / 3.0);
    }

  const auto stage_t0 = std::chrono::steady_clock::now();
  const int64_t first = stage_step;
  while (stage_step < s.steps) {
    const auto t0 = std::chrono::steady_clock::now();
    ctx.step = step_;
    ctx.stage_step = stage_step;
    ctx.training = true;
    find_active(ctx);
    double flops_per_step = 0;
    for (const auto& [name, f] : model_flops)
      if (active.count(name)) flops_per_step += f;
    start.try_put(tbb::flow::continue_msg());
    fg.wait_for_all();
    Json line;
    Tensor total;
    std::map<std::string, double> terms;
    for (const auto& [name, w] : s.losses) {
      Tensor l = loss_values.at(name);
      SCION_CHECK(l.defined() && l.numel() == 1, "loss node '", name, "' did not produce a scalar");
      terms[name] = l.item();
      Tensor wl = w == 1.0 ? l : ops::mul_scalar(l, float(w));
      total = total.defined() ? ops::add(total, wl) : wl;
      for (const auto& [k, v] : loss_metrics.at(name)) line[name + "/" + k] = Json(v);
    }
    const double lr = learning_rate(stage_step, s.steps, s.lr, s.warmup, s.decay, s.min_lr);
    double grad_norm = 0;
    if (optimizer_) {
      SCION_CHECK(total.requires_grad(), "stage '", s.name, "': the losses do not depend on the trained models ",
                  "(are the loss inputs connected to a trained model's outputs?)");
      total.backward();
      nn::NamedTensors params = trained_params();
      std::vector<Tensor> grads;
      for (auto& [k, p] : params) {
        if (!p.grad().defined()) p.set_grad(Tensor::zeros(p.shape()));
        grads.push_back(p.grad());
      }
      opt_.comm->allreduce_mean(grads);  // the data-parallel seam
      grad_norm = s.clip > 0 ? ops::clip_grad_norm(grads, float(s.clip)) : ops::global_norm(grads);
      optimizer_->step(params, lr, ctx);
      for (auto& [k, p] : params) p.zero_grad();
    }
    ++step_;
    ++stage_step;
    tokens_ += double(tokens_per_step * opt_.comm->world());
    flops_ += flops_per_step * opt_.comm->world();
    const double dt = now_s(t0);
    line["step"] = Json(step_);
    line["stage"] = Json(s.name);
    for (const auto& [k, v] : terms) line[k] = Json(v);  // each term under its node's name
    line["loss"] = Json(total.defined() ? double(total.item()) : 0.0);  // the weighted total
    line["lr"] = Json(lr);
    line["grad_norm"] = Json(grad_norm);
    line["tokens_per_s"] = Json(double(tokens_per_step * opt_.comm->world()) / dt);
    line["tokens"] = Json(tokens_);
    line["flops"] = Json(flops_);
    line["elapsed_s"] = Json(elapsed_before_ + now_s(start_));
    if (opt_.comm->is_writer() && (stage_step % s.log_every == 0 || stage_step == s.steps)) {
      log_metrics(line);
      const double rate = double(stage_step - first) / std::max(1e-9, now_s(stage_t0));
      const double eta = double(s.steps - stage_step) / std::max(rate, 1e-9);
      if (tty_)
        std::printf("\r[%s] step %lld/%lld  loss %.4f  lr %.2e  %.0f tok/s  ETA %s   ", s.name.c_str(),
                    (long long)stage_step, (long long)s.steps, line.at("loss").as_number(), lr,
                    line.at("tokens_per_s").as_number(), fmt_eta(eta).c_str());
      else
        std::printf("[%s] step %lld/%lld loss %.4f lr %.3e tokens/s %.0f\n", s.name.c_str(), (long long)stage_step,
                    (long long)s.steps, line.at("loss").as_number(), lr, line.at("tokens_per_s").as_number());
      std::fflush(stdout);
    }
    if (s.eval_every > 0 && (stage_step % s.eval_every == 0 || stage_step == s.steps)) {
      if (tty_) std::printf("\n");
      evaluate(s, ctx);
    }
    const bool last = stage_step == s.steps;
    if ((s.checkpoint_every > 0 && stage_step % s.checkpoint_every == 0) || last)
      save_checkpoint(last ? si + 1 : si, last ? 0 : stage_step);
  }
  if (tty_) std::printf("\n");
}

std::map<std::string, double> Executor::evaluate_only(const std::vector<std::string>& evaluators) {
  make_nodes();
  StepContext ctx;
  ctx.seed = g_.seed;
  ctx.training = false;
  ctx.device = device_;
  std::map<std::string, double> all;
  NoGradGuard ng;
  for (const auto& e : evaluators)
    for (const auto& [k, v] : std::dynamic_pointer_cast<Evaluator>(node(e))->evaluate(ctx)) all[e + "/" + k] = v;
  return all;
}

void Executor::run() {
  start_ = std::chrono::steady_clock::now();
  make_nodes();
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
        throw Error(p.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) + ": stage '" + s.name +
                    "' uses loss '" + name + "', which acts on the evaluation metric '" + metric +
                    "', but the stage does not evaluate with '" + ev + "' (hint: metrics are named <evaluator>/<key>; " +
                    "add eval = { every = N, evaluators = [\"" + ev + "\"] } to the stage)");
      }
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
    // A fresh run in a directory used before starts clean: checkpoints of the earlier run
    // would otherwise be resumed from, or outrank this run's in the retention above.
    if (!resumed_ && fs::exists(fs::path(out_dir_) / "checkpoints")) {
      if (!opt_.resume)
        std::printf("%s: removing the checkpoints of an earlier run (use --resume to continue it)\n", out_dir_.c_str());
      fs::remove_all(fs::path(out_dir_) / "checkpoints");
    }
    fs::create_directories(out_dir_);
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
          if (Json::parse(line).at("step").as_int() <= step_) keep.push_back(line);
        } catch (const Error&) {
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
  for (size_t si = first_stage; si < g_.stages.size(); ++si) {
    resume_stage_step_ = si == first_stage ? stage_step : 0;
    train_stage(si);
  }
  // Final weights of every model, next to the metrics, for `scion eval` and `scion generate`.
  if (opt_.comm->is_writer())
    for (const NodeSpec& n : g_.nodes)
      if (auto m = std::dynamic_pointer_cast<Model>(node(n.name)))
        safetensors::save((fs::path(out_dir_) / (n.name + ".safetensors")).string(), m->module().state_dict(),
                          {{checkpoint::kPluginKey, n.plugin}, {checkpoint::kConfigKey, m->config().dump()}});
}

}  // namespace scion::runtime
