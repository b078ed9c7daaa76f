// mremap, madvise(DONTNEED), munmap and threads faulting one chunk, all while a lazy restore's
// memory is still arriving (the background fill is held back for the whole check).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

TEST(UffdEvents, AddressSpaceChangesDuringTheFillAreHonoured) {
  TempDir dir;
  Proc w = Start({WorkloadBinary("uffd_events"), dir.File("ready"), dir.File("result")},
                 dir.File("log"));
  ASSERT_NE(WaitForFile(dir.File("ready"), 10000), "");
  pid_t pid = w.pid();
  RunResult d = RunCmd({LazarusBinary(), "dump", "-t", std::to_string(pid), "-D", dir.File("img")});
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(w.ReapIfDead(5000));
  Proc daemon;
  RunResult r = Restore(Mode::kLazy, dir.File("img"), &daemon, dir.File("lazy.log"), {},
                        {"--fill-delay", "5000"});
  ASSERT_EQ(r.status, 0) << r.output;
  Proc restored(pid);
  kill(pid, SIGUSR1);
  EXPECT_EQ(WaitForFile(dir.File("result"), 4000), "PASS\n")
      << "(the check must finish while the fill is still held back)";
  int status = daemon.Wait(20000);
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// The same kind of change while the fill threads copy at full speed: a page dropped with
// madvise(DONTNEED) must read as zero, never as the content a fill thread had decoded for it.
TEST(UffdEvents, DroppedPagesNeverGetOldContentWhileTheFillRuns) {
  TempDir dir;
  Proc w = Start({WorkloadBinary("uffd_events"), dir.File("ready"), dir.File("result"), "race"},
                 dir.File("log"));
  ASSERT_NE(WaitForFile(dir.File("ready"), 20000), "");
  pid_t pid = w.pid();
  RunResult d = RunCmd({LazarusBinary(), "dump", "-t", std::to_string(pid), "-D", dir.File("img")});
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(w.ReapIfDead(5000));
  Proc daemon;
  RunResult r = Restore(Mode::kLazy, dir.File("img"), &daemon, dir.File("lazy.log"), {},
                        {"--fill-delay", "0"});
  ASSERT_EQ(r.status, 0) << r.output;
  Proc restored(pid);
  kill(pid, SIGUSR1);
  EXPECT_EQ(WaitForFile(dir.File("result"), 20000), "PASS\n");
  int status = daemon.Wait(20000);
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace lz::e2e
