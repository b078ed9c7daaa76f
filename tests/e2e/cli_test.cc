// CRIU's command-line semantics: --leave-stopped, restore without -d (waits for the root and
// exits with its status), --pidfile, --help, unknown commands and options.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

char StateOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(in, s);
  return s.empty() ? '?' : s[s.rfind(')') + 2];
}

Proc StartCounter(const TempDir& dir, pid_t* pid) {
  Proc w = Start({WorkloadBinary("mt_counter"), dir.File("ready"), dir.File("result"), "4"},
                 dir.File("log"));
  EXPECT_NE(WaitForFile(dir.File("ready"), 10000), "");
  *pid = w.pid();
  return w;
}

TEST(Cli, LeaveStoppedLeavesTheTreeStopped) {
  TempDir dir;
  pid_t pid;
  Proc w = StartCounter(dir, &pid);
  RunResult d = Dump(pid, dir.File("img"), {"-s"});
  ASSERT_EQ(d.status, 0) << d.output;
  usleep(100000);
  EXPECT_EQ(StateOf(pid), 'T');
  kill(pid, SIGCONT);
  kill(pid, SIGUSR1);
  std::string v = WaitForFile(dir.File("result"), 10000);
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
}

TEST(Cli, RestoreWithoutDetachWaitsAndReturnsTheRootStatus) {
  TempDir dir;
  pid_t pid;
  Proc w = StartCounter(dir, &pid);
  ASSERT_EQ(Dump(pid, dir.File("img")).status, 0);
  ASSERT_TRUE(w.ReapIfDead(5000));
  Proc restore =
      Start({LazarusBinary(), "restore", "-D", dir.File("img"), "--pidfile", dir.File("pidfile")},
            dir.File("restore.log"));
  EXPECT_EQ(WaitForFile(dir.File("pidfile"), 10000), std::to_string(pid) + "\n");
  EXPECT_EQ(restore.Wait(300), -1) << "restore without -d must wait for the root";
  kill(pid, SIGUSR1);  // the workload checks itself and exits 0
  int status = restore.Wait(10000);
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(WaitForFile(dir.File("result"), 1000).rfind("PASS", 0), 0u);
}

TEST(Cli, HelpAndMistakes) {
  RunResult help = RunCmd({LazarusBinary(), "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.output.find("lazarus dump|pre-dump -t PID"), std::string::npos);
  RunResult dump_help = RunCmd({LazarusBinary(), "dump", "--help"});
  EXPECT_EQ(dump_help.status, 0);
  EXPECT_NE(dump_help.output.find("--leave-running"), std::string::npos);
  RunResult unknown = RunCmd({LazarusBinary(), "frobnicate"});
  EXPECT_NE(unknown.status, 0);
  EXPECT_EQ(unknown.output, "Error: unknown command 'frobnicate'; see 'lazarus --help'\n");
  RunResult bad = RunCmd({LazarusBinary(), "dump", "--no-such-option"});
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("--no-such-option"), std::string::npos) << bad.output;
  RunResult not_yet = RunCmd({LazarusBinary(), "pre-dump", "-t", "1", "-D", "/tmp"});
  EXPECT_NE(not_yet.status, 0);
  EXPECT_NE(not_yet.output.find("not implemented yet"), std::string::npos);
  // The page server never picks an interface by itself.
  RunResult no_address = RunCmd({LazarusBinary(), "page-server", "-D", "/tmp", "--port", "1"});
  EXPECT_NE(no_address.status, 0);
  EXPECT_EQ(no_address.output, "Error: page-server needs --address and --port\n");
}

}  // namespace
}  // namespace lz::e2e
