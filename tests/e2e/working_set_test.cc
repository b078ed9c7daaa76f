// Working-set record and prefetch: a second lazy restore serves a service's first request
// from the pages recorded at the first, with no faults; a working set recorded on other images
// is ignored.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

// A counter of the daemon's stats-lazy image (0 when absent).
uint64_t LazyStat(const std::string& img, const std::string& name) {
  RunResult r = RunCmd({LazarusBinary(), "show", img + "/stats-lazy"});
  std::string key = "\"" + name + "\": ";
  size_t at = r.output.find(key);
  if (at == std::string::npos) {
    return 0;
  }
  at += key.size();
  if (r.output[at] == '"') {
    at++;
  }
  return std::stoull(r.output.substr(at));
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class WorkingSet : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = FreePort();
    Proc w = Start({WorkloadBinary("wsservice"), std::to_string(port_), "64"}, dir_.File("log"));
    pid_ = w.pid();
    ASSERT_TRUE(WaitForService(port_, "GET\n", "\n", 10000));
    hot_ = Talk(port_, "GET\n", "\n", 10000);
    all_ = Talk(port_, "SUM\n", "\n", 10000);
    ASSERT_EQ(hot_.size(), 17u) << hot_;
    RunResult d = Dump(pid_, img());
    ASSERT_EQ(d.status, 0) << d.output;
    ASSERT_TRUE(w.ReapIfDead(5000));
  }

  std::string img() const { return dir_.File("img"); }

  // Lazily restores the dump, asks the first request and lets the daemon finish; the restored
  // service is left running in `restored`.
  void LazyRestore(const std::vector<std::string>& daemon_extra, const std::string& log,
                   bool stop_recording, Proc* restored) {
    Proc daemon;
    RunResult r = Restore(Mode::kLazy, img(), &daemon, dir_.File(log), {}, daemon_extra);
    ASSERT_EQ(r.status, 0) << r.output;
    *restored = Proc(pid_);
    EXPECT_EQ(Talk(port_, "GET\n", "\n", 10000), hot_);
    if (stop_recording) {
      ::kill(daemon.pid(), SIGUSR1);  // the service answered: its working set is known
    }
    int status = daemon.Wait(60000);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadAll(dir_.File(log));
    EXPECT_EQ(Talk(port_, "SUM\n", "\n", 20000), all_) << "memory differs after the fill";
  }

  TempDir dir_;
  int port_ = 0;
  pid_t pid_ = 0;
  std::string hot_, all_;
};

TEST_F(WorkingSet, SecondLazyRestoreAnswersTheFirstRequestWithoutFaults) {
  Proc restored;
  LazyRestore({"--record-working-set"}, "record.log", true, &restored);
  uint64_t recorded = LazyStat(img(), "working_set_pages");
  uint64_t faults_recording = LazyStat(img(), "faults");
  // 300 scattered pages for the request, a few more to run at all.
  EXPECT_GE(recorded, 250u);
  EXPECT_GE(faults_recording, recorded);
  // The service's own binary was mapped and run from: its pages in use are noted, to be read
  // ahead next time.
  RunResult ws = RunCmd({LazarusBinary(), "show", img() + "/working-set.img"});
  EXPECT_NE(ws.output.find("\"path\": \"" + WorkloadBinary("wsservice") + "\""), std::string::npos)
      << ws.output;
  restored.Kill();

  LazyRestore({}, "prefetch.log", false, &restored);
  uint64_t faults = LazyStat(img(), "faults");
  uint64_t by_prefetch = LazyStat(img(), "pages_by_prefetch");
  EXPECT_LE(faults, 2u) << ReadAll(dir_.File("prefetch.log"));
  // Each page once, from the working set; but the working set is installed while the tree
  // runs, and a fault elsewhere brings its whole chunk, which may hold some of it.
  if (faults == 0) {
    EXPECT_EQ(by_prefetch, recorded) << ReadAll(dir_.File("prefetch.log"));
  } else {
    EXPECT_GE(by_prefetch, recorded / 2) << ReadAll(dir_.File("prefetch.log"));
  }
  restored.Kill();

  // Without it, the same request faults again (less than once a page: a fault brings its
  // whole chunk, and the chunks after it).
  LazyRestore({"--no-working-set"}, "plain.log", false, &restored);
  EXPECT_EQ(LazyStat(img(), "pages_by_prefetch"), 0u);
  EXPECT_GE(LazyStat(img(), "faults"), 100u);
}

TEST_F(WorkingSet, AWorkingSetOfOtherImagesIsIgnored) {
  Proc restored;
  LazyRestore({"--record-working-set"}, "record.log", true, &restored);
  ASSERT_GE(LazyStat(img(), "working_set_pages"), 250u);
  // Dumped again into the same directory: the working set belongs to the first images.
  RunResult d = Dump(pid_, img());
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(restored.ReapIfDead(5000));
  LazyRestore({}, "stale.log", false, &restored);
  EXPECT_NE(ReadAll(dir_.File("stale.log")).find("working set in " + img() + " is stale"),
            std::string::npos)
      << ReadAll(dir_.File("stale.log"));
  EXPECT_EQ(LazyStat(img(), "pages_by_prefetch"), 0u);
}

TEST_F(WorkingSet, ACorruptWorkingSetIsNeverCopiedIn) {
  Proc restored;
  LazyRestore({"--record-working-set"}, "record.log", true, &restored);
  restored.Kill();
  // One byte of the first stored chunk (after the 4 KiB header) flipped.
  std::fstream f(img() + "/working-set.pages", std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(4096 + 100);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x40);
  f.seekp(4096 + 100);
  f.write(&c, 1);
  f.close();
  // The pages come from the page stores instead; SUM in LazyRestore checks all of memory.
  LazyRestore({}, "corrupt.log", false, &restored);
  EXPECT_NE(ReadAll(dir_.File("corrupt.log")).find("working set not used"), std::string::npos)
      << ReadAll(dir_.File("corrupt.log"));
  EXPECT_EQ(LazyStat(img(), "pages_by_prefetch"), 0u);
}

}  // namespace
}  // namespace lz::e2e
