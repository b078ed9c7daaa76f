// Remote syscalls: make a ptrace-stopped thread execute one syscall of our choosing.
//
// The thread's registers are pointed at a `syscall` instruction that already exists in its
// address space, with the number and arguments loaded; PTRACE_SYSCALL runs it to the
// syscall-exit stop, where rax holds the result. Nothing is injected, so the thread's memory is
// not touched. The caller saves the thread's own registers first and puts them back at the end.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "parasite/ptrace.h"

namespace lz {

/// A thread that runs syscalls for us. Not thread-safe. The thread must be ptrace-stopped by
/// this process and traced with PTRACE_O_TRACESYSGOOD.
/// One syscall of a batch (RemoteThread::RunBatch).
struct RemoteCall {
  const char* what;  // names the call in errors
  long nr;
  uint64_t args[6];
  bool may_fail = false;  // its error does not stop the batch; the caller reads its result
};

/// Bytes of task memory a batch needs: its code and a table of calls. Must be writable and
/// executable.
constexpr size_t kBatchAreaSize = 4 * 4096;

class RemoteThread {
 public:
  RemoteThread(pid_t tid, uint64_t syscall_insn) : tid_(tid), insn_(syscall_insn) {}

  pid_t tid() const { return tid_; }
  void set_syscall_insn(uint64_t addr) { insn_ = addr; }
  uint64_t syscall_insn() const { return insn_; }

  /// Runs syscall `nr`; returns its raw result (negative errno on failure, as the kernel
  /// gives it). Fails only when the thread itself could not be driven.
  [[nodiscard]] Result<long> RawSyscall(long nr, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0,
                                        uint64_t a4 = 0, uint64_t a5 = 0, uint64_t a6 = 0);
  /// Like RawSyscall, but a negative result becomes an error naming `what`.
  [[nodiscard]] Result<long> Syscall(const char* what, long nr, uint64_t a1 = 0, uint64_t a2 = 0,
                                     uint64_t a3 = 0, uint64_t a4 = 0, uint64_t a5 = 0,
                                     uint64_t a6 = 0);

  /// Runs `calls` in order inside the thread with a single stop: a small loop copied into
  /// `area` (kBatchAreaSize bytes, writable and executable, in the task) issues them one after
  /// the other and stops at the first that fails, which becomes the error. `results` gets each
  /// call's return value. For the many calls of a restore (an mmap per VMA), where each remote
  /// syscall would cost two ptrace stops.
  [[nodiscard]] Status RunBatch(std::span<const RemoteCall> calls, uint64_t area,
                                std::vector<long>* results);

  /// Pids of tasks created by clone/fork/vfork events seen during the last syscall.
  const std::vector<pid_t>& new_tasks() const { return new_tasks_; }
  /// Whether a SIGSTOP reached the thread while it was driven: it cannot be blocked, and the
  /// thread went on without it, so whoever lets the thread go sends it again.
  bool stopped_meanwhile() const { return stopped_meanwhile_; }

 private:
  Status ResumeToSyscallStop(bool want_exit);
  // A raw syscall result as an error naming `what`, if it is one.
  Status CheckResult(long r, const char* what) const;
  Status RunBatchRound(std::span<const RemoteCall> calls, uint64_t area,
                       std::vector<long>* results);
  pid_t tid_;
  uint64_t insn_;
  std::vector<pid_t> new_tasks_;
  bool stopped_meanwhile_ = false;
};

/// Reads / writes another process's memory through /proc/PID/mem, which also reaches pages
/// that are not readable or writable by the task itself (the kernel forces the access).
[[nodiscard]] Status ReadRemote(pid_t pid, uint64_t addr, std::span<std::byte> out);
[[nodiscard]] Status WriteRemote(pid_t pid, uint64_t addr, std::span<const std::byte> data);

/// Offset of a `syscall` instruction (0f 05) inside `code`, or -1.
long FindSyscallInsn(std::span<const std::byte> code);

/// The address of a `syscall` instruction in lazarus's own text: valid in every process that
/// lazarus forked until that process's mappings are replaced.
uint64_t OwnSyscallInsn();

}  // namespace lz

namespace lz {
/// Address of a `syscall` instruction inside the [vdso] of `pid`.
[[nodiscard]] Result<uint64_t> FindVdsoSyscallInsn(pid_t pid);
}  // namespace lz
