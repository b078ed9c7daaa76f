// The child side of restore: each task is forked (with its pid) from lazarus code, sets up
// what is easiest from inside (session, process group, fds, cwd, umask), forks its own
// children, reports ready and waits for the front-end to seize it and build its memory.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "base/file_util.h"
#include "base/sys.h"
#include "restore/files_restore.h"
#include "restore/restore_internal.h"

namespace lz {
namespace {

[[noreturn]] void ReportAndExit(int report_fd, const Error& e) {
  std::string msg = "E" + std::to_string(getpid()) + ":" + e.Message() + "\n";
  (void)!::write(report_fd, msg.data(), msg.size());
  _exit(1);
}

Result<std::vector<int>> ListOpenFds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) {
    return FailErrno("opendir", "/proc/self/fd");
  }
  std::vector<int> out;
  while (dirent* e = ::readdir(d)) {
    int64_t v;
    if (ParseI64(e->d_name, &v) && v != ::dirfd(d)) {
      out.push_back(static_cast<int>(v));
    }
  }
  ::closedir(d);
  return out;
}

// Moves `fd` above every descriptor number the task will use; returns the new number.
Result<int> MoveAbove(int fd, int floor) {
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, floor);
  if (moved < 0) {
    return FailErrno("fcntl F_DUPFD");
  }
  ::close(fd);
  return moved;
}

Status RestoreFds(const pb::FdTable& table, int* report_fd, const RestoreOptions& opts,
                  FileOpener& opener, int floor) {
  LZ_ASSIGN_OR_RETURN(*report_fd, MoveAbove(*report_fd, floor));
  // -j: the dumped terminal fds become the terminal this restore runs on.
  std::map<uint32_t, int> tty_src;
  for (const pb::OpenFile& f : table.files()) {
    if (f.type() != pb::FILE_TTY) {
      continue;
    }
    if (!opts.shell_job) {
      return Invalid("terminal " + f.path() + " needs --shell-job (-j)");
    }
    int src = -1;
    for (int cand : {0, 1, 2}) {
      if (::isatty(cand)) {
        src = cand;
        break;
      }
    }
    if (src < 0) {
      return Invalid("restore --shell-job needs a terminal on stdin, stdout or stderr");
    }
    LZ_ASSIGN_OR_RETURN(tty_src[f.id()], MoveAbove(::dup(src), floor));
  }
  // Close what lazarus had open, except the report pipe, the terminal copies and the objects
  // the opener holds (some inherited from the parent).
  std::vector<int> keep = opener.HeldFds();
  keep.push_back(*report_fd);
  for (const auto& [id, fd] : tty_src) {
    keep.push_back(fd);
  }
  LZ_ASSIGN_OR_RETURN(std::vector<int> open_fds, ListOpenFds());
  for (int fd : open_fds) {
    if (std::find(keep.begin(), keep.end(), fd) == keep.end()) {
      ::close(fd);
    }
  }
  for (const pb::OpenFile& f : table.files()) {
    UniqueFd opened;
    if (f.type() == pb::FILE_TTY) {
      opened.reset(::dup(tty_src[f.id()]));
    } else {
      auto o = opener.Open(f);
      if (!o) {
        return Unexpected{o.error().Wrap("fd file " + std::to_string(f.id()))};
      }
      opened = std::move(*o);
    }
    // Keep the open file above the table while dup3 places it, so it never sits on a target.
    LZ_ASSIGN_OR_RETURN(int high, MoveAbove(opened.release(), floor));
    opened.reset(high);
    for (const pb::Fd& fd : table.fds()) {
      if (fd.file_id() != f.id()) {
        continue;
      }
      if (::dup3(opened.get(), fd.fd(), fd.cloexec() ? O_CLOEXEC : 0) < 0) {
        return FailErrno("dup3", "fd " + std::to_string(fd.fd()));
      }
    }
  }
  return opener.FinishEpoll(table);
}

Status SetupSession(const img::Dump& dump, const pb::TaskCore& core, const RestoreOptions& opts) {
  auto in_tree = [&](pid_t p) {
    return std::any_of(dump.tasks.begin(), dump.tasks.end(),
                       [p](const img::TaskImages& t) { return t.core.pid() == p; });
  };
  if (core.sid() == core.pid()) {
    if (::setsid() < 0) {
      return FailErrno("setsid");
    }
  } else if (!in_tree(core.sid()) && !opts.shell_job) {
    return Invalid("session " + std::to_string(core.sid()) + " is outside the tree; use -j");
  }
  if (core.pgid() == core.pid()) {
    if (core.sid() != core.pid() && ::setpgid(0, 0) < 0) {
      return FailErrno("setpgid");
    }
  } else if (in_tree(core.pgid()) && ::getpgid(0) != core.pgid()) {
    if (::setpgid(0, core.pgid()) < 0) {
      return FailErrno("setpgid", "to " + std::to_string(core.pgid()));
    }
  }
  return Ok();
}

// A zombie comes back by exiting the way it exited, in its session and process group, and
// stays unreaped until its restored parent waits for it.
[[noreturn]] void BecomeZombie(const img::Dump& dump, const pb::TaskCore& c, int report_fd,
                               const RestoreOptions& opts) {
  Status st = SetupSession(dump, c, opts);
  if (!st) {
    ReportAndExit(report_fd, st.error());
  }
  int code = c.exit_code();
  if (WIFSIGNALED(code)) {
    ::signal(WTERMSIG(code), SIG_DFL);
    sigset_t all;
    sigfillset(&all);
    ::sigprocmask(SIG_UNBLOCK, &all, nullptr);
    ::prctl(PR_SET_DUMPABLE, 0);  // no core file for the replayed death
    ::kill(::getpid(), WTERMSIG(code));
  }
  _exit(WEXITSTATUS(code));
}

Status ForkChildren(const img::Dump& dump, size_t index, int report_fd, const RestoreOptions& opts,
                    FileOpener& opener, int floor) {
  pid_t me = dump.tasks[index].core.pid();
  for (size_t i = 0; i < dump.tasks.size(); i++) {
    const pb::TaskCore& c = dump.tasks[i].core;
    if (c.ppid() != me || i == index) {
      continue;
    }
    LZ_ASSIGN_OR_RETURN(pid_t child, CloneWithTid(c.pid(), 0, static_cast<int>(c.exit_signal())));
    if (child == 0 && c.zombie()) {
      BecomeZombie(dump, c, report_fd, opts);
    }
    if (child == 0) {
      RunTaskChild(dump, i, report_fd, opts, opener, floor);
    }
  }
  return Ok();
}

Status SetupTask(const img::Dump& dump, size_t index, int* report_fd, const RestoreOptions& opts,
                 FileOpener& opener, int floor) {
  const img::TaskImages& t = dump.tasks[index];
  LZ_TRY(SetupSession(dump, t.core, opts));
  // Objects shared by tasks below this one are made now, so that the children inherit them.
  LZ_TRY(opener.OpenSharedFor(t.core.pid()));
  LZ_TRY(ForkChildren(dump, index, *report_fd, opts, opener, floor));
  LZ_TRY(RestoreFds(t.fds, report_fd, opts, opener, floor));
  // Before chroot: the dumped paths are the ones the dumper saw.
  LZ_ASSIGN_OR_RETURN(std::vector<MapSource> sources,
                      PlanMapSources(dump, t, opener.shared_memory(), MapSourceBase(dump, floor)));
  LZ_TRY(OpenMapSources(sources));
  if (t.core.root() != "/" && ::chroot(t.core.root().c_str()) != 0) {
    return FailErrno("chroot", t.core.root());
  }
  if (::chdir(t.core.cwd().c_str()) != 0) {
    return FailErrno("chdir", t.core.cwd());
  }
  ::umask(t.core.umask());
  return Ok();
}

}  // namespace

void RunTaskChild(const img::Dump& dump, size_t index, int report_fd, const RestoreOptions& opts,
                  FileOpener& opener, int floor) {
  // Until the front-end seizes us, dying with our parent keeps a failed restore from leaving
  // half-built tasks behind. The dumped pdeath signal is put back later.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  Status st = SetupTask(dump, index, &report_fd, opts, opener, floor);
  if (!st) {
    ReportAndExit(report_fd, st.error());
  }
  std::string msg = "R" + std::to_string(getpid()) + "\n";
  (void)!::write(report_fd, msg.data(), msg.size());
  ::close(report_fd);
  for (;;) {
    ::pause();
  }
}

}  // namespace lz
