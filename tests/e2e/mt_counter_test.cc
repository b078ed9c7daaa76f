// The multi-threaded C workload through every path: dump, eager and lazy restore, repeated
// restores, dump of a restored process, failures that must leave the workload untouched.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "base/clock.h"
#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

int ThreadCount(pid_t pid) {
  int n = 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Threads:", 0) == 0) {
      n = std::stoi(line.substr(8));
    }
  }
  return n;
}

std::string TracerOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("TracerPid:", 0) == 0) {
      return std::string(line.substr(10).find_first_not_of(" \t") == std::string::npos
                             ? ""
                             : line.substr(10 + line.substr(10).find_first_not_of(" \t")));
    }
  }
  return "?";
}

class MtCounter : public ::testing::TestWithParam<Mode> {
 protected:
  // Starts the workload with `mb` MiB of memory and waits until it is ready.
  Proc StartWorkload(int mb, const std::string& extra = "") {
    std::vector<std::string> argv = {WorkloadBinary("mt_counter"), dir_.File("ready"),
                                     dir_.File("result"), std::to_string(mb)};
    if (!extra.empty()) {
      argv.push_back(extra);
    }
    Proc p = Start(argv, dir_.File("workload.log"));
    EXPECT_NE(WaitForFile(dir_.File("ready"), 10000), "") << "workload did not start";
    return p;
  }

  std::string Images(const std::string& name = "img") { return dir_.File(name); }

  // Restores `images` in the test's mode and adopts the restored root.
  Proc RestoreAndAdopt(pid_t pid, const std::string& images) {
    RunResult r = Restore(GetParam(), images, &daemon_, dir_.File("lazy.log"));
    EXPECT_EQ(r.status, 0) << r.output;
    return Proc(pid);
  }

  // Asks the workload to check itself and returns its verdict.
  std::string Verdict(pid_t pid) {
    ::unlink(dir_.File("result").c_str());
    kill(pid, SIGUSR1);
    return WaitForFile(dir_.File("result"), 10000);
  }

  void ExpectDaemonDone() {
    if (GetParam() != Mode::kLazy) {
      return;
    }
    int status = daemon_.Wait(20000);
    ASSERT_NE(status, -1) << "lazy-pages daemon did not finish";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "daemon status " << status;
  }

  TempDir dir_;
  Proc daemon_;
};

TEST_P(MtCounter, RestoredTreeContinuesWithIdenticalMemory) {
  Proc w = StartWorkload(64);
  pid_t pid = w.pid();
  RunResult d = Dump(pid, Images());
  ASSERT_EQ(d.status, 0) << d.output;
  // The default after a dump, as with CRIU: the dumped tree is killed.
  ASSERT_TRUE(w.ReapIfDead(5000)) << "dumped task still running";
  Proc restored = RestoreAndAdopt(pid, Images());
  EXPECT_EQ(ThreadCount(pid), 5) << "every thread comes back";
  std::string v = Verdict(pid);
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
  ExpectDaemonDone();
}

TEST_P(MtCounter, LeaveRunningThenRestoreTwice) {
  Proc w = StartWorkload(16);
  pid_t pid = w.pid();
  RunResult d = Dump(pid, Images(), {"-R"});
  ASSERT_EQ(d.status, 0) << d.output;
  EXPECT_EQ(TracerOf(pid), "0") << "the task is left traced";
  std::string v = Verdict(pid);
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << "after -R the original runs on: " << v;
  w.Kill();
  for (int round = 0; round < 2; round++) {
    Proc restored = RestoreAndAdopt(pid, Images());
    v = Verdict(pid);
    EXPECT_EQ(v.rfind("PASS", 0), 0u) << "round " << round << ": " << v;
    ExpectDaemonDone();
    restored.Kill();
  }
}

TEST_P(MtCounter, RestoredProcessCanBeDumpedAgain) {
  Proc w = StartWorkload(16);
  pid_t pid = w.pid();
  ASSERT_EQ(Dump(pid, Images("one")).status, 0);
  ASSERT_TRUE(w.ReapIfDead(5000));
  Proc first = RestoreAndAdopt(pid, Images("one"));
  ExpectDaemonDone();
  RunResult d = Dump(pid, Images("two"));
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(first.ReapIfDead(5000));
  Proc second = RestoreAndAdopt(pid, Images("two"));
  std::string v = Verdict(pid);
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
  ExpectDaemonDone();
}

INSTANTIATE_TEST_SUITE_P(Modes, MtCounter, ::testing::Values(Mode::kEager, Mode::kLazy),
                         [](const auto& info) { return std::string(ModeName(info.param)); });

class MtCounterFailures : public MtCounter {
 protected:
  // Dumps the workload set up with `mode`: the dump is refused with `why` in its message, and
  // the task is left running as it was (untraced, and it passes its own checks). Returns the
  // dump's output.
  std::string ExpectRefusedAndRunsOn(const std::string& mode, const std::string& why) {
    Proc w = StartWorkload(8, mode);
    RunResult d = Dump(w.pid(), Images());
    EXPECT_NE(d.status, 0);
    EXPECT_NE(d.output.find(why), std::string::npos) << d.output;
    EXPECT_EQ(TracerOf(w.pid()), "0");
    std::string v = Verdict(w.pid());
    EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
    return d.output;
  }
};

TEST_P(MtCounterFailures, UnsupportedFdLeavesTheTaskRunningAsItWas) {
  std::string out = ExpectRefusedAndRunsOn("pidfd", "is not supported");
  EXPECT_NE(out.find("fd "), std::string::npos) << out;
  // The directory is marked incomplete and refused.
  RunResult r = RunCmd({LazarusBinary(), "restore", "-D", Images(), "-d"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("did not complete"), std::string::npos) << r.output;
}

// A descriptor in flight on a unix socket cannot be queued again as it was: refused, with the
// task left running.
TEST_P(MtCounterFailures, DescriptorInFlightIsRefusedAndTheTaskRunsOn) {
  ExpectRefusedAndRunsOn("passed-fd", "with descriptors or credentials");
}

// The kernel's answer to a request, queued and unread: restored without it the task would wait
// for it forever, so the socket is refused.
TEST_P(MtCounterFailures, NetlinkAnswerQueuedIsRefusedAndTheTaskRunsOn) {
  ExpectRefusedAndRunsOn("netlink-answer", "netlink socket with messages queued");
}

// A datagram from a socket with an address: restored from another socket, the answer to it
// would go nowhere, so the dump refuses it.
TEST_P(MtCounterFailures, DatagramFromANamedSenderIsRefusedAndTheTaskRunsOn) {
  ExpectRefusedAndRunsOn("named-sender", "from senders with an address");
}

// A thread under seccomp could be killed by the parasite's first remote syscall: the task is
// refused before any runs (this filter kills the process on a one-page mmap).
TEST_P(MtCounterFailures, SeccompIsRefusedBeforeAnyRemoteSyscall) {
  ExpectRefusedAndRunsOn("seccomp", "seccomp filters are not supported yet");
}

// A child whose main thread exited while another thread runs on looks like a zombie in /proc;
// dumped as one, its running thread would be lost.
TEST_P(MtCounterFailures, AProcessWhoseMainThreadExitedIsRefused) {
  ExpectRefusedAndRunsOn("main-exits", "has exited and its other threads run on");
}

// A thread that cannot stop (here: a vfork() parent while its child sleeps) fails the dump at
// --timeout instead of hanging it with the rest of the tree frozen.
TEST_P(MtCounterFailures, AThreadThatCannotStopFailsTheDumpAtTheTimeout) {
  Proc w = StartWorkload(8, "vfork");
  uint64_t t0 = MonotonicNs();
  RunResult d = Dump(w.pid(), Images(), {"--timeout", "1"});
  EXPECT_NE(d.status, 0);
  EXPECT_LT(MonotonicNs() - t0, 3'000'000'000ull) << "the dump waited past its timeout";
  EXPECT_NE(d.output.find("did not stop in time"), std::string::npos) << d.output;
  EXPECT_EQ(TracerOf(w.pid()), "0");
  std::string v = Verdict(w.pid());  // once the vfork child is done
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
}

// SIGTERM to lazarus while it dumps: every task goes on as it was, and the dump fails with one
// line saying why (dying at once would leave the threads stopped, every signal blocked).
TEST_P(MtCounterFailures, SigtermDuringTheDumpLeavesTheTaskAsItWas) {
  Proc w = StartWorkload(1024);
  Proc dump = Start({LazarusBinary(), "dump", "-t", std::to_string(w.pid()), "-D", Images()},
                    dir_.File("dump.log"));
  usleep(300000);  // frozen by now, and far from done with 1 GiB
  kill(dump.pid(), SIGTERM);
  int status = dump.Wait(20000);
  std::ifstream log(dir_.File("dump.log"));
  std::stringstream out;
  out << log.rdbuf();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << status << " " << out.str();
  EXPECT_NE(out.str().find("interrupted by SIGTERM"), std::string::npos) << out.str();
  EXPECT_EQ(TracerOf(w.pid()), "0");
  std::string v = Verdict(w.pid());
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
  RunResult r = RunCmd({LazarusBinary(), "restore", "-D", Images(), "-d"});
  EXPECT_NE(r.status, 0) << "an interrupted dump was restored";
}

// With no timeout (--timeout 0), a freeze waiting on a thread that cannot stop still ends
// at SIGTERM, with the tree let go.
TEST_P(MtCounterFailures, SigtermEndsAFreezeWithoutATimeout) {
  Proc w = StartWorkload(8, "vfork");
  Proc dump = Start(
      {LazarusBinary(), "dump", "-t", std::to_string(w.pid()), "-D", Images(), "--timeout", "0"},
      dir_.File("dump.log"));
  usleep(500000);
  kill(dump.pid(), SIGTERM);
  int status = dump.Wait(5000);
  std::ifstream log(dir_.File("dump.log"));
  std::stringstream out;
  out << log.rdbuf();
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 0)
      << status << " " << out.str();
  EXPECT_NE(out.str().find("interrupted by SIGTERM while freezing"), std::string::npos)
      << out.str();
  EXPECT_EQ(TracerOf(w.pid()), "0");
  std::string v = Verdict(w.pid());
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
}

// Under nohup, SIGHUP is ignored: it must not stop the dump (a blocked signal is queued even
// when ignored, so it is not held).
TEST_P(MtCounterFailures, AnIgnoredSighupDoesNotStopTheDump) {
  RequireBinary("/usr/bin/nohup");
  Proc w = StartWorkload(512);
  Proc dump = Start({"/usr/bin/nohup", LazarusBinary(), "dump", "-t", std::to_string(w.pid()), "-D",
                     Images(), "-R"},
                    dir_.File("dump.log"));
  usleep(200000);
  kill(dump.pid(), SIGHUP);  // nohup has exec'd lazarus: the same pid
  int status = dump.Wait(20000);
  std::ifstream log(dir_.File("dump.log"));
  std::stringstream out;
  out << log.rdbuf();
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << status << " " << out.str();
  EXPECT_EQ(access((Images() + "/inventory.img").c_str(), F_OK), 0) << out.str();
  std::string v = Verdict(w.pid());
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
}

TEST_P(MtCounterFailures, RestoreRefusesATakenPid) {
  Proc w = StartWorkload(8);
  ASSERT_EQ(Dump(w.pid(), Images(), {"-R"}).status, 0);
  RunResult r = RunCmd({LazarusBinary(), "restore", "-D", Images(), "-d"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("pid " + std::to_string(w.pid()) + " is taken"), std::string::npos)
      << r.output;
  std::string v = Verdict(w.pid());
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
}

// The daemon dies before the memory is home: the restored task must not run on with pages
// that never came; the guard kills it.
TEST_P(MtCounterFailures, DaemonKilledMidwayKillsTheRestoredTask) {
  Proc w = StartWorkload(32);
  pid_t pid = w.pid();
  ASSERT_EQ(Dump(pid, Images()).status, 0);
  ASSERT_TRUE(w.ReapIfDead(5000));
  // The background fill waits a minute, so the daemon is surely killed before it is done.
  Proc daemon = Start({LazarusBinary(), "lazy-pages", "-D", Images(), "--fill-delay", "60000"},
                      dir_.File("lazy.log"));
  RunResult r = RunCmd({LazarusBinary(), "restore", "-D", Images(), "-d", "--lazy-pages"});
  ASSERT_EQ(r.status, 0) << r.output;
  Proc restored(pid);
  daemon.Kill();
  int status = restored.Wait(10000);
  ASSERT_NE(status, -1) << "the restored task was not stopped";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  std::ifstream log(dir_.File("lazy.log"));
  std::stringstream ss;
  ss << log.rdbuf();
  EXPECT_NE(ss.str().find("daemon died before all memory was restored"), std::string::npos)
      << ss.str();
}

INSTANTIATE_TEST_SUITE_P(Once, MtCounterFailures, ::testing::Values(Mode::kEager),
                         [](const auto&) { return std::string("eager"); });

TEST(BadInput, WrongPidGivesOneClearLine) {
  TempDir dir;
  RunResult r = RunCmd({LazarusBinary(), "dump", "-t", "999999", "-D", dir.File("x")});
  EXPECT_NE(r.status, 0);
  EXPECT_EQ(r.output, "Error: dump no process with pid 999999: No such process\n");
}

TEST(BadInput, MissingImagesDir) {
  RunResult r = RunCmd({LazarusBinary(), "restore", "-D", "/nonexistent/lazarus", "-d"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no dump in /nonexistent/lazarus"), std::string::npos) << r.output;
}

TEST(BadInput, LazyRestoreWithoutDaemon) {
  TempDir dir;
  Proc w = Start({WorkloadBinary("mt_counter"), dir.File("ready"), dir.File("result"), "4"},
                 dir.File("log"));
  ASSERT_NE(WaitForFile(dir.File("ready"), 10000), "");
  pid_t pid = w.pid();
  ASSERT_EQ(Dump(pid, dir.File("img")).status, 0);
  ASSERT_TRUE(w.ReapIfDead(5000));
  RunResult r = RunCmd({LazarusBinary(), "restore", "-D", dir.File("img"), "-d", "--lazy-pages"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("cannot reach the lazy-pages daemon"), std::string::npos) << r.output;
  EXPECT_NE(kill(pid, 0), 0) << "nothing may be left half-restored";
}

TEST(BadInput, CorruptImageNamesFileAndOffset) {
  TempDir dir;
  Proc w = Start({WorkloadBinary("mt_counter"), dir.File("ready"), dir.File("result"), "4"},
                 dir.File("log"));
  ASSERT_NE(WaitForFile(dir.File("ready"), 10000), "");
  std::string img = dir.File("img");
  pid_t pid = w.pid();
  ASSERT_EQ(Dump(pid, img).status, 0);
  ASSERT_TRUE(w.ReapIfDead(5000));
  std::string core = img + "/core-" + std::to_string(pid) + ".img";
  {
    std::fstream f(core, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.is_open()) << core;
    f.seekp(40);
    char c = 0x55;
    f.write(&c, 1);
  }
  RunResult r = RunCmd({LazarusBinary(), "restore", "-D", img, "-d"});
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find(core), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("offset"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
}

}  // namespace
}  // namespace lz::e2e
