// SIGINT / SIGTERM (Slurm's preemption signal) ask the run to stop after the step in progress,
// with a checkpoint; a second one stops at once (the default action).
#pragma once
#include <csignal>

namespace scion::runtime {

// Installs the handlers for the life of a run and puts the earlier ones back.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // The signal that asked the run to stop, or 0.
  static int received();

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

const char* signal_name(int sig);

}  // namespace scion::runtime
