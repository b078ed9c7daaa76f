// -j|--shell-job: a task whose stdio is a terminal is dumped only with -j and restored onto the
// terminal the restore runs on, as with CRIU.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

// A pseudo-terminal pair; the slave's path is what the task's fds point at.
struct Pty {
  Pty() {
    master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    grantpt(master);
    unlockpt(master);
    slave_path = ptsname(master);
  }
  ~Pty() { close(master); }
  int master;
  std::string slave_path;
};

// Runs argv in a new session with the pty's slave as stdin, stdout and stderr.
pid_t StartOnPty(const std::vector<std::string>& argv, const Pty& pty) {
  BecomeSubreaper();
  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    int s = open(pty.slave_path.c_str(), O_RDWR);
    dup2(s, 0);
    dup2(s, 1);
    dup2(s, 2);
    for (int fd = 3; fd < 1024; fd++) close(fd);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

std::string FdTarget(pid_t pid, int fd) {
  char buf[256];
  ssize_t n = readlink(("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd)).c_str(), buf,
                       sizeof buf);
  return n > 0 ? std::string(buf, n) : "";
}

TEST(ShellJob, TerminalFdsNeedDashJAndMoveToTheRestoringTerminal) {
  TempDir dir;
  Pty first;
  Proc w(StartOnPty({WorkloadBinary("mt_counter"), dir.File("ready"), dir.File("result"), "4"},
                    first));
  ASSERT_NE(WaitForFile(dir.File("ready"), 10000), "");
  pid_t pid = w.pid();
  ASSERT_EQ(FdTarget(pid, 1), first.slave_path);

  RunResult refused = Dump(pid, dir.File("img"));
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("--shell-job"), std::string::npos) << refused.output;
  EXPECT_EQ(kill(pid, 0), 0) << "a refused dump leaves the task running";

  RunResult d = Dump(pid, dir.File("img"), {"-j"});
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(w.ReapIfDead(5000));

  // Restore from another terminal: the task's terminal fds become that one.
  Pty second;
  pid_t restorer =
      StartOnPty({LazarusBinary(), "restore", "-D", dir.File("img"), "-d", "-j"}, second);
  Proc(restorer).Wait(30000);
  Proc restored(pid);
  ASSERT_EQ(kill(pid, 0), 0) << "not restored";
  EXPECT_EQ(FdTarget(pid, 0), second.slave_path);
  EXPECT_EQ(FdTarget(pid, 2), second.slave_path);
  kill(pid, SIGUSR1);
  std::string v = WaitForFile(dir.File("result"), 10000);
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
}

}  // namespace
}  // namespace lz::e2e
