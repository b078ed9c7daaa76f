// The "state" workload: fds of every supported kind, signals, timers, memory, credentials.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

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
  RunResult d = Dump(pid, dir.File("img"));
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

INSTANTIATE_TEST_SUITE_P(Modes, State,
                         ::testing::Values(Case{Mode::kEager, false}, Case{Mode::kLazy, false},
                                           Case{Mode::kEager, true}, Case{Mode::kLazy, true}),
                         [](const auto& info) {
                           return std::string(ModeName(info.param.mode)) +
                                  (info.param.nobody ? "_nobody" : "_root");
                         });

}  // namespace
}  // namespace lz::e2e
