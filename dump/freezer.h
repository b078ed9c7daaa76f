// Freezing a process tree: every thread of every process seized and stopped with ptrace.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "base/result.h"
#include "parasite/ptrace.h"

namespace lz {

struct FrozenTask {
  pid_t pid = 0;
  std::vector<PtraceAttachment> threads;  // threads[0] is the main thread
  std::vector<pid_t> children;
  bool zombie = false;  // exited, not reaped: nothing to seize, only its tree links are dumped
};

/// A frozen tree. Whatever happens, the destructor lets every task go on as it was, unless
/// one of the explicit endings ran first. Not thread-safe.
class FrozenTree {
 public:
  /// Seizes `root` and its descendants, repeating until no new thread or child appears.
  /// Refuses zombies, kernel threads and tasks already traced by someone else. Fails if a
  /// thread has not stopped by MonotonicNs() `deadline_ns` (as SeizeAndStop takes it).
  [[nodiscard]] static Result<std::unique_ptr<FrozenTree>> Freeze(pid_t root,
                                                                  uint64_t deadline_ns = 0);
  ~FrozenTree() { Resume(); }

  std::vector<FrozenTask>& tasks() { return tasks_; }
  /// Detaches every thread: the tree runs on.
  void Resume();
  /// Kills every task (the default ending of a dump, as with CRIU).
  void Kill();
  /// Detaches leaving every task stopped (--leave-stopped).
  void LeaveStopped();

 private:
  FrozenTree() = default;
  Status FreezeTask(pid_t pid, uint64_t deadline_ns);
  std::vector<FrozenTask> tasks_;
};

}  // namespace lz
