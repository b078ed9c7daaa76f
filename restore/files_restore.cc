#include "restore/files_restore.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "base/file_util.h"
#include "base/log.h"
#include "base/proc.h"
#include "base/sys.h"
#include "images/format.h"
#include "restore/shmem_restore.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

namespace lz {
namespace {

// Flags open(2) accepts back from fdinfo; the rest describe how the file was created.
constexpr int kReopenFlags = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME |
                             O_LARGEFILE | O_DSYNC | O_SYNC | O_PATH | O_DIRECTORY;
// What F_SETFL can change on an object created by another call than open(2).
constexpr int kStatusFlags = O_APPEND | O_NONBLOCK | O_ASYNC | O_DIRECT | O_NOATIME;

Status SetStatusFlags(int fd, uint32_t flags) {
  if (::fcntl(fd, F_SETFL, static_cast<int>(flags) & kStatusFlags) != 0) {
    return FailErrno("fcntl F_SETFL");
  }
  return Ok();
}

Result<UniqueFd> OpenDeletedCopy(const pb::OpenFile& f, const std::string& dir) {
  // The file was unlinked while open: bring back an unlinked file with its content, in the
  // same directory when it still exists.
  std::string parent = f.path().substr(0, f.path().rfind('/'));
  int fd = ::open(parent.empty() ? "/" : parent.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    fd = ::open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  }
  if (fd < 0) {
    return FailErrno("recreate deleted file", f.path());
  }
  UniqueFd out(fd);
  LZ_ASSIGN_OR_RETURN(std::string content,
                      ReadFileToString(dir + "/" + f.content_file(), size_t{1} << 40));
  LZ_TRY(WriteAll(out.get(), content));
  ::fchmod(out.get(), f.mode() & 07777);
  int acc = f.flags() & O_ACCMODE;
  if (acc != O_RDWR) {
    // Reopen with the dumped access mode through the descriptor itself.
    LZ_ASSIGN_OR_RETURN(out, OpenFile("/proc/self/fd/" + std::to_string(out.get()), acc));
  }
  if (::lseek(out.get(), static_cast<off_t>(f.pos()), SEEK_SET) < 0) {
    return FailErrno("lseek", f.path());
  }
  return out;
}

Result<UniqueFd> OpenRegular(const pb::OpenFile& f, const std::string& dir) {
  if (f.deleted()) {
    return OpenDeletedCopy(f, dir);
  }
  LZ_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(f.path(), (f.flags() & kReopenFlags) | O_NOCTTY));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return FailErrno("fstat", f.path());
  }
  if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) < f.pos()) {
    return Invalid("file " + f.path() + " changed since the dump (now " +
                   std::to_string(st.st_size) + " bytes, position was " + std::to_string(f.pos()) +
                   ")");
  }
  if (::lseek(fd.get(), static_cast<off_t>(f.pos()), SEEK_SET) < 0) {
    return FailErrno("lseek", f.path());
  }
  return fd;
}

Result<UniqueFd> OpenDevice(const pb::OpenFile& f) {
  LZ_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(f.path(), (f.flags() & kReopenFlags) | O_NOCTTY));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != f.rdev()) {
    return Invalid("device " + f.path() + " is not the one dumped");
  }
  return fd;
}

Status SetIntOpt(int fd, int level, int name, int value, const char* what) {
  if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
    return FailErrno("setsockopt", what);
  }
  return Ok();
}

Status SetUnixOptions(int s, const pb::UnixInfo& u) {
  if (u.passcred()) {
    LZ_TRY(SetIntOpt(s, SOL_SOCKET, SO_PASSCRED, 1, "SO_PASSCRED"));
  }
  if (u.passsec()) {
    LZ_TRY(SetIntOpt(s, SOL_SOCKET, SO_PASSSEC, 1, "SO_PASSSEC"));
  }
  return Ok();
}

bool IsWildcard(const std::string& addr) {
  if (addr.size() < sizeof(sa_family_t)) {
    return true;
  }
  sockaddr_storage ss{};
  std::memcpy(&ss, addr.data(), std::min(addr.size(), sizeof ss));
  if (ss.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    return in->sin_port == 0 && in->sin_addr.s_addr == INADDR_ANY;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  return in6->sin6_port == 0 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
}

Result<UniqueFd> OpenInetSocket(const pb::OpenFile& f) {
  const pb::SocketInfo& s = f.socket();
  int fd = ::socket(s.family(), s.type() | SOCK_CLOEXEC, s.protocol());
  if (fd < 0) {
    return FailErrno("socket");
  }
  UniqueFd sock(fd);
  LZ_TRY(SetIntOpt(fd, SOL_SOCKET, SO_REUSEADDR, s.reuseaddr(), "SO_REUSEADDR"));
  LZ_TRY(SetIntOpt(fd, SOL_SOCKET, SO_REUSEPORT, s.reuseport(), "SO_REUSEPORT"));
  LZ_TRY(SetIntOpt(fd, SOL_SOCKET, SO_KEEPALIVE, s.keepalive(), "SO_KEEPALIVE"));
  LZ_TRY(SetIntOpt(fd, SOL_SOCKET, SO_BROADCAST, s.broadcast(), "SO_BROADCAST"));
  // getsockopt reports twice what setsockopt was given.
  LZ_TRY(SetIntOpt(fd, SOL_SOCKET, SO_RCVBUF, s.rcvbuf() / 2, "SO_RCVBUF"));
  LZ_TRY(SetIntOpt(fd, SOL_SOCKET, SO_SNDBUF, s.sndbuf() / 2, "SO_SNDBUF"));
  if (s.family() == AF_INET6) {
    LZ_TRY(SetIntOpt(fd, IPPROTO_IPV6, IPV6_V6ONLY, s.v6only(), "IPV6_V6ONLY"));
  }
  if (s.type() == SOCK_STREAM) {
    LZ_TRY(SetIntOpt(fd, IPPROTO_TCP, TCP_NODELAY, s.nodelay(), "TCP_NODELAY"));
  }
  if (!IsWildcard(s.local())) {
    if (::bind(fd, reinterpret_cast<const sockaddr*>(s.local().data()),
               static_cast<socklen_t>(s.local().size())) != 0) {
      return FailErrno("bind", "the address the socket had");
    }
  }
  if (s.listening() && ::listen(fd, static_cast<int>(s.backlog())) != 0) {
    return FailErrno("listen");
  }
  if (!s.peer().empty() && ::connect(fd, reinterpret_cast<const sockaddr*>(s.peer().data()),
                                     static_cast<socklen_t>(s.peer().size())) != 0) {
    return FailErrno("connect");
  }
  LZ_TRY(SetStatusFlags(fd, f.flags()));
  return sock;
}

// A netlink socket at the address it had (the kernel chose it, usually the pid, which the
// restored task has again), with its groups and options. Another socket may hold that address
// now: then the kernel chooses another, with a warning.
Result<UniqueFd> OpenNetlinkSocket(const pb::OpenFile& f) {
  const pb::NetlinkInfo& n = f.netlink();
  int fd = ::socket(AF_NETLINK, n.type() | SOCK_CLOEXEC, n.protocol());
  if (fd < 0) {
    return FailErrno("socket", "netlink protocol " + std::to_string(n.protocol()));
  }
  UniqueFd sock(fd);
  // FORCE: past rmem_max, as udev and systemd set theirs (the restore runs as root here).
  LZ_TRY(SetIntOpt(fd, SOL_SOCKET, SO_RCVBUFFORCE, n.rcvbuf() / 2, "SO_RCVBUFFORCE"));
  LZ_TRY(SetIntOpt(fd, SOL_SOCKET, SO_SNDBUFFORCE, n.sndbuf() / 2, "SO_SNDBUFFORCE"));
  LZ_TRY(SetIntOpt(fd, SOL_SOCKET, SO_PASSCRED, n.passcred(), "SO_PASSCRED"));
  LZ_TRY(SetIntOpt(fd, SOL_SOCKET, SO_PASSSEC, n.passsec(), "SO_PASSSEC"));
  for (int opt : n.flags()) {
    LZ_TRY(SetIntOpt(fd, SOL_NETLINK, opt, 1, "netlink option"));
  }
  if (n.portid() != 0) {
    sockaddr_nl a{};
    a.nl_family = AF_NETLINK;
    a.nl_pid = n.portid();
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      a.nl_pid = 0;
      if (errno != EADDRINUSE || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        return FailErrno("bind", "netlink port " + std::to_string(n.portid()));
      }
      LZ_WARN(
          "netlink port %u is taken: the socket gets another, which a peer that knew the "
          "old one does not reach",
          n.portid());
    }
  }
  for (uint32_t g : n.groups()) {
    LZ_TRY(SetIntOpt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, static_cast<int>(g),
                     "NETLINK_ADD_MEMBERSHIP"));
  }
  if (n.dst_portid() != 0 || n.dst_group() != 0) {
    sockaddr_nl d{};
    d.nl_family = AF_NETLINK;
    d.nl_pid = n.dst_portid();
    d.nl_groups = n.dst_group();
    if (::connect(fd, reinterpret_cast<sockaddr*>(&d), sizeof d) != 0) {
      return FailErrno("connect", "netlink socket");
    }
  }
  LZ_TRY(SetStatusFlags(fd, f.flags()));
  return sock;
}

Result<UniqueFd> OpenTimerfd(const pb::OpenFile& f) {
  const pb::TimerfdInfo& t = f.timerfd();
  int fd = ::timerfd_create(t.clockid(), TFD_CLOEXEC);
  if (fd < 0) {
    return FailErrno("timerfd_create");
  }
  UniqueFd out(fd);
  if (t.ticks() > 0) {
    uint64_t ticks = t.ticks();
    if (::ioctl(fd, TFD_IOC_SET_TICKS, &ticks) != 0) {
      return FailErrno("timerfd TFD_IOC_SET_TICKS");
    }
  }
  itimerspec its{};
  its.it_interval.tv_sec = static_cast<time_t>(t.interval_ns() / 1000000000);
  its.it_interval.tv_nsec = static_cast<long>(t.interval_ns() % 1000000000);
  its.it_value.tv_sec = static_cast<time_t>(t.value_ns() / 1000000000);
  its.it_value.tv_nsec = static_cast<long>(t.value_ns() % 1000000000);
  // fdinfo gives the time left, so the timer is rearmed relative to now.
  if (::timerfd_settime(fd, 0, &its, nullptr) != 0) {
    return FailErrno("timerfd_settime");
  }
  LZ_TRY(SetStatusFlags(fd, f.flags()));
  return out;
}

// What a watch is put on: the path of the dump when it still names the same file, else the
// file its handle names (through /proc/self/fd: `keep` holds it open), else a file of the same
// path (the images moved to another machine).
struct WatchTarget {
  std::string path;
  uint32_t flags = 0;  // IN_DONT_FOLLOW when `path` names the watched file itself
  UniqueFd keep;
};

Result<WatchTarget> FindWatched(const pb::InotifyWatch& w) {
  struct stat st;
  bool named = !w.path().empty() && ::lstat(w.path().c_str(), &st) == 0;
  if (named && st.st_dev == w.dev() && st.st_ino == w.ino()) {
    return WatchTarget{w.path(), IN_DONT_FOLLOW, {}};
  }
  auto opened = OpenByHandle("/proc/self", w.fs_dev(), w.handle_type(), w.handle());
  if (opened && ::fstat(opened->get(), &st) == 0 && st.st_dev == w.dev() && st.st_ino == w.ino()) {
    return WatchTarget{"/proc/self/fd/" + std::to_string(opened->get()), 0, std::move(*opened)};
  }
  if (named) {
    return WatchTarget{w.path(), IN_DONT_FOLLOW, {}};
  }
  return Invalid("inotify watch " + std::to_string(w.wd()) + ": the watched file " +
                 (w.path().empty() ? "(inode " + std::to_string(w.ino()) + ")" : w.path()) +
                 " is not there");
}

// inotify numbers watches in turn and never reuses a number soon: a watch gets its number
// back by taking (and giving up) the ones before it (the dump refuses numbers above
// img::kMaxInotifyWd). IN_MASK_CREATE: a file that two watches lead to (a path fallback, hard
// links on another machine) fails instead of merging the watches.
Status AddWatchAs(int ifd, const pb::InotifyWatch& w, bool* skipped) {
  LZ_ASSIGN_OR_RETURN(WatchTarget t, FindWatched(w));
  uint32_t mask = w.mask() | t.flags | IN_MASK_CREATE;
  for (int tries = 0;; tries++) {
    int wd = ::inotify_add_watch(ifd, t.path.c_str(), mask);
    if (wd < 0) {
      return FailErrno("inotify_add_watch", t.path);
    }
    if (wd == w.wd()) {
      return Ok();
    }
    if (wd > w.wd() || tries > img::kMaxInotifyWd) {
      return Invalid("inotify watch " + std::to_string(w.wd()) + " on " + w.path() +
                     " cannot get its number back (the kernel gave " + std::to_string(wd) + ")");
    }
    if (::inotify_rm_watch(ifd, wd) != 0) {
      return FailErrno("inotify_rm_watch");
    }
    *skipped = true;
  }
}

Result<UniqueFd> OpenInotify(const pb::OpenFile& f) {
  int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) {
    return FailErrno("inotify_init1");
  }
  UniqueFd out(fd);
  std::vector<const pb::InotifyWatch*> watches;
  for (const pb::InotifyWatch& w : f.inotify()) {
    watches.push_back(&w);
  }
  std::sort(watches.begin(), watches.end(), [](auto* a, auto* b) { return a->wd() < b->wd(); });
  bool skipped = false;
  for (const pb::InotifyWatch* w : watches) {
    LZ_TRY(AddWatchAs(fd, *w, &skipped));
  }
  // Each watch given up queued an IN_IGNORED the task must not see. Events of the watches
  // already added, from the moments of the restore, go with them.
  if (skipped) {
    std::vector<char> drain(64 << 10);
    while (::read(fd, drain.data(), drain.size()) > 0) {
    }
  }
  LZ_TRY(SetStatusFlags(fd, f.flags()));
  return out;
}

Result<UniqueFd> OpenSimpleAnon(const pb::OpenFile& f) {
  int fd = -1;
  switch (f.type()) {
    case pb::FILE_EVENTFD:
      fd = ::eventfd(static_cast<unsigned>(f.eventfd().count()),
                     EFD_CLOEXEC | (f.eventfd().semaphore() ? EFD_SEMAPHORE : 0));
      break;
    case pb::FILE_EPOLL:
      fd = ::epoll_create1(EPOLL_CLOEXEC);
      break;
    case pb::FILE_SIGNALFD: {
      sigset_t mask;
      sigemptyset(&mask);
      uint64_t bits = f.signalfd_mask();
      std::memcpy(&mask, &bits, sizeof bits);
      fd = ::signalfd(-1, &mask, SFD_CLOEXEC);
      break;
    }
    default:
      return Invalid("unknown file type");
  }
  if (fd < 0) {
    return FailErrno("create", "file of type " + std::to_string(f.type()));
  }
  UniqueFd out(fd);
  LZ_TRY(SetStatusFlags(fd, f.flags()));
  return out;
}

}  // namespace

FileOpener::FileOpener(std::string images_dir, int floor, const img::Dump& dump,
                       const SharedMemory& shm)
    : dir_(std::move(images_dir)), floor_(floor), dump_(dump), shm_(shm) {
  Plan();
}

// Finds every object that more than one task holds and the task that must create it.
void FileOpener::Plan() {
  for (const img::TaskImages& t : dump_.tasks) {
    parent_[t.core.pid()] = t.core.ppid();
  }
  struct Holders {
    const pb::OpenFile* file = nullptr;
    std::vector<pid_t> pids;
  };
  std::map<uint64_t, Holders> pipes, pairs;
  std::map<uint32_t, Holders> files;
  for (const img::TaskImages& t : dump_.tasks) {
    pid_t pid = t.core.pid();
    auto add = [&](Holders& h, const pb::OpenFile& f) {
      if (h.file == nullptr) {
        h.file = &f;
      }
      if (h.pids.empty() || h.pids.back() != pid) {
        h.pids.push_back(pid);
      }
    };
    for (const pb::OpenFile& f : t.fds.files()) {
      if (f.type() == pb::FILE_PIPE || f.type() == pb::FILE_FIFO) {
        add(pipes[f.pipe().ino()], f);
      }
      if (f.type() == pb::FILE_UNIX && f.unix_socket().peer_ino() != 0) {
        add(pairs[std::min(f.ino(), f.unix_socket().peer_ino())], f);
      }
      if (f.tree_id() != 0) {
        add(files[f.tree_id()], f);
      }
    }
  }
  // Pipes and socketpairs first: a shared open file may be one end of them.
  auto plan = [&](const auto& objects, Kind kind) {
    for (const auto& [key, h] : objects) {
      if (h.pids.size() > 1) {
        created_[Creator(h.pids)].push_back({kind, h.file});
      }
    }
  };
  plan(pipes, Kind::kPipe);
  plan(pairs, Kind::kUnixPair);
  plan(files, Kind::kFile);
}

const pb::OpenFile* FileOpener::FirstRecorded(
    const std::function<bool(const pb::OpenFile&)>& recorded) const {
  for (const img::TaskImages& t : dump_.tasks) {
    for (const pb::OpenFile& o : t.fds.files()) {
      if (recorded(o)) {
        return &o;
      }
    }
  }
  return nullptr;
}

bool FileOpener::IsAncestorOrSelf(pid_t a, pid_t b) const {
  for (;;) {
    if (a == b) {
      return true;
    }
    auto it = parent_.find(b);
    if (it == parent_.end()) {
      return false;
    }
    b = it->second;
  }
}

// The nearest task above (or among) every holder: the first ancestor of one holder that is
// an ancestor of all of them.
pid_t FileOpener::Creator(const std::vector<pid_t>& holders) const {
  for (pid_t c = holders.front();;) {
    if (std::all_of(holders.begin(), holders.end(),
                    [&](pid_t h) { return IsAncestorOrSelf(c, h); })) {
      return c;
    }
    auto it = parent_.find(c);
    if (it == parent_.end()) {
      return dump_.tasks.front().core.pid();
    }
    c = it->second;
  }
}

Status FileOpener::OpenSharedFor(pid_t pid) {
  auto it = created_.find(pid);
  if (it == created_.end()) {
    return Ok();
  }
  for (const Shared& s : it->second) {
    switch (s.kind) {
      case Kind::kPipe:
        if (!pipes_.count(s.file->pipe().ino())) {
          LZ_TRY(CreatePipe(*s.file));
        }
        break;
      case Kind::kUnixPair:
        if (!unix_ends_.count(s.file->ino())) {
          LZ_TRY(CreateSocketPair(*s.file));
        }
        break;
      case Kind::kFile: {
        auto o = OpenUnshared(*s.file);
        if (!o) {
          return Unexpected{o.error().Wrap("shared file " + std::to_string(s.file->tree_id()))};
        }
        LZ_ASSIGN_OR_RETURN(tree_files_[s.file->tree_id()], Above(o->release()));
        break;
      }
    }
  }
  return Ok();
}

std::vector<int> FileOpener::HeldFds() const {
  std::vector<int> out;
  for (const auto& [ino, ends] : pipes_) {
    out.push_back(ends.rd.get());
    out.push_back(ends.wr.get());
  }
  for (const auto& [ino, fd] : unix_ends_) {
    out.push_back(fd.get());
  }
  for (const auto& [id, fd] : tree_files_) {
    out.push_back(fd.get());
  }
  return out;
}

Status FileOpener::CreatePipe(const pb::OpenFile& f) {
  uint64_t ino = f.pipe().ino();
  int p[2];
  if (f.type() == pb::FILE_FIFO) {
    // A named pipe: one read-write open of the path never blocks and keeps a reader there,
    // so that the ends reopened below (write-only ones too) open at once.
    LZ_ASSIGN_OR_RETURN(UniqueFd holder, OpenFile(f.path(), O_RDWR | O_NONBLOCK));
    struct stat st;
    if (::fstat(holder.get(), &st) != 0 || !S_ISFIFO(st.st_mode)) {
      return Invalid(f.path() + " is no longer a FIFO");
    }
    p[0] = holder.release();
    p[1] = ::dup(p[0]);
  } else if (::pipe2(p, O_CLOEXEC) != 0) {
    return FailErrno("pipe2");
  }
  LZ_ASSIGN_OR_RETURN(UniqueFd rd, Above(p[0]));
  LZ_ASSIGN_OR_RETURN(UniqueFd wr, Above(p[1]));
  if (f.pipe().capacity() > 0 && ::fcntl(wr.get(), F_SETPIPE_SZ, f.pipe().capacity()) < 0) {
    return FailErrno("F_SETPIPE_SZ");
  }
  // Every read end recorded the same buffered bytes: write them once.
  const pb::OpenFile* queued = FirstRecorded([ino](const pb::OpenFile& o) {
    bool pipe = o.type() == pb::FILE_PIPE || o.type() == pb::FILE_FIFO;
    return pipe && o.pipe().ino() == ino && !o.pipe().data().empty();
  });
  if (queued != nullptr) {
    LZ_TRY(WriteAll(wr.get(), queued->pipe().data()));
  }
  pipes_.emplace(ino, PipeEnds{std::move(rd), std::move(wr)});
  return Ok();
}

Result<UniqueFd> FileOpener::OpenPipeEnd(const pb::OpenFile& f) {
  if (!pipes_.count(f.pipe().ino())) {
    LZ_TRY(CreatePipe(f));
  }
  const PipeEnds& ends = pipes_.at(f.pipe().ino());
  int end = (f.flags() & O_ACCMODE) == O_RDONLY ? ends.rd.get() : ends.wr.get();
  // Each open file of the pipe gets its own status flags: reopen the end through /proc.
  LZ_ASSIGN_OR_RETURN(UniqueFd mine, OpenFile("/proc/self/fd/" + std::to_string(end),
                                              (f.flags() & O_ACCMODE) | O_NONBLOCK));
  LZ_TRY(SetStatusFlags(mine.get(), f.flags()));
  return mine;
}

Result<UniqueFd> FileOpener::Above(int fd) {
  if (fd < 0) {
    return FailErrno("create");
  }
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, floor_);
  ::close(fd);
  if (high < 0) {
    return FailErrno("fcntl F_DUPFD");
  }
  return UniqueFd(high);
}

// Both ends of a connected pair, with the stream bytes or the messages each end had queued to
// read.
Status FileOpener::CreateSocketPair(const pb::OpenFile& f) {
  const pb::UnixInfo& u = f.unix_socket();
  int sv[2];
  if (::socketpair(AF_UNIX, u.type() | SOCK_CLOEXEC, 0, sv) != 0) {
    return FailErrno("socketpair");
  }
  LZ_ASSIGN_OR_RETURN(UniqueFd mine, Above(sv[0]));
  LZ_ASSIGN_OR_RETURN(UniqueFd peer, Above(sv[1]));
  // What was queued for an end to read is written into the other end, once per end.
  for (uint64_t end : {f.ino(), u.peer_ino()}) {
    const pb::OpenFile* own = FirstRecorded(
        [end](const pb::OpenFile& o) { return o.type() == pb::FILE_UNIX && o.ino() == end; });
    if (own != nullptr) {
      LZ_TRY(SetUnixOptions(end == f.ino() ? mine.get() : peer.get(), own->unix_socket()));
    }
    const pb::OpenFile* queued = FirstRecorded([end](const pb::OpenFile& o) {
      const pb::UnixInfo& q = o.unix_socket();
      return o.type() == pb::FILE_UNIX && o.ino() == end &&
             (!q.data().empty() || q.messages_size() > 0);
    });
    if (queued == nullptr) {
      continue;
    }
    int into = end == f.ino() ? peer.get() : mine.get();
    LZ_TRY(WriteAll(into, queued->unix_socket().data()));
    for (const std::string& m : queued->unix_socket().messages()) {
      if (::send(into, m.data(), m.size(), MSG_DONTWAIT | MSG_NOSIGNAL) !=
          static_cast<ssize_t>(m.size())) {
        return FailErrno("queue a message on a unix socket");
      }
    }
  }
  unix_ends_[f.ino()] = std::move(mine);
  unix_ends_[u.peer_ino()] = std::move(peer);
  return Ok();
}

namespace {

// The address of unix socket name `name` (sun_path bytes as getsockname gives them: a leading
// NUL for the abstract namespace) and its length; `what` names it in the error.
Result<socklen_t> UnixAddress(const std::string& name, const char* what, sockaddr_un* addr) {
  *addr = sockaddr_un{};
  addr->sun_family = AF_UNIX;
  if (name.size() > sizeof addr->sun_path) {
    return Invalid(std::string(what) + " too long");
  }
  std::memcpy(addr->sun_path, name.data(), name.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
}

std::string ShownUnixName(const std::string& name) {
  if (name.empty()) {
    return "(unnamed)";
  }
  return name[0] == '\0' ? "@" + name.substr(1) : std::string(name.c_str());
}

Status ConnectUnix(int s, const std::string& name) {
  sockaddr_un addr;
  LZ_ASSIGN_OR_RETURN(socklen_t len, UnixAddress(name, "unix socket peer name", &addr));
  if (::connect(s, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    return FailErrno("connect unix socket to", ShownUnixName(name));
  }
  return Ok();
}

// The messages other sockets had sent to the bound socket `u`, each sent again to its name
// from one socket without an address, as they were (the dump refused any from a named
// sender). What it sent counts against its send buffer until read: made room for all.
Status QueueMessagesTo(const pb::UnixInfo& u) {
  sockaddr_un addr;
  LZ_ASSIGN_OR_RETURN(socklen_t len, UnixAddress(u.name(), "unix socket name", &addr));
  UniqueFd from(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!from) {
    return FailErrno("socket");
  }
  uint64_t bytes = 0;
  for (const std::string& m : u.messages()) {
    bytes += m.size() + 1024;  // and the kernel's own share of each
  }
  int room = static_cast<int>(std::min<uint64_t>(bytes, INT32_MAX / 2));
  LZ_TRY(SetIntOpt(from.get(), SOL_SOCKET, SO_SNDBUFFORCE, room, "SO_SNDBUFFORCE"));
  for (const std::string& m : u.messages()) {
    if (::sendto(from.get(), m.data(), m.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                 reinterpret_cast<sockaddr*>(&addr), len) != static_cast<ssize_t>(m.size())) {
      return FailErrno("queue a message on unix socket", ShownUnixName(u.name()));
    }
  }
  return Ok();
}

}  // namespace

Result<UniqueFd> FileOpener::OpenUnixSocket(const pb::OpenFile& f) {
  const pb::UnixInfo& u = f.unix_socket();
  if (u.peer_ino() != 0) {
    if (!unix_ends_.count(f.ino())) {
      LZ_TRY(CreateSocketPair(f));
    }
    int end = ::fcntl(unix_ends_[f.ino()].get(), F_DUPFD_CLOEXEC, floor_);
    if (end < 0) {
      return FailErrno("fcntl F_DUPFD");
    }
    UniqueFd out(end);
    LZ_TRY(SetStatusFlags(end, f.flags()));
    return out;
  }
  LZ_ASSIGN_OR_RETURN(UniqueFd s, Above(::socket(AF_UNIX, u.type() | SOCK_CLOEXEC, 0)));
  if (!u.name().empty()) {
    sockaddr_un addr;
    LZ_ASSIGN_OR_RETURN(socklen_t len, UnixAddress(u.name(), "unix socket name", &addr));
    if (u.name()[0] != '\0') {
      // The dumped task's socket file is still there (the task is gone): bind needs it away.
      std::string path(u.name().c_str());
      struct stat st;
      if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
        ::unlink(path.c_str());
      }
    }
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) {
      return FailErrno("bind unix socket");
    }
    if (u.name()[0] != '\0' && u.has_file_mode()) {
      // Who may connect is decided by the socket file: give it back its mode and owner.
      std::string path(u.name().c_str());
      if (::chmod(path.c_str(), u.file_mode()) != 0 ||
          ::lchown(path.c_str(), u.file_uid(), u.file_gid()) != 0) {
        return FailErrno("restore owner and mode of", path);
      }
    }
  }
  if (u.listening() && ::listen(s.get(), static_cast<int>(u.backlog())) != 0) {
    return FailErrno("listen");
  }
  LZ_TRY(SetUnixOptions(s.get(), u));
  if (u.messages_size() > 0) {
    LZ_TRY(QueueMessagesTo(u));
  }
  // A peer in the tree may be bound by a task not made yet: ConnectTreeDatagramClients.
  if (!u.peer_name().empty() && !u.peer_in_tree()) {
    LZ_TRY(ConnectUnix(s.get(), u.peer_name()));
  }
  LZ_TRY(SetStatusFlags(s.get(), f.flags()));
  return s;
}

Status ConnectTreeDatagramClients(const img::Dump& dump) {
  std::set<uint64_t> done;  // tree ids: a file shared by several tasks is connected once
  for (const img::TaskImages& t : dump.tasks) {
    UniqueFd pidfd;
    for (const pb::OpenFile& f : t.fds.files()) {
      if (f.type() != pb::FILE_UNIX || !f.unix_socket().peer_in_tree() ||
          (f.tree_id() != 0 && !done.insert(f.tree_id()).second)) {
        continue;
      }
      if (!pidfd) {
        LZ_ASSIGN_OR_RETURN(pidfd, PidfdOpen(t.core.pid()));
      }
      int fd = img::FirstFdOf(t.fds, f.id());
      LZ_ASSIGN_OR_RETURN(UniqueFd s, PidfdGetfd(pidfd.get(), fd));
      LZ_TRY_CTX(ConnectUnix(s.get(), f.unix_socket().peer_name()),
                 "fd " + std::to_string(fd) + " of " + std::to_string(t.core.pid()));
    }
  }
  return Ok();
}

Result<UniqueFd> FileOpener::Open(const pb::OpenFile& f) {
  auto it = f.tree_id() != 0 ? tree_files_.find(f.tree_id()) : tree_files_.end();
  if (it != tree_files_.end()) {
    return Above(::dup(it->second.get()));  // the one open file, made by an ancestor
  }
  return OpenUnshared(f);
}

// A new open file of the memfd the front-end made: same object, this file's own flags and offset.
Result<UniqueFd> FileOpener::OpenMemfd(const pb::OpenFile& f) {
  LZ_ASSIGN_OR_RETURN(std::string path, shm_.PathOf(f.shmem_id()));
  LZ_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, f.flags() & kReopenFlags));
  if (::lseek(fd.get(), static_cast<off_t>(f.pos()), SEEK_SET) < 0) {
    return FailErrno("lseek", f.path());
  }
  return fd;
}

struct flock PosixRange(const pb::FileLock& l) {
  struct flock fl {};
  fl.l_type = l.write() ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(l.start());
  fl.l_len = l.end() == UINT64_MAX ? 0 : static_cast<off_t>(l.end() - l.start() + 1);  // 0: to EOF
  return fl;
}

namespace {

// The locks an open file holds itself (flock, OFD), taken on the new open file before any
// descriptor of the task refers to it. POSIX locks belong to the process and go away when it
// closes any descriptor of the file: the state restore takes them last (task_restore.cc).
Status TakeOpenFileLocks(int fd, const pb::OpenFile& f) {
  for (const pb::FileLock& l : f.locks()) {
    int r = 0;
    if (l.kind() == pb::LOCK_FLOCK) {
      r = ::flock(fd, (l.write() ? LOCK_EX : LOCK_SH) | LOCK_NB);
    } else if (l.kind() == pb::LOCK_OFD) {
      struct flock fl = PosixRange(l);
      r = ::fcntl(fd, F_OFD_SETLK, &fl);
    } else if (l.kind() != pb::LOCK_POSIX) {
      return Invalid("a lock of unknown kind " + std::to_string(l.kind()) + " on " + f.path());
    }
    if (r != 0) {
      return errno == EWOULDBLOCK || errno == EAGAIN
                 ? Invalid("the lock on " + f.path() + " is held by another process now")
                 : FailErrno("lock", f.path());
    }
  }
  return Ok();
}

}  // namespace

Result<UniqueFd> FileOpener::OpenUnshared(const pb::OpenFile& f) {
  LZ_ASSIGN_OR_RETURN(UniqueFd fd, OpenObject(f));
  LZ_TRY(TakeOpenFileLocks(fd.get(), f));
  return fd;
}

Result<UniqueFd> FileOpener::OpenObject(const pb::OpenFile& f) {
  switch (f.type()) {
    case pb::FILE_REG:
      return OpenRegular(f, dir_);
    case pb::FILE_DIR:
      return OpenFile(f.path(), (f.flags() & kReopenFlags) | O_DIRECTORY);
    case pb::FILE_CHR:
      return OpenDevice(f);
    case pb::FILE_PIPE:
    case pb::FILE_FIFO:
      return OpenPipeEnd(f);
    case pb::FILE_INET:
      return OpenInetSocket(f);
    case pb::FILE_UNIX:
      return OpenUnixSocket(f);
    case pb::FILE_TIMERFD:
      return OpenTimerfd(f);
    case pb::FILE_MEMFD:
      return OpenMemfd(f);
    case pb::FILE_INOTIFY:
      return OpenInotify(f);
    case pb::FILE_NETLINK:
      return OpenNetlinkSocket(f);
    case pb::FILE_EVENTFD:
    case pb::FILE_EPOLL:
    case pb::FILE_SIGNALFD:
      return OpenSimpleAnon(f);
    default:
      return Invalid("cannot restore file type " + std::to_string(f.type()) + " (" + f.path() +
                     ")");
  }
}

Status FileOpener::FinishEpoll(const pb::FdTable& table) {
  for (const pb::OpenFile& f : table.files()) {
    if (f.type() != pb::FILE_EPOLL || f.epoll_size() == 0) {
      continue;
    }
    int epfd = img::FirstFdOf(table, f.id());
    for (const pb::EpollWatch& w : f.epoll()) {
      epoll_event ev{};
      ev.events = w.events();
      ev.data.u64 = w.data();
      // EEXIST: an epoll shared with another task of the tree got the watch from there.
      if (::epoll_ctl(epfd, EPOLL_CTL_ADD, w.fd(), &ev) != 0 && errno != EEXIST) {
        return FailErrno("epoll_ctl", "watch of fd " + std::to_string(w.fd()));
      }
    }
  }
  pipes_.clear();  // ends no descriptor took are closed
  unix_ends_.clear();
  tree_files_.clear();
  return Ok();
}

}  // namespace lz
