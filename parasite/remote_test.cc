#include "parasite/remote.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace lz {
namespace {

// A child that counts in shared memory forever; the test kills and reaps it by pid.
class CountingChild {
 public:
  CountingChild() {
    counter_ = static_cast<std::atomic<uint64_t>*>(
        mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    pid_ = fork();
    if (pid_ == 0) {
      for (;;) {
        counter_->fetch_add(1);
        usleep(100);
      }
    }
  }
  ~CountingChild() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    munmap(counter_, 4096);
  }
  pid_t pid() const { return pid_; }
  uint64_t count() const { return counter_->load(); }

 private:
  pid_t pid_;
  std::atomic<uint64_t>* counter_;
};

TEST(Remote, FindSyscallInsn) {
  std::byte code[] = {std::byte{0x90}, std::byte{0x0f}, std::byte{0x05}};
  EXPECT_EQ(FindSyscallInsn(code), 1);
  EXPECT_EQ(FindSyscallInsn(std::span(code, 2)), -1);
}

TEST(Remote, SyscallsRunInTheTargetAndItResumes) {
  CountingChild child;
  usleep(20000);
  auto att = SeizeAndStop(child.pid(), PTRACE_O_TRACESYSGOOD);
  ASSERT_TRUE(att) << att.error().Message();
  auto saved = GetRegs(child.pid());
  ASSERT_TRUE(saved);
  auto insn = FindVdsoSyscallInsn(child.pid());
  ASSERT_TRUE(insn) << insn.error().Message();
  RemoteThread rt(child.pid(), *insn);

  auto pid = rt.Syscall("getpid", SYS_getpid);
  ASSERT_TRUE(pid) << pid.error().Message();
  EXPECT_EQ(*pid, child.pid());

  // mmap a page inside the child, write through /proc/PID/mem, read it back.
  auto addr = rt.Syscall("mmap", SYS_mmap, 0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS,
                         static_cast<uint64_t>(-1), 0);
  ASSERT_TRUE(addr) << addr.error().Message();
  const char msg[] = "written from outside";
  ASSERT_TRUE(WriteRemote(child.pid(), *addr, std::as_bytes(std::span(msg))));
  char back[sizeof msg] = {};
  ASSERT_TRUE(ReadRemote(child.pid(), *addr, std::as_writable_bytes(std::span(back))));
  EXPECT_STREQ(back, msg);
  ASSERT_TRUE(rt.Syscall("munmap", SYS_munmap, *addr, 4096));

  // A failing syscall reports the kernel's errno and names itself.
  auto bad = rt.Syscall("close", SYS_close, 100000);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, EBADF);
  EXPECT_NE(bad.error().Message().find("remote close"), std::string::npos);

  ASSERT_TRUE(SetRegs(child.pid(), *saved));
  att->Detach();
  uint64_t before = child.count();
  usleep(50000);
  EXPECT_GT(child.count(), before) << "the child did not resume";
}

// A thread stopped in pause() by the freeze, driven, given back its registers verbatim and
// detached into a group stop: a signal with a handler that arrives while it is stopped must
// make pause() return EINTR once it runs again, as if lazarus had never been there.
TEST(Remote, InterruptedSyscallKeepsItsKernelSemantics) {
  auto* shared = static_cast<std::atomic<int>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  shared[0] = 0;  // pause() returns
  shared[1] = 0;  // errno of the last one
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGUSR1, [](int) {});
    for (;;) {
      int r = pause();
      shared[1] = r < 0 ? errno : 0;
      shared[0]++;
    }
  }
  usleep(20000);
  {
    auto att = SeizeAndStop(pid, PTRACE_O_TRACESYSGOOD);
    ASSERT_TRUE(att) << att.error().Message();
    auto saved = GetRegs(pid);
    ASSERT_TRUE(saved);
    auto insn = FindVdsoSyscallInsn(pid);
    ASSERT_TRUE(insn);
    RemoteThread rt(pid, *insn);
    ASSERT_TRUE(rt.Syscall("getpid", SYS_getpid));
    ASSERT_TRUE(SetRegs(pid, *saved));
    kill(pid, SIGSTOP);
    att->Detach();
  }
  usleep(50000);
  kill(pid, SIGUSR1);  // arrives while stopped
  usleep(20000);
  EXPECT_EQ(shared[0].load(), 0);
  kill(pid, SIGCONT);
  for (int i = 0; i < 100 && shared[0].load() == 0; i++) {
    usleep(5000);
  }
  EXPECT_EQ(shared[0].load(), 1) << "pause() did not return after its handler ran";
  EXPECT_EQ(shared[1].load(), EINTR);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  munmap(shared, 4096);
}

}  // namespace
}  // namespace lz
