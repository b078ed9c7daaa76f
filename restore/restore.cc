// The restore front-end: check the images, fork the tree with its pids, seize every task,
// rebuild each one from outside, hand lazy memory to the daemon, and let the tree run.
#include "restore/restore.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "base/clock.h"
#include "base/cpu.h"
#include "base/file_util.h"
#include "base/log.h"
#include "base/scm.h"
#include "base/sys.h"
#include "images/image_file.h"
#include "restore/files_restore.h"
#include "restore/restore_internal.h"
#include "restore/shmem_restore.h"

namespace lz {
namespace {

constexpr long kSeizeOptions = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL;
constexpr int kReadyTimeoutMs = 10000;

Status CheckCompatible(const img::Dump& d) {
  uint64_t have = XsaveFeatures();
  uint64_t need = d.inventory.xsave_features();
  if ((need & ~have) != 0) {
    char buf[160];
    snprintf(buf, sizeof buf,
             "the dump needs CPU state components %#lx that this CPU lacks (has %#lx)", need, have);
    return Invalid(buf);
  }
  return Ok();
}

Status CheckPidsFree(const img::Dump& d) {
  for (const img::TaskImages& t : d.tasks) {
    if (t.core.zombie() && (::kill(t.core.pid(), 0) == 0 || errno != ESRCH)) {
      return Invalid("pid " + std::to_string(t.core.pid()) + " (a zombie in the dump) is taken");
    }
    for (const pb::ThreadCore& th : t.core.threads()) {
      if (::kill(th.tid(), 0) == 0 || errno != ESRCH) {
        return Invalid("pid " + std::to_string(th.tid()) + " is taken by a running process" +
                       (th.tid() == t.core.pid()
                            ? ""
                            : " (needed for a thread of " + std::to_string(t.core.pid()) + ")"));
      }
    }
  }
  return Ok();
}

// Kills every task created so far unless disarmed: a failed restore leaves nothing behind.
class TreeGuard {
 public:
  explicit TreeGuard(const img::Dump& d) : dump_(d) {}
  ~TreeGuard() {
    if (!armed_) {
      return;
    }
    for (const img::TaskImages& t : dump_.tasks) {
      ::kill(t.core.pid(), SIGKILL);
    }
    if (root_ > 0) {
      ::waitpid(root_, nullptr, 0);
    }
  }
  void set_root(pid_t p) { root_ = p; }
  void Disarm() { armed_ = false; }

 private:
  const img::Dump& dump_;
  pid_t root_ = -1;
  bool armed_ = true;
};

// Waits for every task's "R<pid>" line on the report pipe; "E<pid>:msg" is a failure.
Status WaitForReady(int fd, size_t count) {
  std::string buf;
  size_t ready = 0;
  Deadline deadline(uint64_t{kReadyTimeoutMs} * 1000000);
  while (ready < count) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, 100);
    if (deadline.Expired()) {
      return Fail(ETIMEDOUT, "restore", "tasks did not become ready");
    }
    if (r <= 0) {
      continue;
    }
    char chunk[4096];
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) {
      return Invalid("restore: a task died before it was ready");
    }
    buf.append(chunk, n);
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line[0] == 'E') {
        return Invalid("restore of pid " + line.substr(1, line.find(':') - 1) + ": " +
                       line.substr(line.find(':') + 1));
      }
      ready++;
    }
  }
  return Ok();
}

Status WritePidfile(const std::string& path, pid_t pid) {
  return WriteFileAtomically(path, std::to_string(pid) + "\n");
}

}  // namespace

Result<LazyHandOver> LazyHandOver::Connect(const std::string& dir) {
  std::string path = dir + "/" + kLazySocketName;
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return FailErrno("socket");
  }
  UniqueFd sock(fd);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Invalid("lazy-pages socket path too long: " + path);
  }
  std::strcpy(addr.sun_path, path.c_str());
  // A daemon started in the background a moment ago may not be listening yet: give it a second.
  Deadline deadline(1000000000);
  while (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if ((errno != ENOENT && errno != ECONNREFUSED) || deadline.Expired()) {
      return Fail(errno, "cannot reach the lazy-pages daemon at " + path,
                  "(start 'lazarus lazy-pages -D " + dir + "' first)");
    }
    ::usleep(1000);
  }
  timeval limit{30, 0};  // only Finish blocks; a stuck daemon must not hold the tree forever
  if (::setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit) != 0) {
    return FailErrno("setsockopt SO_RCVTIMEO");
  }
  return LazyHandOver(std::move(sock));
}

Status LazyHandOver::Send(RestoredTask& t) {
  LazyMsg m{kLazyMagic, kLazyVersion, kLazyTask, t.pid};
  if (SendWithFd(sock_.get(), &m, sizeof m, t.uffd.get()) != sizeof m) {
    int err = errno;
    // The daemon may have gone after refusing an earlier task: its answer says more.
    Status acks = ReadAcks(false);
    return acks ? Fail(err, "send uffd to the lazy-pages daemon", "pid " + std::to_string(t.pid))
                : acks;
  }
  sent_.push_back(t.pid);
  // The daemon holds its own copy now (SCM_RIGHTS duplicated it); ours goes.
  t.uffd.reset();
  return ReadAcks(false);
}

Status LazyHandOver::Finish() {
  LazyMsg done{kLazyMagic, kLazyVersion, kLazyAllSent, static_cast<int32_t>(sent_.size())};
  if (::send(sock_.get(), &done, sizeof done, MSG_NOSIGNAL) != sizeof done) {
    int err = errno;
    Status acks = ReadAcks(false);
    return acks ? Fail(err, "send to the lazy-pages daemon") : acks;
  }
  all_sent_ = true;
  return ReadAcks(true);
}

Status LazyHandOver::ReadAcks(bool wait) {
  size_t due = sent_.size() + (all_sent_ ? 1 : 0);
  while (acked_ < due) {
    LazyMsg ack{};
    ssize_t n = ::recv(sock_.get(), &ack, sizeof ack, wait ? 0 : MSG_DONTWAIT);
    if (n < 0 && !wait && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return Ok();
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return Invalid("the lazy-pages daemon did not answer within 30 s (see its log)");
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    bool for_task = acked_ < sent_.size();
    std::string who =
        for_task ? "pid " + std::to_string(sent_[acked_]) : "the end of the hand-over";
    if (n != sizeof ack) {
      // Closed, or reset with our later messages unread: which task it stopped at is not known.
      return Invalid(
          "the lazy-pages daemon went away before it acknowledged every task (see its log)");
    }
    if (ack.type != kLazyAck || (for_task && ack.pid != sent_[acked_])) {
      return Invalid("the lazy-pages daemon refused " + who + " (see its log)");
    }
    acked_++;
  }
  return Ok();
}

Result<int> PrepareFdFloor(const img::Dump& dump) {
  int max_fd = 2;
  size_t files = 0;
  for (const img::TaskImages& t : dump.tasks) {
    for (const pb::Fd& fd : t.fds.fds()) {
      max_fd = std::max(max_fd, fd.fd());
    }
    files += static_cast<size_t>(t.fds.files_size());
  }
  // Room above the floor for every object the restore may hold at once, and some slack.
  rlim_t need = static_cast<rlim_t>(MapSourceLimit(dump, max_fd + 1));
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return FailErrno("getrlimit RLIMIT_NOFILE");
  }
  if (rl.rlim_cur < need) {
    rl.rlim_cur = std::min(rl.rlim_max, need);
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < need) {
      return Invalid("the dumped tree uses fd " + std::to_string(max_fd) +
                     ", beyond what RLIMIT_NOFILE (hard " + std::to_string(rl.rlim_max) +
                     ") lets the restore open");
    }
  }
  return max_fd + 1;
}

Result<RestoreResult> RunRestore(const RestoreOptions& opts) {
  uint64_t start = MonotonicNs();
  LZ_DEBUG("restore: start");
  LZ_ASSIGN_OR_RETURN(img::Dump dump, img::LoadDump(opts.dir));
  LZ_TRY(CheckCompatible(dump));
  LZ_TRY(CheckPidsFree(dump));
  LZ_DEBUG("restore: images loaded and checked");
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) {
    return FailErrno("pipe2");
  }
  UniqueFd report_r(pipefd[0]);
  UniqueFd report_w(pipefd[1]);
  std::fflush(nullptr);  // the children must not flush our buffered output again

  LZ_ASSIGN_OR_RETURN(int floor, PrepareFdFloor(dump));
  // Before the first fork: every task reaches these objects through our descriptors.
  LZ_ASSIGN_OR_RETURN(SharedMemory shm, SharedMemory::Create(dump));
  FileOpener opener(opts.dir, floor, dump, shm);

  LZ_DEBUG("restore: shared objects made, forking the tree");
  TreeGuard guard(dump);
  const pb::TaskCore& root = dump.tasks[0].core;
  LZ_ASSIGN_OR_RETURN(pid_t child, CloneWithTid(root.pid(), 0, SIGCHLD));
  if (child == 0) {
    report_r.reset();
    RunTaskChild(dump, 0, report_w.get(), opts, opener, floor);
  }
  guard.set_root(child);
  report_w.reset();
  // Zombies exit as soon as they are forked and report nothing.
  std::vector<RestoredTask> tasks;
  for (const img::TaskImages& t : dump.tasks) {
    if (!t.core.zombie()) {
      tasks.emplace_back();
      tasks.back().img = &t;
      tasks.back().pid = t.core.pid();
      LZ_ASSIGN_OR_RETURN(tasks.back().sources,
                          PlanMapSources(dump, t, shm, MapSourceBase(dump, floor)));
    }
  }
  // The page stores are opened (each index read and checked; a lazy restore's, only its eager
  // chunks' entries) while the tree forks on the other core: the tasks only report when ready.
  for (RestoredTask& t : tasks) {
    // A lazy restore reads only its eager pages: their chunks' index entries, not the whole
    // index of a store of many GiB (the daemon opens and checks it whole).
    std::vector<uint64_t> chunks;
    if (opts.lazy) {
      chunks = img::EagerChunks(t.img->pagemap);
    }
    t.store = img::OpenStoreOf(dump.dir, t.img->pagemap, opts.lazy ? &chunks : nullptr);
  }
  LZ_TRY(WaitForReady(report_r.get(), tasks.size()));
  uint64_t forked = MonotonicNs();
  LZ_DEBUG("restore: every task forked and ready");

  for (RestoredTask& t : tasks) {
    LZ_ASSIGN_OR_RETURN(PtraceAttachment att, SeizeAndStop(t.pid, kSeizeOptions));
    t.threads.push_back(std::move(att));
  }
  LZ_TRY(ConnectTreeDatagramClients(dump));
  // The daemon is needed from the first hand-over on: a daemon started together with the
  // restore gets the time the tree took to fork to come up and listen.
  std::optional<LazyHandOver> lazy;
  if (opts.lazy) {
    LZ_ASSIGN_OR_RETURN(lazy, LazyHandOver::Connect(opts.dir));
    LZ_DEBUG("restore: connected to the lazy-pages daemon");
  }
  RestoreResult result;
  for (RestoredTask& t : tasks) {
    LZ_TRY_CTX(RestoreMm(dump, t, lazy ? &*lazy : nullptr, shm),
               "restore memory of pid " + std::to_string(t.pid));
    result.stats.set_pages_eager(result.stats.pages_eager() + t.pages_eager);
    result.stats.set_pages_lazy(result.stats.pages_lazy() + t.pages_lazy);
  }
  LZ_TRY(shm.Seal(dump));
  uint64_t mm_done = MonotonicNs();
  LZ_DEBUG("restore: every address space built");
  for (RestoredTask& t : tasks) {
    LZ_TRY_CTX(RestoreTaskState(t), "restore pid " + std::to_string(t.pid));
  }
  LZ_DEBUG("restore: every task's state set");
  if (opts.lazy) {
    LZ_TRY(lazy->Finish());
  }
  if (!opts.pidfile.empty()) {
    LZ_TRY(WritePidfile(opts.pidfile, root.pid()));
  }
  for (RestoredTask& t : tasks) {
    for (PtraceAttachment& a : t.threads) {
      a.Detach();
    }
  }
  guard.Disarm();
  shm.Keep();
  result.root = root.pid();
  result.stats.set_total_ns(MonotonicNs() - start);
  result.stats.set_fork_ns(forked - start);
  result.stats.set_mm_ns(mm_done - forked);
  result.stats.set_lazy(opts.lazy);
  (void)img::WriteSingleMessage(opts.dir + "/stats-restore", img::ImageKind::kStats, result.stats);
  LZ_INFO("restored %zu tasks in %lu us", tasks.size(), result.stats.total_ns() / 1000);
  return result;
}

}  // namespace lz
