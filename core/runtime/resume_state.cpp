#include "runtime/resume_state.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <utility>

#include "runtime/executor.h"
#include "runtime/stage_plan.h"
#include "scion/autograd.h"
#include "scion/checkpoint.h"
#include "scion/ops.h"

namespace scion::runtime {

namespace fs = std::filesystem;

std::vector<checkpoint::TensorFile> node_files(const GraphSpec& g, const NodeResolver& nodes) {
  std::vector<checkpoint::TensorFile> files;
  for (const NodeSpec& n : g.nodes) {
    auto p = nodes.node(n.name);
    if (auto m = std::dynamic_pointer_cast<Model>(p))
      files.push_back({n.name + ".safetensors", m->module().state_dict(),
                       {{::scion::checkpoint::kPluginKey, n.plugin},
                        {::scion::checkpoint::kConfigKey, json_dump(m->config())}}});
    else if (auto own = p->owned_parameters(); !own.empty())
      files.push_back({n.name + ".safetensors", own, {{::scion::checkpoint::kPluginKey, n.plugin}}});
  }
  return files;
}

void check_parameters_finite(const GraphSpec& g, const NodeResolver& nodes, int64_t step) {
  for (const NodeSpec& n : g.nodes)
    for (const auto& [name, t] : parameters_of(nodes, n.name))
      if (!std::isfinite(ops::global_norm({t})))
        throw NonFiniteError("after step " + std::to_string(step) + ", parameter '" + n.name + "." + name +
                             "' is not finite; no checkpoint of this state is written (hint: lower the learning "
                             "rate or clip gradients)");
}

std::optional<ResumeState> ResumeState::find(const std::string& out_dir, const GraphSpec& g) {
  auto found = checkpoint::read_latest(fs::path(out_dir) / "checkpoints");
  if (!found) return std::nullopt;
  const auto& c = found->counters;
  SCION_CHECK(c.stage_index <= int64_t(g.stages.size()) &&
                  (c.stage_index == int64_t(g.stages.size()) ? c.stage_step == 0
                                                             : c.stage_step < g.stages[size_t(c.stage_index)].steps),
              "resume: '", found->dir.string(), "/state.json' is at stage ", c.stage_index, ", update ", c.stage_step,
              ", which this graph (", g.stages.size(),
              " stages) does not have (hint: resume with the graph the run was started with)");
  ResumeState r(std::move(*found));
  r.continue_grown_stage(g);
  return r;
}

void ResumeState::continue_grown_stage(const GraphSpec& g) {
  checkpoint::Counters& c = found_.counters;
  if (c.stage_step != 0 || c.stage_index == 0) return;  // mid-stage: it trains to the graph's total anyway
  const size_t next = size_t(c.stage_index), last = next - 1;
  // What the ended stages made: recorded; in a checkpoint from before that, exact only when one
  // stage has ended (all of the run's updates are its).
  std::vector<int64_t> made = c.stage_updates;
  if (made.size() < next && next == 1) made = {c.step};
  const std::string at = found_.dir.string();
  if (made.size() < next) {
    int64_t planned = 0;
    for (size_t k = 0; k < next; ++k) planned += g.stages[k].steps;
    SCION_CHECK(c.step >= planned, "resume: '", at, "' was written when stage '", g.stages[last].name, "' ended, after ",
                c.step, " updates in all, but this graph gives the stages up to it ", planned,
                ", and the checkpoint does not record which stage made how many (it is older than that), so no stage "
                "can be trained on (hint: train more in a new [[stages]] entry and resume, or run without --resume "
                "to start afresh)");
    return;
  }
  for (size_t k = 0; k < last; ++k)
    SCION_CHECK(g.stages[k].steps <= made[k], "resume: stage '", g.stages[k].name, "' ended after ", made[k],
                " updates (", at, "), but this graph gives it ", g.stages[k].steps,
                ": a stage is trained on only when it is the last one that ended, so the extra updates would never "
                "be trained (hint: train more in a new [[stages]] entry and resume, or run without --resume to start "
                "afresh)");
  if (g.stages[last].steps <= made[last]) return;
  ended_after_ = made[last];
  c.stage_index = int64_t(last);
  c.stage_step = made[last];
}

nn::NamedTensors ResumeState::optimizer_state(const std::string& stage) const {
  const fs::path f = found_.dir / ::scion::checkpoint::kOptimizerFile;
  const bool held = found_.manifest ? found_.has(::scion::checkpoint::kOptimizerFile) : fs::exists(f);
  SCION_CHECK(held, "resume: '", f.string(), "' is missing: stage '", stage,
              "' continues the optimizer state saved with the checkpoint (hint: restore the file, or resume from "
              "an earlier checkpoint folder)");
  return safetensors::load(f.string()).tensors;
}

void ResumeState::check_optimizer_keys(const std::vector<std::string>& keys, const std::set<std::string>& trained,
                                       const std::string& stage) const {
  for (const auto& k : keys) {
    const std::string param = k.substr(0, k.rfind('.'));
    SCION_CHECK(trained.count(param), "resume: '", dir(), "/", ::scion::checkpoint::kOptimizerFile, "' holds state '",
                k, "' for parameter '", param, "', which stage '", stage,
                "' does not train: the file belongs to another graph or run");
  }
}

void ResumeState::restore_owned_parameters(const GraphSpec& g, const NodeResolver& nodes) const {
  for (const NodeSpec& n : g.nodes) {
    auto p = nodes.node(n.name);
    if (std::dynamic_pointer_cast<Model>(p)) continue;
    nn::NamedTensors own = p->owned_parameters();
    if (own.empty()) continue;
    const auto loaded = found_.load(n.name + ".safetensors").tensors;
    std::map<std::string, Tensor> by_name(loaded.begin(), loaded.end());
    for (const auto& [k, t] : own) {
      auto it = by_name.find(k);
      SCION_CHECK(it != by_name.end(), "resume: node '", n.name, "' owns parameter '", k,
                  "', which the checkpoint does not have");
      SCION_CHECK(it->second.shape() == t.shape(), "resume: parameter '", n.name, ".", k, "' is ", it->second.desc(),
                  " in the checkpoint but ", t.desc(), " in the node");
    }
    NoGradGuard ng;
    for (auto& [k, t] : own) {
      Tensor dst = t;
      dst.copy_(by_name.at(k));
    }
  }
}

void ResumeState::restore_models_and_state(const GraphSpec& g, const NodeResolver& nodes) const {
  for (const NodeSpec& n : g.nodes) {
    auto p = nodes.node(n.name);
    if (auto m = std::dynamic_pointer_cast<Model>(p))
      m->module().load_state_dict(found_.load(n.name + ".safetensors").tensors);
    if (found_.nodes.contains(n.name)) p->restore(found_.nodes.at(n.name));
  }
}

}  // namespace scion::runtime
