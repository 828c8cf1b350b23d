#include "runtime/optimizer_set.h"

#include <fnmatch.h>

#include <algorithm>

namespace scion::runtime {

bool OptimizerSet::Group::selects(const std::string& param) const {
  const size_t dot = param.find('.');
  const std::string node = param.substr(0, dot), name = dot == std::string::npos ? "" : param.substr(dot + 1);
  if (!nodes.empty() && std::find(nodes.begin(), nodes.end(), node) == nodes.end()) return false;
  return ::fnmatch(match.c_str(), name.c_str(), 0) == 0;
}

std::unique_ptr<OptimizerSet> OptimizerSet::make(const StageSpec& s, const MakeOptimizer& make) {
  auto set = std::make_unique<OptimizerSet>();
  for (const ParamGroupSpec& g : s.param_groups)
    set->groups.push_back({make(g.optimizer, g.optimizer_params), g.nodes, g.match, g.lr, g.sign, g.clip, g.lr_schedule});
  set->groups.push_back({make(s.optimizer, s.optimizer_params), {}, "*", s.lr, 1, true, true});
  return set;
}

OptimizerSet OptimizerSet::selection(const StageSpec& s) {
  OptimizerSet set;
  for (const ParamGroupSpec& g : s.param_groups)
    set.groups.push_back({nullptr, g.nodes, g.match, g.lr, g.sign, g.clip, g.lr_schedule});
  set.groups.push_back({nullptr, {}, "*", s.lr, 1, true, true});
  return set;
}

void OptimizerSet::take_learning_rates(const StageSpec& s) {
  for (size_t i = 0; i < s.param_groups.size(); ++i) groups[i].lr = s.param_groups[i].lr;
  groups.back().lr = s.lr;
}

size_t OptimizerSet::group_of(const std::string& param) const {
  for (size_t i = 0; i + 1 < groups.size(); ++i)
    if (groups[i].selects(param)) return i;
  return groups.size() - 1;
}

nn::NamedTensors OptimizerSet::state_tensors() const {
  nn::NamedTensors all;
  for (const Group& g : groups)
    for (auto& st : g.opt->state_tensors()) all.push_back(std::move(st));
  return all;
}

void OptimizerSet::load_state_tensors(const nn::NamedTensors& state) {
  std::vector<nn::NamedTensors> per(groups.size());
  for (const auto& [k, t] : state) per[group_of(k.substr(0, k.rfind('.')))].emplace_back(k, t);
  for (size_t i = 0; i < groups.size(); ++i)
    if (!per[i].empty()) groups[i].opt->load_state_tensors(per[i]);
}

void OptimizerSet::move_state_to_host() {
  nn::NamedTensors host;
  for (const auto& [key, t] : state_tensors()) host.emplace_back(key, t.to(Device::cpu()));
  load_state_tensors(host);
}

namespace {
std::string optimizer_identity(const StageSpec& st) {
  auto own = [](Json j) {
    if (j.is_object())
      for (const char* k : {"lr", "warmup", "decay", "min_lr", "clip", "schedule"}) j.erase(k);
    return json_dump(j);
  };
  std::string id = st.optimizer + " " + own(st.optimizer_params);
  for (const ParamGroupSpec& g : st.param_groups) {
    id += " | " + g.optimizer + " " + own(g.optimizer_params) + " " + g.match + " " + std::to_string(g.sign) +
          (g.clip ? "" : " noclip") + (g.lr_schedule ? "" : " constant");
    for (const auto& n : g.nodes) id += " " + n;
  }
  return id;
}
}  // namespace

bool same_optimizer_configuration(const StageSpec& a, const StageSpec& b) {
  return optimizer_identity(a) == optimizer_identity(b);
}

}  // namespace scion::runtime
