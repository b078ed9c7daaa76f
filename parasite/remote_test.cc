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
#include <optional>
#include <vector>

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

// A thread seized for a test, stopped, with the registers it had to be given back.
struct Driven {
  PtraceAttachment att;
  Regs saved;
  RemoteThread rt;
};

// Seizes `pid` and readies remote syscalls through its vDSO (nullopt, with the reason reported
// to gtest, when that fails).
std::optional<Driven> Drive(pid_t pid) {
  auto att = SeizeAndStop(pid, PTRACE_O_TRACESYSGOOD);
  if (!att) {
    ADD_FAILURE() << att.error().Message();
    return std::nullopt;
  }
  auto saved = GetRegs(pid);
  auto insn = FindVdsoSyscallInsn(pid);
  if (!saved || !insn) {
    ADD_FAILURE() << (saved ? insn.error() : saved.error()).Message();
    return std::nullopt;
  }
  return Driven{std::move(*att), *saved, RemoteThread(pid, *insn)};
}

// Gives the child its registers back, detaches, and checks that it counts on.
void ExpectResumes(CountingChild& child, Driven& d) {
  ASSERT_TRUE(SetRegs(child.pid(), d.saved));
  d.att.Detach();
  uint64_t before = child.count();
  usleep(50000);
  EXPECT_GT(child.count(), before) << "the child did not resume";
}

TEST(Remote, FindSyscallInsn) {
  std::byte code[] = {std::byte{0x90}, std::byte{0x0f}, std::byte{0x05}};
  EXPECT_EQ(FindSyscallInsn(code), 1);
  EXPECT_EQ(FindSyscallInsn(std::span(code, 2)), -1);
}

TEST(Remote, SyscallsRunInTheTargetAndItResumes) {
  CountingChild child;
  usleep(20000);
  std::optional<Driven> d = Drive(child.pid());
  ASSERT_TRUE(d);
  RemoteThread& rt = d->rt;

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

  ExpectResumes(child, *d);
}

// A batch runs its calls in order in one stop; a call marked may_fail leaves its error in its
// result and the batch goes on; any other failing call stops the batch and names itself.
TEST(Remote, BatchRunsInOrderAndStopsAtTheFirstRealFailure) {
  CountingChild child;
  usleep(20000);
  std::optional<Driven> d = Drive(child.pid());
  ASSERT_TRUE(d);
  RemoteThread& rt = d->rt;
  auto area = rt.Syscall("mmap", SYS_mmap, 0, kBatchAreaSize, PROT_READ | PROT_WRITE | PROT_EXEC,
                         MAP_PRIVATE | MAP_ANONYMOUS, static_cast<uint64_t>(-1), 0);
  ASSERT_TRUE(area) << area.error().Message();
  uint64_t at = static_cast<uint64_t>(*area);

  std::vector<RemoteCall> calls = {{"getpid", SYS_getpid, {}},
                                   {"close", SYS_close, {100000}, /*may_fail=*/true},
                                   {"getppid", SYS_getppid, {}}};
  std::vector<long> results;
  ASSERT_TRUE(rt.RunBatch(calls, at, &results));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0], child.pid());
  EXPECT_EQ(results[1], -EBADF);
  EXPECT_EQ(results[2], getpid());

  calls[1].may_fail = false;
  auto st = rt.RunBatch(calls, at, &results);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code, EBADF);
  EXPECT_NE(st.error().Message().find("remote close"), std::string::npos);
  EXPECT_EQ(results.size(), 1u) << "only the call before the failure ran";

  ASSERT_TRUE(rt.Syscall("munmap", SYS_munmap, at, kBatchAreaSize));
  ExpectResumes(child, *d);
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
    std::optional<Driven> d = Drive(pid);
    ASSERT_TRUE(d);
    ASSERT_TRUE(d->rt.Syscall("getpid", SYS_getpid));
    ASSERT_TRUE(SetRegs(pid, d->saved));
    kill(pid, SIGSTOP);
    d->att.Detach();
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

TEST(Rseq, AbortTargetOnlyInsideTheSequence) {
  RseqCs cs{0, 0, 0x1000, 0x20, 0x2000};
  EXPECT_EQ(RseqAbortTarget(0x1000, cs), 0x2000u);
  EXPECT_EQ(RseqAbortTarget(0x101f, cs), 0x2000u);
  EXPECT_FALSE(RseqAbortTarget(0x1020, cs)) << "the commit instruction is past the sequence";
  EXPECT_FALSE(RseqAbortTarget(0xfff, cs));
  cs.version = 1;
  EXPECT_FALSE(RseqAbortTarget(0x1000, cs)) << "unknown descriptor versions are left alone";
}

// glibc registers rseq for every thread; the area sits at the thread pointer + __rseq_offset.
extern "C" const ptrdiff_t __rseq_offset;

// Spins forever inside a restartable sequence of its own. A preemption sends it to the abort
// handler, which re-arms the sequence and goes back in.
[[noreturn]] void SpinInsideRseq() {
  static RseqCs cs;
  char* area = static_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
  asm volatile(
      "leaq 1f(%%rip), %%rax\n\t"
      "movq %%rax, 8(%[cs])\n\t"
      "leaq 2f(%%rip), %%rcx\n\t"
      "subq %%rax, %%rcx\n\t"
      "movq %%rcx, 16(%[cs])\n\t"
      "leaq 4f(%%rip), %%rax\n\t"
      "movq %%rax, 24(%[cs])\n\t"
      "3: movq %[cs], 8(%[area])\n\t"
      "1: jmp 1b\n\t"
      "2: jmp 2b\n\t"
      ".long 0x53053053\n\t"  // glibc's rseq signature on x86, checked by the kernel
      "4: jmp 3b\n\t"
      :
      : [cs] "r"(&cs), [area] "r"(area)
      : "rax", "rcx", "memory");
  __builtin_unreachable();
}

TEST(Rseq, AThreadStoppedInsideItsSequenceResumesAtTheAbortHandler) {
  pid_t child = fork();
  if (child == 0) {
    SpinInsideRseq();
  }
  usleep(50000);
  int found = 0;
  for (int attempt = 0; attempt < 20 && found == 0; attempt++) {
    auto att = SeizeAndStop(child, 0);
    ASSERT_TRUE(att) << att.error().Message();
    auto regs = GetRegs(child);
    auto rseq = GetRseqConfig(child);
    ASSERT_TRUE(regs && rseq);
    ASSERT_NE(rseq->addr, 0u) << "glibc did not register rseq";
    auto target = RseqAbortTargetOf(child, *rseq, regs->rip);
    ASSERT_TRUE(target) << target.error().Message();
    if (*target) {
      EXPECT_NE(**target, regs->rip);
      uint32_t sig = 0;
      ASSERT_TRUE(ReadRemote(child, **target - 4, std::as_writable_bytes(std::span(&sig, 1))));
      EXPECT_EQ(sig, rseq->sig) << "the target must be the registered abort handler";
      found++;
    }
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_GT(found, 0) << "never stopped inside the sequence";
}

}  // namespace
}  // namespace lz
