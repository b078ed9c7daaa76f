#include "base/held_signals.h"

#include <string.h>

#include <ctime>
#include <string>

namespace lz {
namespace {

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// What the live HeldSignals holds (empty when none), and whether the dump already failed
// because of one of them. Set and read on the dump's thread only.
sigset_t g_held;
bool g_reported = false;

}  // namespace

HeldSignals::HeldSignals() {
  // A signal lazarus ignores (nohup's SIGHUP, SIGINT of a background job) stays ignored: held
  // back, it would be queued (the kernel never drops a blocked signal) and stop the dump.
  sigemptyset(&g_held);
  for (int sig : kStopSignals) {
    struct sigaction sa {};
    if (sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler != SIG_IGN) {
      sigaddset(&g_held, sig);
    }
  }
  g_reported = false;
  pthread_sigmask(SIG_BLOCK, &g_held, &old_);
}

HeldSignals::~HeldSignals() {
  // One that failed the dump has been answered with the dump's error; one that came after the
  // last check is delivered when the mask goes back (a SIGTERM then still ends lazarus).
  if (g_reported) {
    timespec now{0, 0};
    while (sigtimedwait(&g_held, nullptr, &now) > 0) {
    }
  }
  sigemptyset(&g_held);
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

Status CheckInterrupted(const char* step) {
  sigset_t pending;
  if (sigpending(&pending) != 0) {
    return Ok();
  }
  for (int sig : kStopSignals) {
    if (sigismember(&g_held, sig) == 1 && sigismember(&pending, sig) == 1) {
      g_reported = true;
      return Fail(EINTR, "dump",
                  std::string("interrupted by SIG") + sigabbrev_np(sig) + " while " + step);
    }
  }
  return Ok();
}

}  // namespace lz
