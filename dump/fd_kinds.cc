#include "dump/fd_kinds.h"

#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <span>
#include <vector>

#include "base/file_util.h"
#include "base/proc.h"
#include "base/sys.h"
#include "images/format.h"

namespace lz {

Status DumpPipe(pid_t pid, int fd, const struct stat& st, pb::OpenFile* f) {
  f->set_type(pb::FILE_PIPE);
  pb::PipeInfo* p = f->mutable_pipe();
  p->set_ino(st.st_ino);
  // Opening the descriptor's /proc link gives us a read end of the same pipe. tee() copies the
  // buffered bytes into a pipe of ours without consuming them, so the task loses nothing.
  LZ_ASSIGN_OR_RETURN(UniqueFd rd,
                      OpenFile("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd),
                               O_RDONLY | O_NONBLOCK));
  int cap = ::fcntl(rd.get(), F_GETPIPE_SZ);
  if (cap < 0) {
    return FailErrno("F_GETPIPE_SZ", "fd " + std::to_string(fd));
  }
  p->set_capacity(static_cast<uint32_t>(cap));
  if ((f->flags() & O_ACCMODE) != O_RDONLY) {
    return Ok();  // the data is kept once, with the read end
  }
  int tmp[2];
  if (::pipe2(tmp, O_CLOEXEC | O_NONBLOCK) != 0) {
    return FailErrno("pipe2");
  }
  UniqueFd tr(tmp[0]), tw(tmp[1]);
  ::fcntl(tw.get(), F_SETPIPE_SZ, cap);
  ssize_t n = ::tee(rd.get(), tw.get(), INT_MAX, SPLICE_F_NONBLOCK);
  if (n < 0 && errno != EAGAIN) {
    return FailErrno("tee", "pipe of fd " + std::to_string(fd));
  }
  if (n > 0) {
    std::string data(static_cast<size_t>(n), '\0');
    if (::read(tr.get(), data.data(), data.size()) != n) {
      return FailErrno("read pipe copy");
    }
    p->set_data(std::move(data));
  }
  return Ok();
}

namespace {

// Opens a sock_diag netlink socket and sends `msg` (an nlmsghdr and its request) on it; the
// answer is read by the caller.
Result<UniqueFd> SendSockDiag(const void* msg, size_t len) {
  int nl = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) {
    return FailErrno("socket NETLINK_SOCK_DIAG");
  }
  UniqueFd sock(nl);
  if (::send(nl, msg, len, 0) != static_cast<ssize_t>(len)) {
    return FailErrno("send sock_diag request");
  }
  return sock;
}

// Backlog of a listening TCP socket, which only sock_diag tells.
Result<uint32_t> ListenBacklog(int family, uint64_t ino) {
  struct {
    nlmsghdr nh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nh.nlmsg_len = sizeof msg;
  msg.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = static_cast<uint8_t>(family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = 1u << 10;  // TCP_LISTEN
  LZ_ASSIGN_OR_RETURN(UniqueFd sock, SendSockDiag(&msg, sizeof msg));
  int nl = sock.get();
  std::vector<char> buf(32768);
  for (;;) {
    ssize_t n = ::recv(nl, buf.data(), buf.size(), 0);
    if (n <= 0) {
      return FailErrno("recv sock_diag");
    }
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        return Invalid("sock_diag", "listening socket " + std::to_string(ino) + " not found");
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        return Invalid("sock_diag", "error reply");
      }
      // Invariant: a SOCK_DIAG_BY_FAMILY reply carries an inet_diag_msg.
      auto* d = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
      if (d->idiag_inode == ino) {
        return d->idiag_wqueue;  // for listeners: the backlog given to listen()
      }
    }
  }
}

int IntOpt(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof v;
  ::getsockopt(fd, level, name, &v, &len);
  return v;
}

}  // namespace

namespace {

struct UnixDiag {
  uint32_t peer = 0;
  uint32_t rqueue = 0;  // queued bytes, or pending connections of a listener
  uint32_t wqueue = 0;  // a listener's backlog
};

// What only unix_diag tells about a unix socket: its peer and its queue lengths.
Result<UnixDiag> QueryUnix(uint64_t ino) {
  struct {
    nlmsghdr nh;
    unix_diag_req req;
  } msg{};
  msg.nh.nlmsg_len = sizeof msg;
  msg.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nh.nlmsg_flags = NLM_F_REQUEST;
  msg.req.sdiag_family = AF_UNIX;
  msg.req.udiag_states = ~0u;
  msg.req.udiag_ino = static_cast<uint32_t>(ino);
  msg.req.udiag_show = UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN;
  msg.req.udiag_cookie[0] = msg.req.udiag_cookie[1] = ~0u;
  LZ_ASSIGN_OR_RETURN(UniqueFd sock, SendSockDiag(&msg, sizeof msg));
  int nl = sock.get();
  std::vector<char> buf(8192);
  ssize_t n = ::recv(nl, buf.data(), buf.size(), 0);
  if (n <= 0) {
    return FailErrno("recv unix_diag");
  }
  auto* h = reinterpret_cast<nlmsghdr*>(buf.data());
  if (!NLMSG_OK(h, n) || h->nlmsg_type != SOCK_DIAG_BY_FAMILY) {
    return Invalid("unix_diag", "no answer for socket " + std::to_string(ino));
  }
  UnixDiag out;
  // Invariant: the attributes follow the unix_diag_msg, each nlattr-framed and 4-aligned.
  size_t off = NLMSG_LENGTH(sizeof(unix_diag_msg));
  while (off + sizeof(nlattr) <= h->nlmsg_len) {
    auto* a = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(h) + off);
    if (a->nla_len < sizeof(nlattr) || off + a->nla_len > h->nlmsg_len) {
      break;
    }
    const char* data = reinterpret_cast<const char*>(a) + NLA_HDRLEN;
    if (a->nla_type == UNIX_DIAG_PEER && a->nla_len >= NLA_HDRLEN + 4) {
      std::memcpy(&out.peer, data, 4);
    } else if (a->nla_type == UNIX_DIAG_RQLEN && a->nla_len >= NLA_HDRLEN + 8) {
      unix_diag_rqlen rq;
      std::memcpy(&rq, data, sizeof rq);
      out.rqueue = rq.udiag_rqueue;
      out.wqueue = rq.udiag_wqueue;
    }
    off += NLA_ALIGN(a->nla_len);
  }
  return out;
}

}  // namespace

// One MSG_PEEK of what is queued on `s` into `buf`: the bytes (or, with MSG_TRUNC, the whole
// message's length), and in `*carries` whether it came with descriptors or credentials, which
// cannot be queued again as they were, and in `*named_sender`, if given, whether it came from
// a socket with an address. A peek hands us copies of the descriptors: closed here.
Result<size_t> PeekOnce(int s, std::span<char> buf, int flags, bool* carries,
                        bool* named_sender = nullptr) {
  alignas(cmsghdr) char control[512];
  iovec iov{buf.data(), buf.size()};
  sockaddr_un from{};
  msghdr mh{};
  mh.msg_name = &from;
  mh.msg_namelen = sizeof from;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(s, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | flags);
  if (n < 0) {
    return Fail(errno, "peek unix socket");
  }
  if (named_sender != nullptr) {
    *named_sender = mh.msg_namelen > sizeof(sa_family_t);
  }
  *carries = mh.msg_controllen > 0 || (mh.msg_flags & MSG_CTRUNC);
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      auto* fds = reinterpret_cast<int*>(CMSG_DATA(c));
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t k = 0; k < count; k++) {
        ::close(fds[k]);
      }
    }
  }
  return static_cast<size_t>(n);
}

constexpr const char* kCarriesFds =
    "unix socket holds queued data with descriptors or credentials, which is not supported";

// Sets a socket's peek offset (SO_PEEK_OFF: -1 off, else where the next MSG_PEEK starts and
// which it moves) for as long as it lives, then puts back the task's own: our copy of the
// socket shares it with the task.
class ScopedPeekOffset {
 public:
  static Result<ScopedPeekOffset> Set(int s, int off) {
    int saved = -1;
    socklen_t len = sizeof saved;
    if (::getsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &saved, &len) != 0) {
      return FailErrno("getsockopt SO_PEEK_OFF");
    }
    if (::setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off) != 0) {
      return FailErrno("setsockopt SO_PEEK_OFF");
    }
    return ScopedPeekOffset(s, saved);
  }
  ScopedPeekOffset(ScopedPeekOffset&& o) noexcept : s_(o.s_), saved_(o.saved_) { o.s_ = -1; }
  ScopedPeekOffset(const ScopedPeekOffset&) = delete;
  ScopedPeekOffset& operator=(const ScopedPeekOffset&) = delete;
  ScopedPeekOffset& operator=(ScopedPeekOffset&&) = delete;
  ~ScopedPeekOffset() {
    if (s_ >= 0) {
      (void)::setsockopt(s_, SOL_SOCKET, SO_PEEK_OFF, &saved_, sizeof saved_);
    }
  }

 private:
  ScopedPeekOffset(int s, int saved) : s_(s), saved_(saved) {}
  int s_;
  int saved_;
};

// Every datagram (or seqpacket) queued on `s`, without taking any: each MSG_PEEK moves the
// socket's peek offset past the message it returned. `*named_senders`: whether any came from a
// socket with an address (a restore cannot send it from there).
Status PeekMessages(int s, int type, pb::UnixInfo* u, bool* named_senders) {
  LZ_ASSIGN_OR_RETURN(ScopedPeekOffset from_start, ScopedPeekOffset::Set(s, 0));
  std::vector<char> buf(1 << 20);
  Status st = Ok();
  for (;;) {
    bool carries = false;
    bool named = false;
    auto n = PeekOnce(s, buf, MSG_TRUNC, &carries, &named);
    if (!n) {
      if (n.error().code != EAGAIN && n.error().code != ENOTCONN) {  // ENOTCONN: not connected
        st = Unexpected{n.error()};
      }
      break;
    }
    if (carries) {
      st = Invalid(kCarriesFds);
      break;
    }
    if (*n == 0 && type == SOCK_SEQPACKET) {
      break;  // the peer shut down: the end of the queue
    }
    if (*n == 0 || *n > buf.size()) {
      // An empty datagram would not move the peek offset; a huge one does not fit.
      st = Invalid("unix socket holds a queued message of " + std::to_string(*n) +
                   " bytes, which is not supported");
      break;
    }
    u->add_messages(buf.data(), *n);
    *named_senders = *named_senders || named;
  }
  return st;
}

Status DumpUnixSocket(int pidfd, int fd, const struct stat& st, pb::OpenFile* f) {
  LZ_ASSIGN_OR_RETURN(UniqueFd s, PidfdGetfd(pidfd, fd));
  int type = IntOpt(s.get(), SOL_SOCKET, SO_TYPE);
  LZ_ASSIGN_OR_RETURN(UnixDiag diag, QueryUnix(st.st_ino));
  f->set_type(pb::FILE_UNIX);
  pb::UnixInfo* u = f->mutable_unix_socket();
  u->set_type(type);
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(s.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
      len > sizeof(sa_family_t)) {
    u->set_name(std::string(addr.sun_path, len - sizeof(sa_family_t)));
    struct stat fst;
    if (addr.sun_path[0] != '\0' && ::lstat(addr.sun_path, &fst) == 0 && S_ISSOCK(fst.st_mode)) {
      u->set_file_mode(fst.st_mode & 07777);
      u->set_file_uid(fst.st_uid);
      u->set_file_gid(fst.st_gid);
    }
  }
  u->set_passcred(IntOpt(s.get(), SOL_SOCKET, SO_PASSCRED) > 0);  // a log server's, say
  u->set_passsec(IntOpt(s.get(), SOL_SOCKET, SO_PASSSEC) > 0);
  u->set_listening(IntOpt(s.get(), SOL_SOCKET, SO_ACCEPTCONN) != 0);
  if (u->listening()) {
    u->set_backlog(diag.wqueue);
    return Ok();
  }
  u->set_peer_ino(diag.peer);
  if (diag.peer != 0 && type == SOCK_DGRAM) {
    sockaddr_un peer{};
    socklen_t plen = sizeof peer;
    if (::getpeername(s.get(), reinterpret_cast<sockaddr*>(&peer), &plen) == 0 &&
        plen > sizeof(sa_family_t)) {
      u->set_peer_name(std::string(peer.sun_path, plen - sizeof(sa_family_t)));
    }
  }
  if (type != SOCK_STREAM) {
    // Peeked whatever the queue length says: for datagrams it is the first one's length only,
    // which is 0 for an empty one however many follow.
    bool named_senders = false;
    LZ_TRY(PeekMessages(s.get(), type, u, &named_senders));
    if (u->messages_size() > 0 && diag.peer == 0) {
      // A server's socket (syslog's /dev/log): its clients' messages are sent to its name
      // again at the restore, from a socket without an address, as each of them came.
      if (u->name().empty() || type != SOCK_DGRAM) {
        return Invalid("unix socket without a peer or an address holds messages queued");
      }
      if (named_senders) {
        return Invalid(
            "unix datagram socket holds messages queued from senders with an address, "
            "which is not supported");
      }
    }
    return Ok();
  }
  if (diag.rqueue == 0) {
    return Ok();
  }
  // MSG_PEEK on our copy reads the queued bytes without taking them from the task, from the
  // start (a peek offset the task set would start it further on, and move). A peek stops
  // short at bytes that came with descriptors: refused as well.
  LZ_ASSIGN_OR_RETURN(ScopedPeekOffset off, ScopedPeekOffset::Set(s.get(), -1));
  std::string data(diag.rqueue, '\0');
  bool carries = false;
  LZ_ASSIGN_OR_RETURN(size_t n, PeekOnce(s.get(), data, 0, &carries));
  if (carries || n < data.size()) {
    return Invalid(kCarriesFds);
  }
  u->set_data(std::move(data));
  return Ok();
}

namespace {

// The SOL_NETLINK options that are on or off, kept as they were.
constexpr int kNetlinkFlags[] = {
    NETLINK_PKTINFO, NETLINK_BROADCAST_ERROR, NETLINK_NO_ENOBUFS,    NETLINK_LISTEN_ALL_NSID,
    NETLINK_CAP_ACK, NETLINK_EXT_ACK,         NETLINK_GET_STRICT_CHK};

Status DumpNetlinkSocket(int s, int type, int proto, pb::OpenFile* f) {
  if (type != SOCK_RAW && type != SOCK_DGRAM) {
    return Invalid("netlink socket of type " + std::to_string(type) + " is not supported");
  }
  if (proto == NETLINK_NETFILTER) {  // nfqueue, nflog: kernel state that goes with the socket
    return Invalid("netfilter netlink socket is not supported");
  }
  // A message queued may be the answer the task waits for: restored without it, it would wait
  // forever. Peeked on the copy, so the task loses nothing.
  char probe;
  if (::recv(s, &probe, 1, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC) >= 0) {
    return Invalid("netlink socket with messages queued is not supported");
  }
  socklen_t flen = 0;
  if (::getsockopt(s, SOL_SOCKET, SO_GET_FILTER, nullptr, &flen) == 0 && flen > 0) {
    return Invalid("netlink socket with a socket filter is not supported");
  }
  f->set_type(pb::FILE_NETLINK);
  pb::NetlinkInfo* n = f->mutable_netlink();
  n->set_protocol(proto);
  n->set_type(type);
  sockaddr_nl local{};
  socklen_t len = sizeof local;
  if (::getsockname(s, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    return FailErrno("getsockname", "netlink socket");
  }
  n->set_portid(local.nl_pid);
  // Every group joined, past the 32 that sockaddr_nl has room for (the kernel says how many
  // bytes it needs).
  std::vector<uint32_t> bits(64);
  for (int tries = 0; tries < 2; tries++) {
    len = static_cast<socklen_t>(bits.size() * sizeof(uint32_t));
    if (::getsockopt(s, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, bits.data(), &len) != 0) {
      return FailErrno("getsockopt NETLINK_LIST_MEMBERSHIPS");
    }
    if (len <= bits.size() * sizeof(uint32_t)) {
      break;
    }
    bits.resize((len + 3) / 4);
  }
  for (uint32_t g = 0; g < std::min<size_t>(len, bits.size() * 4) * 8; g++) {
    if (bits[g / 32] & (1u << (g % 32))) {
      n->add_groups(g + 1);
    }
  }
  sockaddr_nl peer{};
  len = sizeof peer;
  if (::getpeername(s, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    n->set_dst_portid(peer.nl_pid);
    n->set_dst_group(peer.nl_groups);
  }
  n->set_rcvbuf(IntOpt(s, SOL_SOCKET, SO_RCVBUF));
  n->set_sndbuf(IntOpt(s, SOL_SOCKET, SO_SNDBUF));
  n->set_passcred(IntOpt(s, SOL_SOCKET, SO_PASSCRED) > 0);  // udev monitors drop messages without
  n->set_passsec(IntOpt(s, SOL_SOCKET, SO_PASSSEC) > 0);    // their credentials
  for (int opt : kNetlinkFlags) {
    if (IntOpt(s, SOL_NETLINK, opt) > 0) {
      n->add_flags(opt);
    }
  }
  return Ok();
}

}  // namespace

Status DumpInetSocket(int pidfd, int fd, const struct stat& st, pb::OpenFile* f) {
  LZ_ASSIGN_OR_RETURN(UniqueFd s, PidfdGetfd(pidfd, fd));
  int family = IntOpt(s.get(), SOL_SOCKET, SO_DOMAIN);
  int type = IntOpt(s.get(), SOL_SOCKET, SO_TYPE);
  int proto = IntOpt(s.get(), SOL_SOCKET, SO_PROTOCOL);
  if (family == AF_UNIX) {
    return DumpUnixSocket(pidfd, fd, st, f);
  }
  if (family == AF_NETLINK) {
    return DumpNetlinkSocket(s.get(), type, proto, f);
  }
  if (family != AF_INET && family != AF_INET6) {
    return Invalid("socket of family " + std::to_string(family) + " is not supported");
  }
  if (type != SOCK_STREAM && type != SOCK_DGRAM) {
    return Invalid("inet socket of type " + std::to_string(type) + " is not supported");
  }
  f->set_type(pb::FILE_INET);
  pb::SocketInfo* si = f->mutable_socket();
  si->set_family(family);
  si->set_type(type);
  si->set_protocol(proto);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(s.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    si->set_local(std::string(reinterpret_cast<char*>(&ss), len));
  }
  si->set_listening(IntOpt(s.get(), SOL_SOCKET, SO_ACCEPTCONN) != 0);
  len = sizeof ss;
  bool connected = ::getpeername(s.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0;
  if (connected && type == SOCK_STREAM) {
    return Invalid("established TCP connections are not supported yet");
  }
  if (connected) {
    si->set_peer(std::string(reinterpret_cast<char*>(&ss), len));
  }
  if (si->listening()) {
    LZ_ASSIGN_OR_RETURN(uint32_t backlog, ListenBacklog(family, st.st_ino));
    si->set_backlog(backlog);
  }
  si->set_reuseaddr(IntOpt(s.get(), SOL_SOCKET, SO_REUSEADDR) != 0);
  si->set_reuseport(IntOpt(s.get(), SOL_SOCKET, SO_REUSEPORT) != 0);
  si->set_keepalive(IntOpt(s.get(), SOL_SOCKET, SO_KEEPALIVE) != 0);
  si->set_broadcast(IntOpt(s.get(), SOL_SOCKET, SO_BROADCAST) != 0);
  si->set_rcvbuf(IntOpt(s.get(), SOL_SOCKET, SO_RCVBUF));
  si->set_sndbuf(IntOpt(s.get(), SOL_SOCKET, SO_SNDBUF));
  if (family == AF_INET6) {
    si->set_v6only(IntOpt(s.get(), IPPROTO_IPV6, IPV6_V6ONLY) != 0);
  }
  if (type == SOCK_STREAM) {
    si->set_nodelay(IntOpt(s.get(), IPPROTO_TCP, TCP_NODELAY) != 0);
  }
  return Ok();
}

namespace {

// The watched file, found through its handle: its identity as stat(2) gives it, and the path
// that names it if one still does (a handle may lead to a dentry with no name, when the name
// is not in the dentry cache: the restore then goes by the handle alone).
struct Watched {
  struct stat st;
  std::string path;
};

Result<Watched> FindWatched(pid_t pid, const InotifyEntry& w) {
  std::string which =
      "inotify watch " + std::to_string(w.wd) + " on inode " + std::to_string(w.ino);
  if (w.wd > img::kMaxInotifyWd) {
    return Invalid(which + ": watch numbers above " + std::to_string(img::kMaxInotifyWd) +
                   " cannot be given back");
  }
  auto opened = OpenByHandle("/proc/" + std::to_string(pid), w.fs_dev, w.handle_type, w.handle);
  if (!opened) {
    return Invalid(which + ": the watched file cannot be found (" + opened.error().Message() + ")");
  }
  Watched out;
  if (::fstat(opened->get(), &out.st) != 0 || out.st.st_ino != w.ino) {
    return Invalid(which + ": its file handle leads elsewhere");
  }
  if (out.st.st_nlink == 0) {
    return Invalid(which + ": the watched file was deleted");
  }
  auto link = ReadLink("/proc/self/fd/" + std::to_string(opened->get()));
  struct stat named;
  if (link && !link->empty() && link->front() == '/' && ::lstat(link->c_str(), &named) == 0 &&
      named.st_ino == out.st.st_ino && named.st_dev == out.st.st_dev) {
    out.path = *link;
  }
  return out;
}

}  // namespace

Status DumpInotify(pid_t pid, const std::string& fdinfo, pb::OpenFile* f) {
  LZ_ASSIGN_OR_RETURN(std::vector<InotifyEntry> watches, ParseInotifyFdinfo(fdinfo));
  f->set_type(pb::FILE_INOTIFY);
  for (const InotifyEntry& e : watches) {
    LZ_ASSIGN_OR_RETURN(Watched found, FindWatched(pid, e));
    pb::InotifyWatch* w = f->add_inotify();
    w->set_wd(e.wd);
    w->set_mask(e.mask);
    w->set_dev(found.st.st_dev);
    w->set_ino(e.ino);
    w->set_fs_dev(e.fs_dev);
    w->set_path(found.path);
    w->set_handle_type(e.handle_type);
    w->set_handle(e.handle);
  }
  return Ok();
}

Status DumpAnonInode(const std::string& kind, const std::string& fdinfo, pb::OpenFile* f) {
  auto keys = ParseFdinfoKeys(fdinfo);
  auto get = [&](const char* k) -> const std::string* {
    for (const auto& [key, val] : keys) {
      if (key == k) {
        return &val;
      }
    }
    return nullptr;
  };
  uint64_t v;
  if (kind == "[eventfd]") {
    const std::string* count = get("eventfd-count");
    if (count == nullptr || !ParseU64(*count, &v, 16)) {
      return Invalid("eventfd fdinfo without a count");
    }
    f->set_type(pb::FILE_EVENTFD);
    f->mutable_eventfd()->set_count(v);
    const std::string* sem = get("eventfd-semaphore");
    f->mutable_eventfd()->set_semaphore(sem != nullptr && *sem == "1");
    return Ok();
  }
  if (kind == "[eventpoll]") {
    LZ_ASSIGN_OR_RETURN(std::vector<EpollEntry> entries, ParseEpollFdinfo(fdinfo));
    f->set_type(pb::FILE_EPOLL);
    for (const EpollEntry& e : entries) {
      pb::EpollWatch* w = f->add_epoll();
      w->set_fd(e.tfd);
      w->set_events(e.events);
      w->set_data(e.data);
    }
    return Ok();
  }
  if (kind == "[signalfd]") {
    const std::string* mask = get("sigmask");
    if (mask == nullptr || !ParseU64(*mask, &v, 16)) {
      return Invalid("signalfd fdinfo without a mask");
    }
    f->set_type(pb::FILE_SIGNALFD);
    f->set_signalfd_mask(v);
    return Ok();
  }
  if (kind == "[timerfd]") {
    pb::TimerfdInfo* t = f->mutable_timerfd();
    const std::string* clock = get("clockid");
    const std::string* ticks = get("ticks");
    const std::string* flags = get("settime flags");
    const std::string* value = get("it_value");
    const std::string* interval = get("it_interval");
    uint64_t c, tk, fl, val, intv;
    if (!clock || !ticks || !flags || !value || !interval || !ParseU64(*clock, &c) ||
        !ParseU64(*ticks, &tk) || !ParseU64(*flags, &fl, 8) || !ParseTimespecPair(*value, &val) ||
        !ParseTimespecPair(*interval, &intv)) {
      return Invalid("unreadable timerfd fdinfo");
    }
    f->set_type(pb::FILE_TIMERFD);
    t->set_clockid(static_cast<int32_t>(c));
    t->set_ticks(tk);
    t->set_settime_flags(static_cast<int32_t>(fl));
    t->set_value_ns(val);
    t->set_interval_ns(intv);
    return Ok();
  }
  return Invalid(kind.substr(1, kind.size() - 2) + " is not supported");
}

}  // namespace lz
