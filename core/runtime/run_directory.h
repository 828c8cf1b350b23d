// The run directory, runs/<name>/ (or --out): its lock, the earlier run's results moved aside,
// the resolved graph, metrics.jsonl. Rank 0 alone holds one (only it writes files).
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

#include "scion/json.h"

namespace scion::runtime {

class RunDirectory {
 public:
  explicit RunDirectory(std::string dir) : dir_(std::move(dir)) {}
  ~RunDirectory();
  RunDirectory(const RunDirectory&) = delete;
  RunDirectory& operator=(const RunDirectory&) = delete;
  const std::string& path() const { return dir_; }

  // First the folder becomes Scion's (scion/owned.h): a new or empty one, one with the run
  // marker, or an earlier Scion's run; any other folder is refused. Then one live run per run
  // directory: an exclusive flock on <dir>/.lock (never through a symlink), released by the OS
  // when the process dies however it dies, so a stale lock never blocks a rerun. Another live
  // run's lock is RunDirectoryBusy.
  void lock();
  // A fresh run in a directory an earlier run used moves that run's results (checkpoints,
  // metrics, graph, weights) to <dir>/earlier/<UTC time>/ before writing anything: a run that
  // then fails at its first step has destroyed nothing. Only a folder lock() adopted gets here.
  void move_earlier_results();
  // graph.toml: the graph with every default filled in, after a first line that records the
  // number of ranks. Resuming with another graph is allowed but warned about: the curve no
  // longer continues the interrupted run's. Graphs are compared with the data nodes' per-rank
  // batch_size made global (× ranks), so a run resumed on another number of ranks with the
  // same global batch is the same run.
  void write_graph(const std::string& resolved_toml, bool resumed, int world = 1);
  // metrics.jsonl, opened for the run: resuming keeps the lines up to `resumed_step` (the
  // checkpoint's), a fresh run starts it empty.
  void open_metrics(bool resume, int64_t resumed_step);
  // One line; a value that is not finite is written as null (the report draws a gap).
  void log(const Json& line);

 private:
  std::string dir_;
  int lock_fd_ = -1;
  std::FILE* metrics_ = nullptr;
};

}  // namespace scion::runtime
