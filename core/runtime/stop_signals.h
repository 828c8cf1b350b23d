// SIGINT / SIGTERM (Slurm's preemption signal) ask the run to stop after the step in progress,
// with a checkpoint; a second one stops at once (the default action).
//
// No signal handler ever runs on a thread that computes. oneDNN's JIT f32 GEMM runs with its
// stack pointer at the start of a workspace it took from malloc: a handler entered on that
// thread gets its frame (kilobytes of AVX-512 state) written below the stack pointer, over the
// heap chunk's header and its neighbour, whatever the handler does. So the signals are
// blocked in every thread (before any starts: block_stop_signals) and one thread of their own
// takes them with sigwait (docs/reliability.md, "Signals and preemption").
#pragma once
#include <csignal>
#include <string>

namespace scion::runtime {

// Blocks SIGINT and SIGTERM in the calling thread, so in every thread it starts from now on.
// `scion` calls it before any library starts a thread (a .preinit_array entry, core/cli).
void block_stop_signals();

// Blocks them (block_stop_signals) and starts the thread that takes them, once per process.
// Outside a run (no StopSignals alive) a signal has its default action: the process ends.
void take_stop_signals();

// A rank started by a launcher (mpirun's orted, srun's slurmstepd): once its parent process is
// gone (checked ten times a second), the rank stops as on SIGTERM (after the update, with a
// checkpoint; outside a run at once) instead of training on unsupervised. `who` names the rank
// in the message. (OpenMPI itself aborts a rank that lost its launcher's PMIx connection, exit
// 195, about a second later; whichever comes first ends the rank.)
void watch_launcher(const std::string& who);
// Whether the launcher was found gone (MPI_Finalize would then wait for it forever).
bool launcher_gone();

// The life of a run: the first signal sets the flag the run polls after each update; a
// second one ends the process at once.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  // The signal that asked the run to stop, or 0.
  static int received();
};

const char* signal_name(int sig);

}  // namespace scion::runtime
