// ptrace wrappers and the RAII attachment of one thread.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace lz {

using Regs = user_regs_struct;

/// One seized thread. Detaches in the destructor (the thread resumes as it was) unless
/// Release() handed the detach to someone else. Move-only; not thread-safe.
class PtraceAttachment {
 public:
  PtraceAttachment() = default;
  explicit PtraceAttachment(pid_t tid) : tid_(tid) {}
  PtraceAttachment(PtraceAttachment&& o) noexcept : tid_(o.tid_) { o.tid_ = -1; }
  PtraceAttachment& operator=(PtraceAttachment&& o) noexcept;
  PtraceAttachment(const PtraceAttachment&) = delete;
  PtraceAttachment& operator=(const PtraceAttachment&) = delete;
  ~PtraceAttachment() { Detach(); }

  pid_t tid() const { return tid_; }
  void Release() { tid_ = -1; }
  /// Detaches now (ignores ESRCH: the thread is gone).
  void Detach();

 private:
  pid_t tid_ = -1;
};

/// PTRACE_SEIZE with `options`, then PTRACE_INTERRUPT and wait for the stop, until MonotonicNs()
/// `deadline_ns` or a held stop signal (base/held_signals.h); UINT64_MAX: no deadline, and 0:
/// a plain blocking wait.
[[nodiscard]] Result<PtraceAttachment> SeizeAndStop(pid_t tid, long options,
                                                    uint64_t deadline_ns = 0);
/// Waits until `tid` reports a stop; returns the raw wait status. Fails if it exited.
[[nodiscard]] Result<int> WaitForStop(pid_t tid);

[[nodiscard]] Result<Regs> GetRegs(pid_t tid);
[[nodiscard]] Status SetRegs(pid_t tid, const Regs& regs);
/// NT_X86_XSTATE: the whole xsave area as the kernel exposes it.
[[nodiscard]] Result<std::string> GetXstate(pid_t tid);
[[nodiscard]] Status SetXstate(pid_t tid, const std::string& xstate);
[[nodiscard]] Result<uint64_t> GetSigmask(pid_t tid);
[[nodiscard]] Status SetSigmask(pid_t tid, uint64_t mask);

struct RseqConfig {
  uint64_t addr = 0;
  uint32_t len = 0;
  uint32_t flags = 0;
  uint32_t sig = 0;
};
[[nodiscard]] Result<RseqConfig> GetRseqConfig(pid_t tid);

/// struct rseq_cs: a restartable sequence's bounds, as the task describes it in its memory.
struct RseqCs {
  uint32_t version = 0;
  uint32_t flags = 0;
  uint64_t start_ip = 0;
  uint64_t post_commit_offset = 0;
  uint64_t abort_ip = 0;
};
static_assert(sizeof(RseqCs) == 32);

/// Where a thread stopped at `ip` must go on: the sequence's abort handler when `ip` is inside
/// it (it may have read a CPU number that will be wrong on resume), else nowhere else.
std::optional<uint64_t> RseqAbortTarget(uint64_t ip, const RseqCs& cs);

/// The same for a stopped thread: reads the rseq_cs pointer of its registered struct rseq
/// (offset 8) and the descriptor it points to, from the task's memory.
[[nodiscard]] Result<std::optional<uint64_t>> RseqAbortTargetOf(pid_t tid, const RseqConfig& rseq,
                                                                uint64_t ip);

/// Pending signals without dequeuing them: the thread's own queue or the shared one.
[[nodiscard]] Result<std::vector<std::string>> PeekPendingSignals(pid_t tid, bool shared);

}  // namespace lz
