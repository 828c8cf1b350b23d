#include "runtime/stop_signals.h"

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
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

std::atomic<pid_t> g_launcher{0};
std::atomic<bool> g_launcher_gone{false};
// Plain storage, not a std::string: the watcher thread may read it while exit() runs the
// static destructors.
std::mutex g_who_mu;
char g_who[64] = "";

// A stop asked for by `sig`: the run stops after its update; a second one, or one outside a
// run, ends the process now.
void stop(int sig) {
  if (g_run_active.load() && g_stop_signal.exchange(sig) == 0) return;
  end_process(sig);
}

void check_launcher() {
  const pid_t launcher = g_launcher.load();
  if (launcher == 0 || g_launcher_gone.load() || ::getppid() == launcher) return;
  g_launcher_gone = true;
  {
    std::lock_guard<std::mutex> lock(g_who_mu);
    std::fprintf(stderr, "scion: %s: the launcher that started it (pid %d) is gone: stopping%s\n", g_who,
                 int(launcher), g_run_active.load() ? " after this update, with a checkpoint" : "");
  }
  // As a first SIGTERM, never as a second one: a stop already under way finishes its checkpoint.
  if (!g_run_active.load()) end_process(SIGTERM);
  int none = 0;
  g_stop_signal.compare_exchange_strong(none, SIGTERM);
}

void take_signals_forever() {
  const sigset_t set = stop_set();
  const timespec tenth{0, 100'000'000};
  for (;;) {
    const int sig = sigtimedwait(&set, nullptr, &tenth);
    if (sig > 0) stop(sig);
    check_launcher();
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

void watch_launcher(const std::string& who) {
  take_stop_signals();
  {
    std::lock_guard<std::mutex> lock(g_who_mu);
    std::snprintf(g_who, sizeof g_who, "%s", who.c_str());
  }
  g_launcher = ::getppid();
  // The launcher forwards the rank's output: once it is gone, a write would end the rank by
  // SIGPIPE before it could stop with a checkpoint.
  std::signal(SIGPIPE, SIG_IGN);
}

bool launcher_gone() { return g_launcher_gone.load(); }

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

}  // namespace scion::runtime
