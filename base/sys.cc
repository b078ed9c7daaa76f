#include "base/sys.h"

#include <linux/kcmp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace lz {

Result<UniqueFd> PidfdOpen(pid_t pid) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    return FailErrno("pidfd_open", "pid " + std::to_string(pid));
  }
  return UniqueFd(fd);
}

Result<UniqueFd> PidfdGetfd(int pidfd, int target_fd) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, target_fd, 0));
  if (fd < 0) {
    return FailErrno("pidfd_getfd", "fd " + std::to_string(target_fd));
  }
  return UniqueFd(fd);
}

Result<pid_t> CloneWithTid(pid_t tid, uint64_t flags, int exit_signal) {
  pid_t set_tid[1] = {tid};
  clone_args args;
  std::memset(&args, 0, sizeof args);
  args.flags = flags;
  args.exit_signal = static_cast<uint64_t>(exit_signal);
  args.set_tid = reinterpret_cast<uint64_t>(set_tid);
  args.set_tid_size = 1;
  long r = ::syscall(SYS_clone3, &args, sizeof args);
  if (r < 0) {
    return FailErrno("clone3", "set_tid " + std::to_string(tid));
  }
  return static_cast<pid_t>(r);
}

Result<bool> SameOpenFile(pid_t pid1, int fd1, pid_t pid2, int fd2) {
  long r = ::syscall(SYS_kcmp, pid1, pid2, KCMP_FILE, fd1, fd2);
  if (r < 0) {
    return FailErrno("kcmp");
  }
  return r == 0;
}

pid_t GetTid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

}  // namespace lz
