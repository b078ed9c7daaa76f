#include "parasite/remote.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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

// The loop RunBatch copies into the task: position-independent (relative jumps only). r12 points
// at a table of 64-byte entries {nr, a1..a6, result}, r13 counts them. It stops (int3) after
// the last entry or at the first whose result is an error, unless bit 63 of its nr says it may
// fail; r13 then says how many were left.
extern "C" char lz_batch_code[];
extern "C" char lz_batch_code_end[];
asm(".pushsection .text\n"
    ".globl lz_batch_code\n"
    ".globl lz_batch_code_end\n"
    "lz_batch_code:\n"
    "1: test %r13, %r13\n"
    "  jz 2f\n"
    "  mov (%r12), %rax\n"
    "  mov %rax, %r14\n"
    "  btr $63, %rax\n"
    "  mov 8(%r12), %rdi\n"
    "  mov 16(%r12), %rsi\n"
    "  mov 24(%r12), %rdx\n"
    "  mov 32(%r12), %r10\n"
    "  mov 40(%r12), %r8\n"
    "  mov 48(%r12), %r9\n"
    "  syscall\n"
    "  mov %rax, 56(%r12)\n"
    "  bt $63, %r14\n"
    "  jc 3f\n"
    "  cmp $-4095, %rax\n"
    "  jae 2f\n"
    "3: add $64, %r12\n"
    "  dec %r13\n"
    "  jmp 1b\n"
    "2: int3\n"
    "lz_batch_code_end:\n"
    ".popsection\n");

namespace lz {
namespace {

constexpr size_t kBatchCodeSpace = 256;  // the code, then the table
constexpr size_t kBatchEntry = 64;
constexpr size_t kBatchMax = (kBatchAreaSize - kBatchCodeSpace) / kBatchEntry;

}  // namespace

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
      // queued separately. It is dropped by resuming without it. SIGSTOP, which no mask holds
      // back, is noted: the dump sends it again (ParasiteSession::Finish).
      LZ_DEBUG("tid %d: dropped signal %d during a remote syscall%s", tid_, sig,
               want_exit ? " (in the syscall)" : "");
      stopped_meanwhile_ = stopped_meanwhile_ || sig == SIGSTOP;
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

Status RemoteThread::RunBatch(std::span<const RemoteCall> calls, uint64_t area,
                              std::vector<long>* results) {
  results->clear();
  for (size_t done = 0; done < calls.size(); done += kBatchMax) {
    LZ_TRY(RunBatchRound(calls.subspan(done, std::min(kBatchMax, calls.size() - done)), area,
                         results));
  }
  return Ok();
}

Status RemoteThread::RunBatchRound(std::span<const RemoteCall> calls, uint64_t area,
                                   std::vector<long>* results) {
  size_t code_len = static_cast<size_t>(lz_batch_code_end - lz_batch_code);
  std::vector<uint64_t> image(kBatchCodeSpace / 8 + calls.size() * kBatchEntry / 8, 0);
  std::memcpy(image.data(), lz_batch_code, code_len);
  uint64_t* table = image.data() + kBatchCodeSpace / 8;
  for (size_t i = 0; i < calls.size(); i++) {
    uint64_t* e = table + i * kBatchEntry / 8;
    e[0] = static_cast<uint64_t>(calls[i].nr) | (calls[i].may_fail ? uint64_t{1} << 63 : 0);
    std::memcpy(e + 1, calls[i].args, sizeof calls[i].args);
  }
  pid_t pid = tid_;  // the task's memory: any of its threads
  LZ_TRY(WriteRemote(pid, area, std::as_bytes(std::span(image))));
  LZ_ASSIGN_OR_RETURN(Regs regs, GetRegs(tid_));
  regs.rip = area;
  regs.orig_rax = static_cast<unsigned long long>(-1);
  regs.r12 = area + kBatchCodeSpace;
  regs.r13 = calls.size();
  LZ_TRY(SetRegs(tid_, regs));
  for (int sig = 0;;) {
    if (::ptrace(PTRACE_CONT, tid_, nullptr, sig) != 0) {
      return FailErrno("ptrace cont", "tid " + std::to_string(tid_));
    }
    LZ_ASSIGN_OR_RETURN(int status, WaitForStop(tid_));
    if (WSTOPSIG(status) == SIGTRAP && (status >> 16) == 0) {
      break;  // the int3 at the end of the loop
    }
    // As in ResumeToSyscallStop: a signal that arrives while we drive the thread is an
    // artefact of the restore and is dropped.
    sig = 0;
  }
  LZ_ASSIGN_OR_RETURN(Regs after, GetRegs(tid_));
  size_t ran = calls.size() - static_cast<size_t>(after.r13);
  size_t got = std::min(calls.size(), ran + 1);  // the failed one holds its result too
  std::vector<uint64_t> out(got * kBatchEntry / 8);
  LZ_TRY(ReadRemote(pid, area + kBatchCodeSpace, std::as_writable_bytes(std::span(out))));
  for (size_t i = 0; i < got; i++) {
    long r = static_cast<long>(out[i * kBatchEntry / 8 + 7]);
    if (!calls[i].may_fail) {
      LZ_TRY(CheckResult(r, calls[i].what));
    }
    results->push_back(r);
  }
  if (ran != calls.size()) {
    return Invalid(std::string("remote ") + calls[ran].what, "batch stopped early");
  }
  return Ok();
}

Result<long> RemoteThread::Syscall(const char* what, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
                                   uint64_t a4, uint64_t a5, uint64_t a6) {
  LZ_LOG(kTrace, "tid %d: remote %s (%ld) %#lx %#lx %#lx", tid_, what, nr, a1, a2, a3);
  auto raw = RawSyscall(nr, a1, a2, a3, a4, a5, a6);
  if (!raw) {
    return Unexpected{raw.error().Wrap(std::string("remote ") + what)};
  }
  LZ_TRY(CheckResult(*raw, what));
  return *raw;
}

Status RemoteThread::CheckResult(long r, const char* what) const {
  if (r < 0 && r > -4096) {  // the kernel's -errno range
    return Fail(static_cast<int>(-r), std::string("remote ") + what,
                "in tid " + std::to_string(tid_));
  }
  return Ok();
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
