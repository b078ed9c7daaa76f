#include "dump/parasite_session.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "base/proc.h"
#include "parasite/ptrace.h"

namespace lz {
namespace {

// The scheduler state letter of `pid` ('T' once stopped).
char StateOf(pid_t pid) { return StateIn(ProcPath(pid, "stat")); }

// Kills and reaps the test's child however the test ends.
struct Reaped {
  pid_t pid;
  ~Reaped() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
};

// Drives `child` with a session while a SIGSTOP (then, with `then_continue`, a SIGCONT) is
// sent to it, and lets it go.
void DriveThroughSigstop(pid_t child, bool then_continue) {
  auto att = SeizeAndStop(child, PTRACE_O_TRACESYSGOOD);
  ASSERT_TRUE(att) << att.error().Message();
  std::vector<pid_t> tids = {child};
  auto session = ParasiteSession::Start(child, tids);
  ASSERT_TRUE(session) << session.error().Message();
  ASSERT_EQ(kill(child, SIGSTOP), 0);
  auto r = (*session)->leader().Syscall("getpid", SYS_getpid);
  ASSERT_TRUE(r) << r.error().Message();
  EXPECT_EQ(*r, child);
  EXPECT_TRUE((*session)->leader().stopped_meanwhile());
  if (then_continue) {
    ASSERT_EQ(kill(child, SIGCONT), 0);
  }
  ASSERT_TRUE((*session)->Finish());
}

pid_t ForkSleeper() {
  pid_t child = fork();
  if (child == 0) {
    for (;;) {
      usleep(1000);
    }
  }
  return child;
}

// A SIGSTOP sent while the dump drives a thread (no mask holds it back) is dequeued by the
// remote syscall's return to user space and resumed without; the session sends it again, so
// the task stops once it is let go, as it would have.
TEST(ParasiteSession, ASigstopSentMeanwhileStillStopsTheTask) {
  Reaped child{ForkSleeper()};
  DriveThroughSigstop(child.pid, false);
  char state = '?';
  for (int i = 0; i < 100 && (state = StateOf(child.pid)) != 'T'; i++) {
    usleep(10000);
  }
  EXPECT_EQ(state, 'T') << "the SIGSTOP was lost";
}

// Then a SIGCONT after it (pending, every signal being blocked): the task was told to run on,
// so the SIGSTOP taken meanwhile is not sent again.
TEST(ParasiteSession, ASigcontAfterTheSigstopLetsTheTaskRun) {
  Reaped child{ForkSleeper()};
  DriveThroughSigstop(child.pid, true);
  usleep(200000);
  EXPECT_NE(StateOf(child.pid), 'T') << "stopped although continued after the SIGSTOP";
}

}  // namespace
}  // namespace lz
