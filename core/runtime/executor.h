// Runs a validated graph: makes the nodes, then for each stage applies its ops and trains:
// per step the node DAG runs in a oneTBB flow graph (independent nodes concurrently), the
// weighted losses are summed and back-propagated, gradients are averaged across ranks,
// clipped, and the optimizer steps; metrics, evaluation and checkpoints follow.
#pragma once
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/communicator.h"
#include "runtime/graph.h"

namespace scion::runtime {

struct RunOptions {
  std::string out_dir;    // default runs/<graph name>
  bool resume = false;
  std::string device;     // overrides the graph's [run] device when set
  int threads = -1;       // overrides [run] threads when >= 0
  int progress = -1;      // 1 live progress line, 0 plain log lines, -1 decide by isatty
  std::shared_ptr<Communicator> comm;
};

class Executor : public NodeResolver {
 public:
  Executor(GraphSpec graph, const PluginRegistry& registry, RunOptions opt);
  ~Executor() override;
  void run();
  // Makes the nodes and runs the named evaluators once, without training and without
  // writing anything; results by "evaluator/metric".
  std::map<std::string, double> evaluate_only(const std::vector<std::string>& evaluators);
  std::shared_ptr<Plugin> node(const std::string& name) const override;
  const std::string& out_dir() const { return out_dir_; }

 private:
  struct Live;
  void make_nodes();
  void apply_ops(size_t stage, const StepContext& ctx);
  void carry_optimizer_state(const Op& op, const std::string& target, Model& model,
                             const std::map<std::string, Shape>& before);
  void train_stage(size_t stage_index);
  void evaluate(const StageSpec& s, const StepContext& ctx);
  void save_checkpoint(size_t stage_index, int64_t stage_step);
  bool load_checkpoint(size_t& stage_index, int64_t& stage_step);
  void log_metrics(const Json& line);

  GraphSpec g_;
  const PluginRegistry& reg_;
  RunOptions opt_;
  std::string out_dir_;
  Device device_;
  std::map<std::string, std::shared_ptr<Plugin>> nodes_;
  std::shared_ptr<Optimizer> optimizer_;
  int64_t step_ = 0;           // optimizer updates in the whole run
  int64_t resume_stage_step_ = 0;
  bool resumed_ = false;  // the next stage continues from a checkpoint
  double tokens_ = 0, flops_ = 0;
  double elapsed_before_ = 0;  // seconds spent before a resume
  std::chrono::steady_clock::time_point start_;
  std::FILE* metrics_ = nullptr;
  bool tty_ = false;
};

}  // namespace scion::runtime
