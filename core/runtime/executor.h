// Runs a validated graph: makes the nodes, then for each stage plans it once (what trains,
// what runs, which parameter group each parameter is in: stage_plan.h), applies its ops and
// trains. One step (train_step) reads top to bottom: data -> forward -> losses (the node DAG
// in a oneTBB flow graph, independent nodes concurrently: step_graph.h) -> backward ->
// gradient all-reduce -> clip -> optimizer, group by group (optimizer_set.h). Metrics and
// evaluation follow; the run directory (run_directory.h) and checkpoints (resume_state.h,
// checkpoint.h) are classes of their own.
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
#include "runtime/optimizer_set.h"
#include "runtime/stage_plan.h"
#include "scion/precision.h"

namespace scion::runtime {

class ResumeState;
class RunDirectory;
class StepGraph;
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

// Seconds left as a progress line shows them ("3m05s"; "?" when unknown).
std::string fmt_eta(double seconds);

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
  int rank() const { return opt_.comm->rank(); }

 private:
  struct StepResult {
    Tensor total;  // the weighted sum of the losses
    std::map<std::string, double> terms, loss_metrics;
    double lr = 0, grad_norm = 0, flops = 0;
    double loss = 0;       // the weighted sum of the terms (means over ranks)
    bool skipped = false;  // not finite, and skipped: no update was made
  };
  // Setting up.
  void make_nodes();
  void check_before_training() const;
  void open_run_directory();
  void resume_from_checkpoint();
  // A stage.
  void train_stage(size_t stage_index);
  int64_t begin_stage(StagePlan& plan, StepContext& ctx);
  void apply_ops(size_t stage, const StepContext& ctx);
  void start_optimizer(const StagePlan& plan);
  std::unique_ptr<OptimizerSet> make_optimizer_set(const StageSpec& s);
  void start_data_parallel(StagePlan& plan);
  void keep_own_shard_state(const StagePlan& plan);
  bool end_update(const StagePlan& plan, const StepContext& ctx, int64_t stage_step);
  // A step.
  StepResult train_step(const StagePlan& plan, StepGraph& graph, const StepContext& ctx);
  std::set<std::string> active_nodes(const StagePlan& plan, const StepContext& ctx) const;
  void sum_losses(const StagePlan& plan, const StepGraph& graph, StepResult& r) const;
  StepResult& not_finite(const StagePlan& plan, const StepContext& ctx, StepResult& r, const std::string& what);
  void step_optimizer(const StagePlan& plan, const std::vector<const StagePlan::Param*>& stepped, double lr,
                      const StepContext& ctx, float clip_scale);
  // What a run leaves.
  void log_step(const StagePlan& plan, const StepResult& r, int64_t stage_step, double dt, double rate);
  void evaluate(const StagePlan& plan, const StepContext& ctx);
  void save_checkpoint(size_t stage_index, int64_t stage_step);

  GraphSpec g_;
  const PluginRegistry& reg_;
  RunOptions opt_;
  std::string out_dir_;
  Device device_;
  std::map<std::string, std::shared_ptr<Plugin>> nodes_;
  std::unique_ptr<RunDirectory> dir_;         // rank 0's: lock, graph, metrics
  std::unique_ptr<OptimizerSet> optimizer_;   // this stage's (carried over when configured alike)
  bool optimizer_same_config_ = false;        // this stage's optimizer is configured as the previous one's
  std::unique_ptr<ResumeState> resume_;       // the checkpoint this run continues
  std::shared_ptr<ZeroShards> zero_;          // this stage's ZeRO-1 shards (core/dist/zero.h), when on
  // The run's counters, saved with every checkpoint.
  int64_t step_ = 0;                          // optimizer updates in the whole run
  std::vector<int64_t> stage_updates_;        // updates each stage begun so far made
  double tokens_ = 0, flops_ = 0;
  double elapsed_before_ = 0;                 // seconds spent before a resume
  std::chrono::steady_clock::time_point start_;
  int64_t skipped_steps_ = 0;                 // non-finite steps skipped (on_nonfinite = "skip")
  bool tty_ = false;
  MatmulPrecision previous_precision_ = MatmulPrecision::f32;  // restored when the run ends
};

}  // namespace scion::runtime
