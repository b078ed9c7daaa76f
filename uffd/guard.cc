#include "uffd/guard.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "base/proc.h"
#include "base/scm.h"

namespace lz {
namespace {

struct GuardMsg {
  char type;  // 'A' add (fd attached), 'G' a forked child's guessed pid, 'D' done
  pid_t pid;
};

[[noreturn]] void GuardMain(int sock) {
  // The guard must outlive a daemon that is interrupted or terminated.
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  // Each task by pid and pidfd: killed through the pidfd, so that a pid reused since its task
  // exited is never hit; pidfd -1 where the kernel would not give one.
  std::vector<std::pair<pid_t, int>> tasks;
  std::vector<int> fds;
  // Forked children's uffds come with pid 0; their pid follows alone once the daemon is sure
  // of it.
  int unknown = 0;
  for (;;) {
    GuardMsg m{};
    int fd = -1;
    ssize_t n = RecvWithFd(sock, &m, sizeof m, &fd, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n == sizeof m && m.type == 'D') {
      _exit(0);  // closing our uffd copies with us
    }
    if (n == sizeof m && (m.type == 'A' || m.type == 'G')) {
      if (fd >= 0) {
        fds.push_back(fd);  // held, never used: it keeps the uffd open
      }
      if (fd >= 0 && m.pid == 0) {
        unknown++;
      } else if (m.type == 'A' && fd < 0 && m.pid > 0 && unknown > 0) {
        unknown--;  // a guess ('G') is killed too, but leaves the child unknown
      }
      if (m.pid > 0) {
        int pidfd = static_cast<int>(syscall(SYS_pidfd_open, m.pid, 0));
        if (pidfd >= 0 || errno != ESRCH) {
          tasks.emplace_back(m.pid, pidfd);  // -1 (no pidfds, no fds left): killed by pid
        }
      }
      continue;
    }
    // Only those still alive: a pid of a task that exited may name another process now.
    std::vector<pid_t> pids;
    std::vector<int> pidfds;
    for (auto [pid, pidfd] : tasks) {
      if (pidfd < 0 || syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0) {
        pids.push_back(pid);
        pidfds.push_back(pidfd);
      }
    }
    // The daemon is gone without saying it was done: its tasks must not go on, nor a child
    // of theirs whose pid it had not learnt yet (then every descendant goes).
    if (pids.empty()) {
      _exit(1);
    }
    std::vector<pid_t> more = unknown > 0 ? DescendantsOf(pids) : std::vector<pid_t>();
    std::string list;
    for (pid_t p : pids) {
      list += " " + std::to_string(p);
    }
    for (pid_t p : more) {
      list += " " + std::to_string(p);
    }
    // Said before it is done, so that whoever sees the tasks die finds the reason logged.
    std::fprintf(stderr,
                 "Error: lazy-pages daemon died before all memory was restored; "
                 "killing restored tasks%s so that none runs on with missing memory\n",
                 list.c_str());
    std::fflush(stderr);
    for (size_t i = 0; i < pids.size(); i++) {
      if (pidfds[i] >= 0) {
        syscall(SYS_pidfd_send_signal, pidfds[i], SIGKILL, nullptr, 0);
      } else {
        kill(pids[i], SIGKILL);  // a kernel without pidfds
      }
    }
    for (pid_t p : more) {
      kill(p, SIGKILL);
    }
    _exit(1);
  }
}

}  // namespace

Result<Guard> Guard::Start() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return FailErrno("socketpair");
  }
  pid_t pid = fork();
  if (pid < 0) {
    return FailErrno("fork guard");
  }
  if (pid == 0) {
    close(sv[0]);
    GuardMain(sv[1]);
  }
  close(sv[1]);
  return Guard(UniqueFd(sv[0]), pid);
}

Status Guard::Add(pid_t pid, int uffd, bool guessed) {
  GuardMsg m{guessed ? 'G' : 'A', pid};
  if (SendWithFd(sock_.get(), &m, sizeof m, uffd) != sizeof m) {
    return FailErrno("hand uffd to the guard");
  }
  return Ok();
}

void Guard::Done() {
  GuardMsg m{'D', 0};
  (void)!send(sock_.get(), &m, sizeof m, MSG_NOSIGNAL);
  sock_.reset();
  if (pid_ > 0) {
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
}

}  // namespace lz
