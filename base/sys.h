// Thin wrappers over the syscalls glibc 2.36 does not wrap. One per syscall, no logging.
#pragma once

#include <linux/sched.h>
#include <sys/types.h>

#include <cstdint>
#include <span>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lz {

[[nodiscard]] Result<UniqueFd> PidfdOpen(pid_t pid);
/// Duplicates fd `target_fd` of the process behind `pidfd` into this process (O_CLOEXEC).
[[nodiscard]] Result<UniqueFd> PidfdGetfd(int pidfd, int target_fd);
/// clone3 with set_tid = {tid}: the caller's child gets exactly `tid`. Returns 0 in the
/// child, the child's pid in the parent. The child runs on a copy of the caller's stack.
[[nodiscard]] Result<pid_t> CloneWithTid(pid_t tid, uint64_t flags, int exit_signal);
/// kcmp(KCMP_FILE): whether fd a of pid1 and fd b of pid2 are the same open file.
[[nodiscard]] Result<bool> SameOpenFile(pid_t pid1, int fd1, pid_t pid2, int fd2);
pid_t GetTid();

}  // namespace lz
