#include "parasite/remote.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "base/file_util.h"
#include "base/log.h"

// A syscall instruction in our own text, for threads forked from lazarus.
extern "C" char lz_syscall_insn[];
asm(".pushsection .text\n"
    ".globl lz_syscall_insn\n"
    "lz_syscall_insn:\n"
    "  syscall\n"
    "  int3\n"
    ".popsection\n");

namespace lz {

uint64_t OwnSyscallInsn() { return reinterpret_cast<uint64_t>(lz_syscall_insn); }

long FindSyscallInsn(std::span<const std::byte> code) {
  for (size_t i = 0; i + 1 < code.size(); i++) {
    if (code[i] == std::byte{0x0f} && code[i + 1] == std::byte{0x05}) {
      return static_cast<long>(i);
    }
  }
  return -1;
}

Status RemoteThread::ResumeToSyscallStop(bool want_exit) {
  if (::ptrace(PTRACE_SYSCALL, tid_, nullptr, nullptr) != 0) {
    return FailErrno("ptrace syscall", "tid " + std::to_string(tid_));
  }
  for (;;) {
    LZ_ASSIGN_OR_RETURN(int status, WaitForStop(tid_));
    int sig = WSTOPSIG(status);
    int event = status >> 16;
    if (sig == (SIGTRAP | 0x80)) {
      return Ok();
    }
    if (event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK || event == PTRACE_EVENT_VFORK) {
      unsigned long child = 0;
      ::ptrace(PTRACE_GETEVENTMSG, tid_, nullptr, &child);
      new_tasks_.push_back(static_cast<pid_t>(child));
    } else if (event == 0 && sig != SIGTRAP) {
      // A signal arrived while we drive the thread. The dump blocks every signal first, so this
      // is a restore, where the signal is an artefact of rebuilding the tree (SIGCHLD from a
      // zombie being re-made) and must not reach the task: the dumped pending signals are
      // queued separately. It is dropped by resuming without it.
      LZ_DEBUG("tid %d: dropped signal %d during a remote syscall%s", tid_, sig,
               want_exit ? " (in the syscall)" : "");
    }
    if (::ptrace(PTRACE_SYSCALL, tid_, nullptr, nullptr) != 0) {
      return FailErrno("ptrace syscall", "tid " + std::to_string(tid_));
    }
  }
}

Result<long> RemoteThread::RawSyscall(long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                      uint64_t a5, uint64_t a6) {
  new_tasks_.clear();
  LZ_ASSIGN_OR_RETURN(Regs regs, GetRegs(tid_));
  regs.rip = insn_;
  regs.rax = nr;
  // Invariant: orig_rax -1 keeps the kernel's syscall-restart logic away from our registers.
  regs.orig_rax = static_cast<unsigned long long>(-1);
  regs.rdi = a1;
  regs.rsi = a2;
  regs.rdx = a3;
  regs.r10 = a4;
  regs.r8 = a5;
  regs.r9 = a6;
  LZ_TRY(SetRegs(tid_, regs));
  LZ_TRY(ResumeToSyscallStop(false));  // syscall-entry stop
  LZ_TRY(ResumeToSyscallStop(true));   // syscall-exit stop
  LZ_ASSIGN_OR_RETURN(Regs after, GetRegs(tid_));
  return static_cast<long>(after.rax);
}

Result<long> RemoteThread::Syscall(const char* what, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
                                   uint64_t a4, uint64_t a5, uint64_t a6) {
  LZ_LOG(kTrace, "tid %d: remote %s (%ld) %#lx %#lx %#lx", tid_, what, nr, a1, a2, a3);
  auto raw = RawSyscall(nr, a1, a2, a3, a4, a5, a6);
  if (!raw) {
    return Unexpected{raw.error().Wrap(std::string("remote ") + what)};
  }
  long r = *raw;
  if (r < 0 && r > -4096) {
    return Fail(static_cast<int>(-r), std::string("remote ") + what,
                "in tid " + std::to_string(tid_));
  }
  return r;
}

namespace {

Result<UniqueFd> OpenMem(pid_t pid, int flags) {
  return OpenFile("/proc/" + std::to_string(pid) + "/mem", flags);
}

}  // namespace

Status ReadRemote(pid_t pid, uint64_t addr, std::span<std::byte> out) {
  LZ_ASSIGN_OR_RETURN(UniqueFd fd, OpenMem(pid, O_RDONLY));
  LZ_ASSIGN_OR_RETURN(size_t n, PreadFull(fd.get(), out, addr));
  if (n != out.size()) {
    return Fail(EIO, "read memory", "pid " + std::to_string(pid) + " at " + std::to_string(addr));
  }
  return Ok();
}

Status WriteRemote(pid_t pid, uint64_t addr, std::span<const std::byte> data) {
  LZ_ASSIGN_OR_RETURN(UniqueFd fd, OpenMem(pid, O_WRONLY));
  std::string what = "memory of pid " + std::to_string(pid);
  return PwriteAll(fd.get(), data, addr, what.c_str());
}

}  // namespace lz

namespace lz {

Result<uint64_t> FindVdsoSyscallInsn(pid_t pid) {
  LZ_ASSIGN_OR_RETURN(std::string maps, ReadFileToString("/proc/" + std::to_string(pid) + "/maps"));
  for (std::string_view line : SplitString(maps, '\n')) {
    if (line.find("[vdso]") == std::string_view::npos) {
      continue;
    }
    auto dash = line.find('-');
    auto space = line.find(' ');
    uint64_t start, end;
    if (dash == std::string_view::npos || space == std::string_view::npos ||
        !ParseU64(line.substr(0, dash), &start, 16) ||
        !ParseU64(line.substr(dash + 1, space - dash - 1), &end, 16) || end <= start ||
        end - start > (1 << 20)) {
      return Invalid("parse maps", "bad [vdso] line of pid " + std::to_string(pid));
    }
    std::vector<std::byte> code(end - start);
    LZ_TRY(ReadRemote(pid, start, code));
    long off = FindSyscallInsn(code);
    if (off < 0) {
      return Invalid("vdso", "no syscall instruction in the vdso of pid " + std::to_string(pid));
    }
    return start + off;
  }
  return Invalid("vdso", "pid " + std::to_string(pid) + " has no [vdso] mapping");
}

}  // namespace lz
