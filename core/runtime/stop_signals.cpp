#include "runtime/stop_signals.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace scion::runtime {

namespace {
std::atomic<int> g_stop_signal{0};
std::atomic<bool> g_run_active{false};

sigset_t stop_set() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  return s;
}

// The default action of `sig` for the whole process, now: raised on this thread, the only one
// that does not block it.
[[noreturn]] void end_process(int sig) {
  std::signal(sig, SIG_DFL);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  ::raise(sig);
  _exit(128 + sig);  // not reached: the default action of SIGINT and SIGTERM ends the process
}

void take_signals_forever() {
  const sigset_t set = stop_set();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (g_run_active.load() && g_stop_signal.exchange(sig) == 0) continue;  // the run stops after its update
    end_process(sig);
  }
}
}  // namespace

void block_stop_signals() {
  const sigset_t set = stop_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

void take_stop_signals() {
  static std::once_flag once;
  std::call_once(once, [] {
    block_stop_signals();
    std::thread(take_signals_forever).detach();
  });
}

StopSignals::StopSignals() {
  take_stop_signals();
  g_stop_signal = 0;
  g_run_active = true;
}

StopSignals::~StopSignals() { g_run_active = false; }

int StopSignals::received() { return g_stop_signal.load(); }

void StopSignals::request(int sig) {
  int none = 0;
  g_stop_signal.compare_exchange_strong(none, sig);
}

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

}  // namespace scion::runtime
