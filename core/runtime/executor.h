// Runs a validated graph: makes the nodes, then for each stage plans it once (what trains,
// what runs, which parameter group each parameter is in), applies its ops and trains. One
// step (train_step) reads top to bottom: data -> forward -> losses (the node DAG in a oneTBB
// flow graph, independent nodes concurrently) -> backward -> gradient all-reduce -> clip ->
// optimizer, group by group. Metrics, evaluation and checkpoints (checkpoint.h) follow.
#pragma once
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/communicator.h"
#include "graph/graph.h"
#include "scion/precision.h"

namespace scion::runtime {

class ZeroShards;

// How a run ends, as `scion run` exits (docs/runtime.md, "Exit codes"): 0 done, 1 an error,
// 2 a usage error, 3 an invalid graph, and these three:
// A step's loss or gradient was NaN/Inf ([run] on_nonfinite = "stop"): nothing was updated
// and no checkpoint of that state written. Exit 4.
class NonFiniteError : public Error {
 public:
  using Error::Error;
};
// Another live run holds the run directory's lock. Exit 5.
class RunDirectoryBusy : public Error {
 public:
  using Error::Error;
};
// SIGINT or SIGTERM: the step in progress finished and a checkpoint was written. Exit 128 + signal.
class Interrupted : public Error {
 public:
  Interrupted(int signal, const std::string& what) : Error(what), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

struct RunOptions {
  std::string out_dir;    // default runs/<graph name>
  bool resume = false;
  int threads = -1;       // overrides [run] threads when >= 0
  int progress = -1;      // 1 live progress line, 0 plain log lines, -1 decide by isatty
  std::shared_ptr<Communicator> comm;  // made from the choice and the launch when null
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
  int world() const { return opt_.comm->world(); }

 private:
  struct StagePlan;    // what a stage trains and runs, computed once when it starts
  class StepGraph;     // the oneTBB flow graph of a stage's nodes
  class OptimizerSet;  // one optimizer per parameter group
  struct StepResult {
    Tensor total;  // the weighted sum of the losses
    std::map<std::string, double> terms, loss_metrics;
    double lr = 0, grad_norm = 0, flops = 0;
    double loss = 0;       // the weighted sum of the terms (means over ranks)
    bool skipped = false;  // not finite, and skipped: no update was made
  };
  void make_nodes();
  void check_before_training() const;
  void apply_ops(size_t stage, const StepContext& ctx);
  void carry_optimizer_state(const Op& op, const std::string& target, Model& model,
                             const std::map<std::string, Shape>& before);
  void train_stage(size_t stage_index);
  StagePlan plan_stage(size_t stage_index) const;
  void plan_parameters(StagePlan& plan, const OptimizerSet& groups) const;
  void start_optimizer(const StagePlan& plan);
  StepResult train_step(const StagePlan& plan, StepGraph& graph, const StepContext& ctx);
  void log_step(const StagePlan& plan, const StepResult& r, int64_t stage_step, double dt, double rate);
  void evaluate(const StagePlan& plan, const StepContext& ctx);
  nn::NamedTensors parameters_of(const std::string& node) const;
  void save_checkpoint(size_t stage_index, int64_t stage_step);
  bool load_checkpoint(size_t& stage_index, int64_t& stage_step);
  void log_metrics(const Json& line);
  void lock_run_directory();
  void move_earlier_results();
  // The first non-finite thing of a step ("loss term 'lm' is nan", "gradient of 'gpt.wte'
  // is inf"), or "" when the step is finite.
  std::string nonfinite_in(const StepResult& r, const std::vector<std::pair<std::string, Tensor>>& grads) const;
  void check_parameters_finite() const;

  GraphSpec g_;
  const PluginRegistry& reg_;
  RunOptions opt_;
  std::string out_dir_;
  Device device_;
  std::map<std::string, std::shared_ptr<Plugin>> nodes_;
  std::unique_ptr<OptimizerSet> optimizer_;
  bool optimizer_same_config_ = false;  // this stage's optimizer is configured as the previous one's
  bool optimizer_carried_ = false;      // ... and continues it (it was made in this process)
  int64_t step_ = 0;                // optimizer updates in the whole run
  int64_t resume_stage_step_ = 0;
  bool resumed_ = false;            // the next stage continues from a checkpoint
  std::string resume_dir_;          // the checkpoint resumed from (latest.json read once)
  bool resume_manifest_ = false;    // ... lists its files, which are these (verified)
  std::set<std::string> resume_files_;
  double tokens_ = 0, flops_ = 0;
  double elapsed_before_ = 0;       // seconds spent before a resume
  std::chrono::steady_clock::time_point start_;
  std::FILE* metrics_ = nullptr;
  bool tty_ = false;
  int lock_fd_ = -1;                // the run directory's .lock, held (flock) for the run's life
  MatmulPrecision previous_precision_ = MatmulPrecision::f32;  // restored when the run ends
  int64_t skipped_steps_ = 0;       // non-finite steps skipped (on_nonfinite = "skip")
  std::shared_ptr<ZeroShards> zero_;  // this stage's ZeRO-1 shards (core/dist/zero.h), when on
};

}  // namespace scion::runtime
