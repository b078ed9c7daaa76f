#include "base/held_signals.h"

#include <string.h>

#include <ctime>
#include <string>

namespace lz {
namespace {

constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

sigset_t StopSet() {
  sigset_t s;
  sigemptyset(&s);
  for (int sig : kStopSignals) {
    sigaddset(&s, sig);
  }
  return s;
}

}  // namespace

HeldSignals::HeldSignals() {
  sigset_t s = StopSet();
  pthread_sigmask(SIG_BLOCK, &s, &old_);
}

HeldSignals::~HeldSignals() {
  sigset_t s = StopSet();
  timespec now{0, 0};
  while (sigtimedwait(&s, nullptr, &now) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

Status CheckInterrupted(const char* step) {
  sigset_t pending;
  if (sigpending(&pending) != 0) {
    return Ok();
  }
  for (int sig : kStopSignals) {
    if (sigismember(&pending, sig) == 1) {
      return Fail(EINTR, "dump",
                  std::string("interrupted by SIG") + sigabbrev_np(sig) + " while " + step);
    }
  }
  return Ok();
}

}  // namespace lz
