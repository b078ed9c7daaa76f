// A process tree: pids, parent links, process groups and wait() across a dump and restore.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

class Tree : public ::testing::TestWithParam<Mode> {};

pid_t ParentOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(in, s);
  std::istringstream rest(s.substr(s.rfind(')') + 2));
  char state;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

TEST_P(Tree, ChildrenComeBackUnderTheirParentAndAreReaped) {
  TempDir dir;
  Proc w = Start({WorkloadBinary("tree"), dir.File("ready"), dir.File("result")}, dir.File("log"));
  std::string ready = WaitForFile(dir.File("ready"), 10000);
  ASSERT_NE(ready, "");
  std::istringstream ids(ready);
  pid_t pid, kid1, kid2, zombie;
  ids >> pid >> kid1 >> kid2 >> zombie;
  RunResult d = RunCmd({LazarusBinary(), "dump", "-t", std::to_string(pid), "-D", dir.File("img")});
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(w.ReapIfDead(5000));
  // The children were killed with the tree and reparented to us (the subreaper): reap them.
  Proc(kid1).ReapIfDead(5000);
  Proc(kid2).ReapIfDead(5000);
  Proc(zombie).ReapIfDead(5000);
  Proc daemon;
  RunResult r = Restore(GetParam(), dir.File("img"), &daemon, dir.File("lazy.log"));
  ASSERT_EQ(r.status, 0) << r.output;
  Proc restored(pid);
  EXPECT_EQ(ParentOf(kid1), pid);
  EXPECT_EQ(ParentOf(kid2), pid);
  EXPECT_EQ(getpgid(kid2), kid2) << "the second child leads its own process group";
  EXPECT_EQ(getsid(kid1), pid);
  EXPECT_EQ(ParentOf(zombie), pid) << "the zombie comes back under its parent";
  {
    std::ifstream st("/proc/" + std::to_string(zombie) + "/stat");
    std::string s;
    std::getline(st, s);
    EXPECT_EQ(s.substr(s.rfind(')') + 2, 1), "Z") << s;
  }
  kill(pid, SIGUSR1);
  EXPECT_EQ(WaitForFile(dir.File("result"), 10000), "PASS\n");
  if (GetParam() == Mode::kLazy) {
    int status = daemon.Wait(20000);
    EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, Tree, ::testing::Values(Mode::kEager, Mode::kLazy),
                         [](const auto& info) { return std::string(ModeName(info.param)); });

TEST(TreeRefusals, PipeBetweenProcessesIsRefusedAndTheTreeRunsOn) {
  TempDir dir;
  // A shell pipeline: the pipe joins two processes of one tree.
  Proc w = Start({"/bin/sh", "-c", "sleep 1000 | sleep 1000"}, dir.File("log"));
  usleep(300000);
  RunResult d =
      RunCmd({LazarusBinary(), "dump", "-t", std::to_string(w.pid()), "-D", dir.File("img")});
  EXPECT_NE(d.status, 0);
  EXPECT_NE(d.output.find("shared with fd"), std::string::npos) << d.output;
  EXPECT_EQ(kill(w.pid(), 0), 0) << "the tree must be left running";
  std::ifstream st("/proc/" + std::to_string(w.pid()) + "/status");
  std::string line, tracer;
  while (std::getline(st, line)) {
    if (line.rfind("TracerPid:", 0) == 0) tracer = line;
  }
  EXPECT_EQ(tracer, "TracerPid:\t0");
  kill(-w.pid(), SIGKILL);  // the whole session's group, started by this test
}

}  // namespace
}  // namespace lz::e2e
