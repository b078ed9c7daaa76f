// The "state" workload: fds of every supported kind, signals, timers, memory, credentials.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

struct Case {
  Mode mode;
  bool nobody;
};

class State : public ::testing::TestWithParam<Case> {};

TEST_P(State, EveryKindOfStateComesBack) {
  TempDir dir;
  chmod(dir.path().c_str(), 0777);  // the workload may run as nobody
  // Its working directory and files live under a name that is not UTF-8, as Linux allows.
  std::string work = dir.File(
      "w\xff\xfe"
      "dir");
  mkdir(work.c_str(), 0777);
  chmod(work.c_str(), 0777);
  std::vector<std::string> argv = {WorkloadBinary("state"), dir.File("ready"), dir.File("result"),
                                   work};
  if (GetParam().nobody) {
    argv.push_back("nobody");
  }
  Proc w = Start(argv, dir.File("workload.log"));
  std::string ready = WaitForFile(dir.File("ready"), 10000);
  ASSERT_NE(ready, "") << "workload did not start";
  pid_t pid = w.pid();
  RunResult d = Dump(pid, dir.File("img"), {"--file-locks"});
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(w.ReapIfDead(5000));
  Proc daemon;
  RunResult r = Restore(GetParam().mode, dir.File("img"), &daemon, dir.File("lazy.log"));
  ASSERT_EQ(r.status, 0) << r.output;
  Proc restored(pid);
  kill(pid, SIGUSR1);
  std::string v = WaitForFile(dir.File("result"), 10000);
  EXPECT_EQ(v, "PASS\n");
  if (GetParam().mode == Mode::kLazy) {
    int status = daemon.Wait(20000);
    EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
}

// The state workload as root, working in DIR/work.
Proc StartInWork(const TempDir& dir) {
  std::string work = dir.File("work");
  mkdir(work.c_str(), 0777);
  return Start({WorkloadBinary("state"), dir.File("ready"), dir.File("result"), work},
               dir.File("workload.log"));
}

// The workload maps work/data.txt privately; a file that changed since the dump would show
// other bytes through the pages it never wrote, so the restore refuses it with one clear line
// and leaves no task behind.
TEST(StateFailures, AMappedFileChangedSinceTheDumpIsRefused) {
  TempDir dir;
  Proc w = StartInWork(dir);
  ASSERT_NE(WaitForFile(dir.File("ready"), 10000), "") << "workload did not start";
  pid_t pid = w.pid();
  RunResult d = Dump(pid, dir.File("img"), {"--file-locks"});
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(w.ReapIfDead(5000));
  {
    std::ofstream grow(dir.File("work") + "/data.txt", std::ios::app);
    grow << "one more line\n";
  }
  Proc daemon;
  RunResult r = Restore(Mode::kEager, dir.File("img"), &daemon, dir.File("lazy.log"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("data.txt changed since the dump"), std::string::npos) << r.output;
  bool gone = false;
  for (int i = 0; i < 100 && !gone; i++) {
    gone = kill(pid, 0) != 0 && errno == ESRCH;
    usleep(20000);
  }
  EXPECT_TRUE(gone) << "a half-restored task was left behind";
}

// Without --file-locks a task holding a lock is not dumped, as in CRIU: restored without it, it
// would go on as if it held it. The refusal leaves it running as it was: it passes its own
// checks afterwards.
TEST(StateFailures, ALockedFileIsRefusedWithoutFileLocks) {
  TempDir dir;
  Proc w = StartInWork(dir);
  ASSERT_NE(WaitForFile(dir.File("ready"), 10000), "") << "workload did not start";
  RunResult d = Dump(w.pid(), dir.File("img"));
  EXPECT_NE(d.status, 0);
  EXPECT_NE(d.output.find("lock: dump with --file-locks"), std::string::npos) << d.output;
  kill(w.pid(), SIGUSR1);
  EXPECT_EQ(WaitForFile(dir.File("result"), 10000), "PASS\n");
}

INSTANTIATE_TEST_SUITE_P(Modes, State,
                         ::testing::Values(Case{Mode::kEager, false}, Case{Mode::kLazy, false},
                                           Case{Mode::kEager, true}, Case{Mode::kLazy, true}),
                         [](const auto& info) {
                           return std::string(ModeName(info.param.mode)) +
                                  (info.param.nobody ? "_nobody" : "_root");
                         });

}  // namespace
}  // namespace lz::e2e
