// The guard: a child of the daemon that holds a copy of every uffd the daemon serves. If the
// daemon dies before every page is home, the uffds stay open (so no faulting thread is handed a
// zero page by the kernel) and the guard kills the restored tasks with a message.
#pragma once

#include <sys/types.h>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lz {

/// Not thread-safe. Start() forks; call it while the daemon is single-threaded and before it
/// opens anything the guard should not inherit.
class Guard {
 public:
  [[nodiscard]] static Result<Guard> Start();
  Guard(Guard&&) = default;
  Guard& operator=(Guard&&) = default;

  /// Gives the guard its own copy of `uffd` (none if -1) and the pid to kill (none if 0);
  /// `guessed`: a forked child's pid guessed from /proc, killed too, but the child still counts
  /// as unknown (its descendants' walk stays on).
  [[nodiscard]] Status Add(pid_t pid, int uffd, bool guessed = false);
  /// Every page is home: the guard drops its copies and exits.
  void Done();
  pid_t pid() const { return pid_; }

 private:
  Guard(UniqueFd sock, pid_t pid) : sock_(std::move(sock)), pid_(pid) {}
  UniqueFd sock_;
  pid_t pid_ = -1;
};

}  // namespace lz
