// The optimizer of a stage: one optimizer instance per parameter group (a group may use
// another plugin or other settings), the stage's default group last. The state of every
// instance is keyed "<node>.<param>.<what>" as one optimizer's would be, so a checkpoint holds
// one optimizer.safetensors and each key goes back to the group that selects its parameter.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "scion/plugin.h"

namespace scion::runtime {

class OptimizerSet {
 public:
  struct Group {
    std::shared_ptr<Optimizer> opt;
    std::vector<std::string> nodes;  // empty: every trained node
    std::string match = "*";
    double lr = 0;  // peak learning rate
    int sign = 1;
    bool clip = true;         // inside the stage's gradient clipping (and its logged norm)
    bool lr_schedule = true;  // the stage's warmup and decay scale the group's lr
    bool selects(const std::string& param) const;
  };
  std::vector<Group> groups;  // the first that selects a parameter wins; the last selects all

  using MakeOptimizer = std::function<std::shared_ptr<Optimizer>(const std::string& plugin, const Json& params)>;
  // The stage's groups, each with a fresh optimizer.
  static std::unique_ptr<OptimizerSet> make(const StageSpec& s, const MakeOptimizer& make);
  // The stage's groups without their optimizers: enough to say which parameter is in which.
  static OptimizerSet selection(const StageSpec& s);
  // Continuing into a stage configured alike (same_configuration): its learning rates.
  void take_learning_rates(const StageSpec& s);

  size_t group_of(const std::string& param) const;
  nn::NamedTensors state_tensors() const;
  void load_state_tensors(const nn::NamedTensors& state);
  // Every state tensor back on the CPU (model surgery reads host memory).
  void move_state_to_host();
  // After an op reshaped `model` (node `target`; `before`: its parameters' shapes before the
  // op, by "<node>.<param>"): each parameter continues the state of the parameter the op names
  // as its source (optimizer_carry.cpp).
  void carry_across_op(const Op& op, const std::string& target, Model& model,
                       const std::map<std::string, Shape>& before);
};

// Whether the next stage continues this stage's optimizer: the same plugin, settings and
// groups; the learning-rate schedule does not count (each stage has its own).
bool same_optimizer_configuration(const StageSpec& a, const StageSpec& b);

}  // namespace scion::runtime
