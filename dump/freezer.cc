#include "dump/freezer.h"

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <optional>

#include "base/file_util.h"
#include "base/log.h"
#include "base/proc.h"

namespace lz {
namespace {

constexpr uint64_t kPfKthread = 0x00200000;  // PF_KTHREAD in /proc/PID/stat flags
constexpr long kSeizeOptions = PTRACE_O_TRACESYSGOOD;

// Whether a thread of `pid` other than its leader is alive (not a zombie, not dead).
bool OtherThreadsRun(pid_t pid) {
  auto tids = ListNumericDir(ProcPath(pid, "task"));
  if (!tids) {
    return false;
  }
  for (int tid : *tids) {
    if (tid == pid) {
      continue;
    }
    char state = StateIn(ProcPath(pid, "task/" + std::to_string(tid) + "/stat"));
    if (state != '?' && state != 'Z' && state != 'X') {
      return true;
    }
  }
  return false;
}

// Whether `pid` is a zombie; refuses what cannot be dumped at all.
Result<bool> CheckDumpable(pid_t pid, bool is_root) {
  auto stat_text = ReadFileToString(ProcPath(pid, "stat"));
  if (!stat_text) {
    return Fail(ESRCH, "dump", "no process with pid " + std::to_string(pid));
  }
  LZ_ASSIGN_OR_RETURN(ProcStat st, ParseStat(*stat_text));
  if (st.flags & kPfKthread) {
    return Invalid("dump", "pid " + std::to_string(pid) + " is a kernel thread");
  }
  if (st.state == 'Z') {
    // A leader that called pthread_exit() shows as a zombie while its other threads run on; a
    // process in exit_group() does too for a moment, until its threads are gone.
    bool others_run = OtherThreadsRun(pid);
    for (int i = 0; i < 50 && others_run; i++) {
      ::usleep(2000);
      others_run = OtherThreadsRun(pid);
    }
    if (others_run) {
      return Invalid("dump", "the main thread of pid " + std::to_string(pid) +
                                 " has exited and its other threads run on: not supported");
    }
    if (is_root) {
      return Invalid("dump", "pid " + std::to_string(pid) + " is a zombie");
    }
    return true;
  }
  LZ_ASSIGN_OR_RETURN(std::string status_text, ReadFileToString(ProcPath(pid, "status")));
  LZ_ASSIGN_OR_RETURN(ProcStatus status, ParseStatus(status_text));
  if (status.tracer_pid != 0) {
    return Invalid("dump", "pid " + std::to_string(pid) + " is already traced by pid " +
                               std::to_string(status.tracer_pid));
  }
  return false;
}

}  // namespace

Status FrozenTree::FreezeTask(pid_t pid, uint64_t deadline_ns) {
  LZ_ASSIGN_OR_RETURN(bool zombie, CheckDumpable(pid, tasks_.empty()));
  FrozenTask task;
  task.pid = pid;
  if (zombie) {
    task.zombie = true;
    tasks_.push_back(std::move(task));
    return Ok();
  }
  std::optional<Error> main_error;  // why the main thread could not be seized, if it could not
  // Threads can be born while we seize their siblings: list again until nothing is new.
  for (bool grew = true; grew;) {
    grew = false;
    LZ_ASSIGN_OR_RETURN(std::vector<int> tids, ListNumericDir(ProcPath(pid, "task")));
    std::stable_partition(tids.begin(), tids.end(), [pid](int t) { return t == pid; });
    for (int tid : tids) {
      bool known = std::any_of(task.threads.begin(), task.threads.end(),
                               [tid](const PtraceAttachment& a) { return a.tid() == tid; });
      if (known) {
        continue;
      }
      auto att = SeizeAndStop(tid, kSeizeOptions, deadline_ns);
      if (!att && tid == pid && task.threads.empty() && att.error().code != ETIMEDOUT &&
          att.error().code != EINTR) {
        main_error = att.error();  // it may have exited meanwhile: looked at below
        continue;
      }
      if (!att && att.error().code == ESRCH) {
        continue;  // the thread exited meanwhile
      }
      if (!att) {
        return Unexpected{att.error().Wrap("freeze pid " + std::to_string(pid))};
      }
      task.threads.push_back(std::move(*att));
      grew = true;
    }
  }
  if (task.threads.empty()) {
    // A child that exited since its parent listed it stays a zombie (its parent is frozen);
    // it may take a moment to finish exiting.
    bool now_zombie = false;
    for (int i = 0; i < 50 && !now_zombie; i++) {
      LZ_ASSIGN_OR_RETURN(now_zombie, CheckDumpable(pid, tasks_.empty()));
      if (!now_zombie) {
        ::usleep(2000);
      }
    }
    if (now_zombie) {
      task.zombie = true;
      tasks_.push_back(std::move(task));
      return Ok();
    }
  }
  if (task.threads.empty() && main_error && main_error->code != ESRCH) {
    return Unexpected{main_error->Wrap("freeze pid " + std::to_string(pid))};
  }
  if (task.threads.empty() || task.threads[0].tid() != pid) {
    return Invalid("dump", "main thread of pid " + std::to_string(pid) + " is gone");
  }
  for (const PtraceAttachment& t : task.threads) {
    auto children =
        ReadFileToString(ProcPath(pid, "task/" + std::to_string(t.tid()) + "/children"));
    if (!children) {
      continue;
    }
    for (std::string_view c : SplitString(TrimSpace(*children), ' ')) {
      int64_t child;
      if (ParseI64(c, &child)) {
        task.children.push_back(static_cast<pid_t>(child));
      }
    }
  }
  tasks_.push_back(std::move(task));
  return Ok();
}

Result<std::unique_ptr<FrozenTree>> FrozenTree::Freeze(pid_t root, uint64_t deadline_ns) {
  auto tree = std::unique_ptr<FrozenTree>(new FrozenTree());
  std::deque<pid_t> todo{root};
  while (!todo.empty()) {
    pid_t pid = todo.front();
    todo.pop_front();
    LZ_TRY(tree->FreezeTask(pid, deadline_ns));
    for (pid_t c : tree->tasks_.back().children) {
      todo.push_back(c);
    }
  }
  LZ_DEBUG("froze %zu tasks", tree->tasks_.size());
  return tree;
}

void FrozenTree::Resume() {
  for (FrozenTask& t : tasks_) {
    for (PtraceAttachment& a : t.threads) {
      a.Detach();
    }
  }
  tasks_.clear();
}

void FrozenTree::Kill() {
  for (FrozenTask& t : tasks_) {
    ::kill(t.pid, SIGKILL);
  }
  // A killed tracee cannot be detached: it is gone for good only once its tracer has seen
  // every thread exit (until then its parent cannot reap it). Other threads before the leader,
  // whose exit the kernel reports last.
  for (FrozenTask& t : tasks_) {
    for (auto a = t.threads.rbegin(); a != t.threads.rend(); ++a) {
      while (::waitpid(a->tid(), nullptr, __WALL) < 0 && errno == EINTR) {
      }
      a->Release();
    }
  }
  tasks_.clear();
}

void FrozenTree::LeaveStopped() {
  for (FrozenTask& t : tasks_) {
    ::kill(t.pid, SIGSTOP);
  }
  Resume();
}

}  // namespace lz
