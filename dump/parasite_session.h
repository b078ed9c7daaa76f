// Driving a frozen task's threads with remote syscalls while the dump asks what /proc and
// ptrace cannot tell (signal handlers, alternate stacks, timers, tid address, brk).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "parasite/remote.h"

namespace lz {

/// Owns one scratch page mapped in the task and the saved state of every thread it drives.
/// Finish() (or the destructor, on error paths) unmaps the page and gives every thread back its
/// registers and signal mask, so the task is left exactly as it was. Not thread-safe.
class ParasiteSession {
 public:
  [[nodiscard]] static Result<std::unique_ptr<ParasiteSession>> Start(pid_t pid,
                                                                      std::span<const pid_t> tids);
  ~ParasiteSession();

  /// The registers and signal mask each thread had when frozen.
  const Regs& saved_regs(size_t i) const { return threads_[i].regs; }
  /// Where thread `i` resumes if it was frozen inside an rseq critical section (its abort
  /// handler, as the kernel would send it), read before any remote syscall: the kernel clears
  /// the task's rseq_cs when one returns to user space outside the section.
  std::optional<uint64_t> rseq_abort(size_t i) const { return threads_[i].rseq_abort; }
  uint64_t saved_sigmask(size_t i) const { return threads_[i].sigmask; }
  RemoteThread& thread(size_t i) { return threads_[i].remote; }
  RemoteThread& leader() { return threads_[0].remote; }
  uint64_t scratch() const { return scratch_; }
  static constexpr size_t kScratchSize = 4096;

  /// Copies `out.size()` bytes from the scratch page.
  [[nodiscard]] Status ReadScratch(std::span<std::byte> out) const;

  [[nodiscard]] Status Finish();

 private:
  struct Thread {
    RemoteThread remote;
    Regs regs;
    uint64_t sigmask;
    std::optional<uint64_t> rseq_abort;
  };
  explicit ParasiteSession(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  std::vector<Thread> threads_;
  uint64_t scratch_ = 0;
  bool finished_ = false;
};

}  // namespace lz
