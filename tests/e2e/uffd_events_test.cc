// mremap, madvise(DONTNEED), munmap and threads faulting one chunk, all while a lazy restore's
// memory is still arriving: once with the background fill held back for the whole check, once
// with the fill threads copying at full speed meanwhile.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <string>

#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

// Dumps `w`, reaps it and restores it lazily with `daemon_extra`: "", or what went wrong.
std::string DumpAndRestoreLazily(Proc& w, const TempDir& dir, Proc* daemon,
                                 const std::vector<std::string>& daemon_extra) {
  RunResult d = Dump(w.pid(), dir.File("img"));
  if (d.status != 0 || !w.ReapIfDead(5000)) {
    return "dump failed: " + d.output;
  }
  RunResult r =
      Restore(Mode::kLazy, dir.File("img"), daemon, dir.File("lazy.log"), {}, daemon_extra);
  return r.status == 0 ? "" : "restore failed: " + r.output;
}

// Starts the workload in `mode`, restores it lazily with `daemon_extra` into `restored` and
// `daemon`, sends it SIGUSR1 and returns what it wrote to its result file ("" if nothing).
std::string RestoreAndGo(const TempDir& dir, const std::string& mode,
                         const std::vector<std::string>& daemon_extra, Proc* restored,
                         Proc* daemon) {
  Proc w = Start({WorkloadBinary("uffd_events"), dir.File("ready"), dir.File("result"), mode},
                 dir.File("log"));
  if (WaitForFile(dir.File("ready"), 20000).empty()) {
    ADD_FAILURE() << "workload did not start";
    return "";
  }
  pid_t pid = w.pid();
  if (std::string failed = DumpAndRestoreLazily(w, dir, daemon, daemon_extra); !failed.empty()) {
    ADD_FAILURE() << failed;
    return "";
  }
  *restored = Proc(pid);
  kill(pid, SIGUSR1);
  return WaitForFile(dir.File("result"), 10000);
}

// Starts the workload, dumps it, restores it lazily with `daemon_extra`, sends it SIGUSR1 and
// returns its verdict (the daemon must also exit cleanly).
std::string RunWorkload(const std::vector<std::string>& args,
                        const std::vector<std::string>& daemon_extra, int verdict_ms) {
  TempDir dir;
  std::vector<std::string> argv = {WorkloadBinary("uffd_events"), dir.File("ready"),
                                   dir.File("result")};
  argv.insert(argv.end(), args.begin(), args.end());
  Proc w = Start(argv, dir.File("log"));
  if (WaitForFile(dir.File("ready"), 20000).empty()) {
    return "workload did not start";
  }
  pid_t pid = w.pid();
  Proc daemon;
  if (std::string failed = DumpAndRestoreLazily(w, dir, &daemon, daemon_extra); !failed.empty()) {
    return failed;
  }
  Proc restored(pid);
  kill(pid, SIGUSR1);
  std::string verdict = WaitForFile(dir.File("result"), verdict_ms);
  int status = daemon.Wait(20000);
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return verdict;
}

TEST(UffdEvents, AddressSpaceChangesDuringTheFillAreHonoured) {
  EXPECT_EQ(RunWorkload({}, {"--fill-delay", "5000"}, 4000), "PASS\n")
      << "(the check must finish while the fill is still held back)";
}

// A page dropped with madvise(DONTNEED) must read as zero, never as the content a fill thread
// had decoded for it.
TEST(UffdEvents, DroppedPagesNeverGetOldContentWhileTheFillRuns) {
  EXPECT_EQ(RunWorkload({"race"}, {"--fill-delay", "0"}, 20000), "PASS\n");
}

// A child forked while its parent's memory is still arriving: where the parent's VMAs are
// MADV_WIPEONFORK it reads zeros, never the dumped data; where they are MADV_DONTFORK it has
// nothing, and the daemon still finishes while the child lives.
TEST(UffdEvents, AChildForkedDuringTheFillHonoursWipeonforkAndDontfork) {
  TempDir dir;
  Proc restored;
  Proc daemon;
  std::string verdict = RestoreAndGo(dir, "fork", {"--fill-delay", "1500"}, &restored, &daemon);
  ASSERT_EQ(verdict.rfind("PASS child ", 0), 0u) << verdict;
  pid_t child = static_cast<pid_t>(std::stol(verdict.substr(11)));
  int status = daemon.Wait(20000);
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "the daemon did not finish while the child lived: " << status;
  restored.Kill();  // the child dies with its parent (PR_SET_PDEATHSIG) and comes to us
  for (int i = 0; i < 250 && waitpid(child, nullptr, WNOHANG) != child; i++) {
    usleep(20000);
  }
}

// A child forked after the restore that touches nothing lazy: the daemon learns its pid from
// /proc (not from a fault), and when the daemon dies the guard kills it with its parent, or
// it would run on with zeros for the pages it never got.
TEST(UffdEvents, AChildThatNeverFaultsIsFoundAndKilledWithTheTree) {
  TempDir dir;
  Proc restored;
  Proc daemon;
  std::string line =
      RestoreAndGo(dir, "forkidle", {"--fill-delay", "60000", "-v3"}, &restored, &daemon);
  ASSERT_FALSE(line.empty()) << "no pid from the workload";
  pid_t child = static_cast<pid_t>(std::stol(line));
  std::string learnt = "serving forked child " + std::to_string(child) + " (from /proc)";
  std::string log;
  for (int i = 0; i < 100 && log.find(learnt) == std::string::npos; i++) {
    usleep(20000);
    std::ifstream in(dir.File("lazy.log"));
    log.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  EXPECT_NE(log.find(learnt), std::string::npos) << log;
  daemon.Kill();
  int status = restored.Wait(10000);
  EXPECT_TRUE(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  int child_status = 0;
  pid_t reaped = 0;  // once its parent is gone the child comes to us, a subreaper
  for (int i = 0; i < 250 && (reaped = waitpid(child, &child_status, WNOHANG)) != child; i++) {
    usleep(20000);
  }
  EXPECT_EQ(reaped, child) << "the child runs on without its pages";
  EXPECT_TRUE(WIFSIGNALED(child_status) && WTERMSIG(child_status) == SIGKILL) << child_status;
  if (reaped != child) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
  }
}

// A thread's stack inside a MADV_HUGEPAGE region: its hot pages must go in without faulting in
// a huge page, whose other pages (lazy data) would then read as zero and never be filled.
TEST(UffdEvents, HotPagesInAHugePageRegionLeaveTheDataAroundThem) {
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  std::getline(thp, modes);
  ASSERT_EQ(modes.find("[never]"), std::string::npos)
      << "needs transparent huge pages (madvise or always) to exercise this; the kernel has "
      << modes;
  TempDir dir;
  Proc w =
      Start({WorkloadBinary("hugestack"), dir.File("ready"), dir.File("result")}, dir.File("log"));
  std::string ready = WaitForFile(dir.File("ready"), 10000);
  ASSERT_NE(ready, "") << "workload did not start";
  long ready_pid = 0;
  unsigned long huge_kib = 0;
  std::istringstream(ready) >> ready_pid >> huge_kib;  // "PID HUGE_KIB"
  ASSERT_GT(huge_kib, 0u) << "the workload's region got no transparent huge page, so this "
                             "test would not exercise anything: "
                          << ready;
  pid_t pid = w.pid();
  Proc daemon;
  // The fill held back: every data page the check reads must come through a fault.
  ASSERT_EQ(DumpAndRestoreLazily(w, dir, &daemon, {"--fill-delay", "5000"}), "");
  Proc restored(pid);
  kill(pid, SIGUSR1);
  EXPECT_EQ(WaitForFile(dir.File("result"), 10000), "PASS\n");
  int status = daemon.Wait(20000);
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace lz::e2e
