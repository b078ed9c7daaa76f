// A process tree: pids, parent links, process groups and wait() across a dump and restore.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "base/unique_fd.h"
#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

class Tree : public ::testing::TestWithParam<Mode> {};

// A datagram socket bound at `path`, as /dev/log is for a syslog client.
UniqueFd BindDgram(const std::string& path) {
  UniqueFd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  EXPECT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << path;
  return s;
}

// The next datagram on `s`, waiting up to `timeout_ms`; "" if none came.
std::string NextDatagram(int s, int timeout_ms) {
  pollfd p{s, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) {
    return "";
  }
  char buf[256];
  ssize_t n = ::recv(s, buf, sizeof buf, MSG_DONTWAIT);
  return n > 0 ? std::string(buf, n) : "";
}

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
  RunResult d = Dump(pid, dir.File("img"));
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

int CountLines(const std::string& path) {
  std::ifstream in(path);
  return static_cast<int>(
      std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n'));
}

// The pids a dump wrote images for (core-PID.img).
std::vector<pid_t> DumpedPids(const std::string& img) {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator(img)) {
    std::string n = e.path().filename();
    if (n.rfind("core-", 0) == 0) {
      out.push_back(std::stoi(n.substr(5)));
    }
  }
  return out;
}

// After a dump killed the tree: every task becomes ours (the subreaper) once its parent is
// gone; reap each of them by pid, within a bounded time.
void ReapDumped(std::vector<pid_t> pids) {
  for (int i = 0; i < 500 && !pids.empty(); i++) {
    std::erase_if(pids, [](pid_t p) { return waitpid(p, nullptr, WNOHANG) == p; });
    usleep(10000);
  }
  EXPECT_TRUE(pids.empty()) << "dumped tasks left unreaped";
}

TEST_P(Tree, FilesSharedBetweenProcessesStayShared) {
  TempDir dir;
  int port = FreePort();
  UniqueFd log_sock = BindDgram(dir.File("log.sock"));
  Proc w = Start({WorkloadBinary("shared"), dir.File("ready"), dir.File("result"), dir.File("data"),
                  std::to_string(port), dir.File("log.sock")},
                 dir.File("log"));
  std::string ready = WaitForFile(dir.File("ready"), 10000);
  ASSERT_NE(ready, "");
  std::istringstream ids(ready);
  pid_t pid, kid1, kid2;
  ids >> pid >> kid1 >> kid2;
  std::string before = Talk(port, "x", "\n", 5000);
  ASSERT_EQ(before, "child2 " + std::to_string(kid2) + " answer 1\n");
  RunResult d = Dump(pid, dir.File("img"));
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(w.ReapIfDead(5000));
  ReapDumped({kid1, kid2});
  Proc daemon;
  RunResult r = Restore(GetParam(), dir.File("img"), &daemon, dir.File("lazy.log"));
  ASSERT_EQ(r.status, 0) << r.output;
  Proc restored(pid);
  // One listening socket, bound once, still answered by the child that inherited it.
  EXPECT_EQ(Talk(port, "x", "\n", 5000), "child2 " + std::to_string(kid2) + " answer 2\n");
  EXPECT_EQ(NextDatagram(log_sock.get(), 0), "before-dump");
  kill(pid, SIGUSR1);
  EXPECT_EQ(WaitForFile(dir.File("result"), 10000), "PASS\n");
  // Connected again by name to the socket outside the tree.
  EXPECT_EQ(NextDatagram(log_sock.get(), 5000), "after-restore");
  EXPECT_TRUE(restored.ReapIfDead(10000));
}

// The rows of /proc/sysvipc/shm, without the times (attach and detach change them).
std::string Segments() {
  std::ifstream f("/proc/sysvipc/shm");
  std::string out;
  for (std::string row; std::getline(f, row);) {
    int key, id;
    if (sscanf(row.c_str(), "%d %d", &key, &id) == 2) {
      out += std::to_string(key) + " " + std::to_string(id) + "\n";
    }
  }
  return out;
}

// The shmem workload's keyed SysV segment (key 0x6c7a0000 | the low 16 bits of its pid) goes
// with the test, whatever fails.
struct WorkloadSegmentRemover {
  const pid_t* pid;
  ~WorkloadSegmentRemover() {
    int id = *pid > 0 ? shmget(static_cast<key_t>(0x6c7a0000 | (*pid & 0xffff)), 0, 0) : -1;
    if (id >= 0) {
      shmctl(id, IPC_RMID, nullptr);
    }
  }
};

// Starts workload `name` READY_FILE RESULT_FILE in `dir`, which writes "PID KID" when ready.
Proc StartWithKid(const char* name, const TempDir& dir, pid_t* pid, pid_t* kid) {
  Proc w = Start({WorkloadBinary(name), dir.File("ready"), dir.File("result")}, dir.File("log"));
  std::istringstream ids(WaitForFile(dir.File("ready"), 10000));
  ids >> *pid >> *kid;
  return w;
}

// Restores dir/img, tells the restored workload to check itself, and expects it to pass.
void RestoreAndExpectPass(Mode mode, const TempDir& dir, pid_t pid) {
  Proc daemon;
  RunResult r = Restore(mode, dir.File("img"), &daemon, dir.File("lazy.log"));
  ASSERT_EQ(r.status, 0) << r.output;
  Proc restored(pid);
  kill(pid, SIGUSR1);
  EXPECT_EQ(WaitForFile(dir.File("result"), 10000), "PASS\n");
  EXPECT_TRUE(restored.ReapIfDead(10000));
}

TEST_P(Tree, SharedMemoryStaysSharedBetweenProcesses) {
  TempDir dir;
  pid_t pid = -1, kid = -1;
  WorkloadSegmentRemover remover{&pid};
  Proc w = StartWithKid("shmem", dir, &pid, &kid);
  ASSERT_GT(kid, 0) << "the workload did not become ready";
  RunResult d = Dump(pid, dir.File("img"));
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(w.ReapIfDead(5000));
  ReapDumped({kid});
  // Saved once for the tree, not once per process: the 3 MiB memfd (1 MiB of it a hole), the
  // 2 MiB of anonymous shared memory, the mapped-only, the private and the sealed memfd, the
  // two SysV segments.
  RunResult show = RunCmd({LazarusBinary(), "show", dir.File("img/shmem.img")});
  ASSERT_EQ(show.status, 0) << show.output;
  size_t objects = 0;
  for (size_t at = 0; (at = show.output.find("\"pagemap_file\"", at)) != std::string::npos; at++) {
    objects++;
  }
  EXPECT_EQ(objects, 7u) << show.output;
  RestoreAndExpectPass(GetParam(), dir, pid);
}

// The SysV segment the dumped tree made, attached by someone else since: the restore cannot
// make it again with its id, and says so; once it is free, the restore goes through.
TEST_P(Tree, RestoreRefusesASysvSegmentStillInUse) {
  TempDir dir;
  pid_t pid = -1, kid = -1;
  WorkloadSegmentRemover remover{&pid};
  Proc w = StartWithKid("shmem", dir, &pid, &kid);
  ASSERT_GT(kid, 0) << "the workload did not become ready";
  int id = -1;
  std::ifstream segments("/proc/sysvipc/shm");
  for (std::string row; std::getline(segments, row);) {
    int key, shmid, cpid;
    if (sscanf(row.c_str(), "%d %d %*o %*u %d", &key, &shmid, &cpid) == 3 && cpid == pid &&
        key != 0) {
      id = shmid;
    }
  }
  ASSERT_GE(id, 0) << "the workload's keyed segment is not in /proc/sysvipc/shm";
  RunResult d = Dump(pid, dir.File("img"));
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(w.ReapIfDead(5000));
  ReapDumped({kid});
  void* held = shmat(id, nullptr, SHM_RDONLY);
  std::string before = Segments();
  ASSERT_NE(held, reinterpret_cast<void*>(-1)) << strerror(errno);
  RunResult refused = RunCmd({LazarusBinary(), "restore", "-D", dir.File("img"), "-d"});
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("attached by 1 process"), std::string::npos) << refused.output;
  EXPECT_EQ(Segments(), before) << "the refused restore left segments behind";
  std::ifstream next("/proc/sys/kernel/shm_next_id");
  int next_id = 0;
  next >> next_id;
  EXPECT_EQ(next_id, -1) << "the refused restore left shm_next_id set";
  shmdt(held);
  RestoreAndExpectPass(GetParam(), dir, pid);
}

TEST_P(Tree, ShellPipelineFlowsOnWithoutLosingALine) {
  TempDir dir;
  constexpr int kLines = 120;
  std::string out = dir.File("out");
  // The pipe joins two processes of the tree; the subshell forks a sleep for every line.
  Proc w = Start({"/bin/sh", "-c",
                  "i=0; while [ $i -lt " + std::to_string(kLines) +
                      " ]; do i=$((i+1)); echo $i; sleep 0.02; done | cat > " + out},
                 dir.File("log"));
  for (int i = 0; i < 500 && CountLines(out) < 10; i++) {
    usleep(10000);
  }
  RunResult d = Dump(w.pid(), dir.File("img"));
  ASSERT_EQ(d.status, 0) << d.output;
  pid_t pid = w.pid();
  ASSERT_TRUE(w.ReapIfDead(5000));
  std::vector<pid_t> others = DumpedPids(dir.File("img"));
  std::erase(others, pid);
  EXPECT_GE(others.size(), 2u) << "the subshell and cat (and maybe a sleep) were dumped too";
  ReapDumped(others);
  Proc daemon;
  RunResult r = Restore(GetParam(), dir.File("img"), &daemon, dir.File("lazy.log"));
  ASSERT_EQ(r.status, 0) << r.output;
  Proc restored(pid);
  int status = restored.Wait(30000);
  ASSERT_NE(status, -1) << "the restored pipeline did not finish";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::ifstream in(out);
  std::string line;
  int expect = 1;
  while (std::getline(in, line) && line == std::to_string(expect)) {
    expect++;
  }
  EXPECT_EQ(expect, kLines + 1) << "line " << expect << " is \"" << line << "\"";
}

}  // namespace
}  // namespace lz::e2e
