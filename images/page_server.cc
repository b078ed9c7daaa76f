// The page server: one client at a time, requests checked against the protocol's bounds and
// against the files they name before any byte is read or written.
#include "images/page_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "base/file_util.h"
#include "base/log.h"
#include "images/page_server_protocol.h"

namespace lz {
namespace {

using ps::Reply;
using ps::Request;

bool SendReply(int fd, uint32_t id, int status, std::span<const std::byte> payload = {}) {
  Reply r{id, status, payload.size()};
  iovec iov[2] = {{&r, sizeof r}, {const_cast<std::byte*>(payload.data()), payload.size()}};
  return ps::SendExactly(fd, iov, payload.empty() ? 1 : 2);
}

// Compares without leaking through timing how much of the token matched.
bool SameToken(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) {
    return false;
  }
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); i++) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

// One client's session. Reads are served urgent first among the requests already received.
class Session {
 public:
  Session(UniqueFd fd, std::string dir, uint16_t role)
      : fd_(std::move(fd)), dir_(std::move(dir)), role_(role) {}
  ~Session() { AbandonPut(); }

  int fd() const { return fd_.get(); }

  // Handles the requests that arrived. Returns true when the client said goodbye; an error
  // when it went away or broke the protocol (the connection is then closed).
  Result<bool> Step() {
    std::vector<Request> batch;
    Request r;
    if (!ps::RecvExactly(fd_.get(), &r, sizeof r)) {
      return Fail(ECONNRESET, "page-server", "client went away");
    }
    batch.push_back(r);
    // Reads that are already here too, so that urgent ones can overtake background ones.
    while (r.type == ps::kRead && batch.size() < 256) {
      Request next;
      ssize_t n = ::recv(fd_.get(), &next, sizeof next, MSG_PEEK | MSG_DONTWAIT);
      if (n != sizeof next || next.type != ps::kRead) {
        break;
      }
      (void)!::recv(fd_.get(), &next, sizeof next, 0);
      batch.push_back(next);
      r = next;
    }
    std::stable_partition(batch.begin(), batch.end(),
                          [](const Request& q) { return (q.flags & ps::kUrgent) != 0; });
    for (const Request& q : batch) {
      LZ_ASSIGN_OR_RETURN(bool bye, Handle(q));
      if (bye) {
        return true;
      }
    }
    return false;
  }

 private:
  struct Store {
    UniqueFd fd;
    uint64_t size = 0;
  };

  Result<bool> Handle(const Request& q) {
    LZ_TRY(ps::CheckRequest(q));
    bool reading = q.type == ps::kStat || q.type == ps::kRead;
    bool writing = q.type == ps::kPutBegin || q.type == ps::kPutData || q.type == ps::kPutEnd;
    if ((reading && role_ != ps::kRoleRead) || (writing && role_ != ps::kRoleWrite)) {
      return Invalid("page-server", "request not allowed for this client's role");
    }
    switch (q.type) {
      case ps::kStat:
        return Answer(q, StatStore(q));
      case ps::kRead:
        return Answer(q, ReadStore(q));
      case ps::kPutBegin:
        LZ_TRY(BeginPut(q.pid));
        return false;
      case ps::kPutData:
        LZ_TRY(PutData(q));
        return false;
      case ps::kPutEnd:
        return Answer(q, EndPut(q.pid));
      case ps::kBye:
        SendReply(fd_.get(), q.id, 0);
        return true;
    }
    return Invalid("page-server", "unreachable request type");
  }

  // Sends the reply of a request that produced `out` (payload or errno); false: go on.
  Result<bool> Answer(const Request& q, const Result<std::span<const std::byte>>& out) {
    bool sent = out ? SendReply(fd_.get(), q.id, 0, *out)
                    : SendReply(fd_.get(), q.id, out.error().code ? out.error().code : EINVAL);
    if (!out) {
      LZ_WARN("page-server: pid %d: %s", q.pid, out.error().Message().c_str());
    }
    if (!sent) {
      return Fail(ECONNRESET, "page-server", "client went away");
    }
    return false;
  }

  std::span<std::byte> Buffer(size_t n) {
    if (buf_.size() < n) {
      buf_.resize(n);
    }
    return std::span(buf_.data(), n);
  }

  Result<Store*> OpenStore(pid_t pid) {
    auto it = stores_.find(pid);
    if (it != stores_.end()) {
      return &it->second;
    }
    std::string path = dir_ + "/" + ps::PagesFileName(pid);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      return FailErrno("open", path);
    }
    Store s{UniqueFd(fd), 0};
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      return Invalid(path + " is not a regular file");
    }
    s.size = static_cast<uint64_t>(st.st_size);
    return &stores_.emplace(pid, std::move(s)).first->second;
  }

  Result<std::span<const std::byte>> StatStore(const Request& q) {
    LZ_ASSIGN_OR_RETURN(Store * s, OpenStore(q.pid));
    auto out = Buffer(sizeof s->size);
    std::memcpy(out.data(), &s->size, sizeof s->size);
    return std::span<const std::byte>(out);
  }

  Result<std::span<const std::byte>> ReadStore(const Request& q) {
    LZ_ASSIGN_OR_RETURN(Store * s, OpenStore(q.pid));
    if (q.offset > s->size || q.len > s->size - q.offset) {
      return Fail(ERANGE, "read",
                  "bytes " + std::to_string(q.offset) + "+" + std::to_string(q.len) +
                      " beyond the store's " + std::to_string(s->size));
    }
    auto out = Buffer(q.len);
    LZ_ASSIGN_OR_RETURN(size_t n, PreadFull(s->fd.get(), out, q.offset));
    if (n != q.len) {
      return Fail(EIO, "read", "store shrank");
    }
    return std::span<const std::byte>(out);
  }

  Status BeginPut(pid_t pid) {
    if (put_fd_.valid()) {
      return Invalid("page-server", "a store is already being written");
    }
    put_path_ = dir_ + "/" + ps::PagesFileName(pid);
    std::string tmp = put_path_ + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      return FailErrno("create", tmp);
    }
    put_fd_.reset(fd);
    put_pid_ = pid;
    put_errno_ = 0;
    return Ok();
  }

  Status PutData(const Request& q) {
    auto data = Buffer(q.len);
    if (!ps::RecvExactly(fd_.get(), data.data(), data.size())) {
      return Fail(ECONNRESET, "page-server", "client went away in the middle of a write");
    }
    if (!put_fd_.valid() || q.pid != put_pid_) {
      return Invalid("page-server", "data for a store that is not being written");
    }
    if (put_errno_ == 0) {
      Status st = WriteAll(put_fd_.get(), data);
      if (!st) {
        put_errno_ = st.error().code ? st.error().code : EIO;  // reported at the end
      }
    }
    return Ok();
  }

  Result<std::span<const std::byte>> EndPut(pid_t pid) {
    if (!put_fd_.valid() || pid != put_pid_) {
      return Invalid("page-server", "end of a store that is not being written");
    }
    std::string tmp = put_path_ + ".tmp";
    Status closed = std::move(put_fd_).Close();
    if (put_errno_ == 0 && closed && ::rename(tmp.c_str(), put_path_.c_str()) == 0) {
      LZ_INFO("page-server: received %s", put_path_.c_str());
      return std::span<const std::byte>();
    }
    int err = put_errno_ ? put_errno_ : (closed ? errno : closed.error().code);
    ::unlink(tmp.c_str());
    return Fail(err, "write", put_path_);
  }

  void AbandonPut() {
    if (put_fd_.valid()) {
      put_fd_.reset();
      ::unlink((put_path_ + ".tmp").c_str());
    }
  }

  UniqueFd fd_;
  std::string dir_;
  uint16_t role_;
  std::map<pid_t, Store> stores_;
  std::vector<std::byte> buf_;  // grows to the largest request seen (at most 4 MiB)
  UniqueFd put_fd_;
  pid_t put_pid_ = 0;
  std::string put_path_;
  int put_errno_ = 0;
};

// Reads a new client's hello within a few seconds and answers it. The session, or nothing.
std::unique_ptr<Session> Greet(UniqueFd fd, const std::string& dir, const std::string& token,
                               bool busy) {
  ps::HelloReply reply{ps::kMagic, ps::kVersion, ps::kHelloOk};
  if (busy) {
    reply.status = ps::kHelloBusy;
    (void)!::send(fd.get(), &reply, sizeof reply, MSG_NOSIGNAL);
    LZ_WARN("page-server: refused a second client while one is being served");
    return nullptr;
  }
  timeval tv{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ps::Hello h{};
  if (!ps::RecvExactly(fd.get(), &h, sizeof h)) {
    return nullptr;
  }
  auto status = ps::CheckHello(h);
  if (!status) {
    LZ_WARN("page-server: %s", status.error().Message().c_str());
    return nullptr;
  }
  std::string theirs;
  if (*status == ps::kHelloOk) {
    theirs.resize(h.token_len);  // bounded by CheckHello
    if (!ps::RecvExactly(fd.get(), theirs.data(), theirs.size())) {
      return nullptr;
    }
  }
  reply.status = *status;
  if (reply.status == ps::kHelloOk && !token.empty() && !SameToken(token, theirs)) {
    reply.status = ps::kHelloAuthFailed;
    LZ_WARN("page-server: a client presented a wrong token");
  }
  (void)!::send(fd.get(), &reply, sizeof reply, MSG_NOSIGNAL);
  if (reply.status != ps::kHelloOk) {
    return nullptr;
  }
  tv = {0, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  LZ_INFO("page-server: serving a %s client", h.role == ps::kRoleRead ? "reading" : "writing");
  return std::make_unique<Session>(std::move(fd), dir, h.role);
}

}  // namespace

Result<UniqueFd> ListenPageServer(const std::string& address, int port) {
  if (address.empty()) {
    return Invalid("page-server", "--address is required (there is no default interface)");
  }
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  LZ_ASSIGN_OR_RETURN(UniqueFd sock, ps::SocketFor(address, port, &addr, &addr_len));
  int fd = sock.get();
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  std::string where = address + ":" + std::to_string(port);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) {
    return FailErrno("bind", where);
  }
  if (::listen(fd, 8) != 0) {
    return FailErrno("listen", where);
  }
  LZ_INFO("page-server: listening on %s", where.c_str());
  return sock;
}

Status ServePages(int listen_fd, const std::string& dir, const std::string& token) {
  std::unique_ptr<Session> session;
  for (;;) {
    pollfd fds[2] = {{listen_fd, POLLIN, 0}, {session ? session->fd() : -1, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      return FailErrno("poll");
    }
    if (fds[0].revents & POLLIN) {
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        auto fresh = Greet(UniqueFd(fd), dir, token, session != nullptr);
        if (fresh) {
          session = std::move(fresh);
        }
      }
    }
    if (session && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      Result<bool> done = session->Step();
      if (done && *done) {
        LZ_INFO("page-server: the client is done");
        return Ok();
      }
      if (!done) {
        // Gone or broken: the next client (the same one reconnecting) may come.
        LZ_WARN("page-server: %s; waiting for a client", done.error().Message().c_str());
        session.reset();
      }
    }
  }
}

Result<bool> ServeConnection(UniqueFd conn, const std::string& dir, const std::string& token) {
  std::unique_ptr<Session> session = Greet(std::move(conn), dir, token, false);
  if (!session) {
    return false;
  }
  for (;;) {
    Result<bool> done = session->Step();
    if (!done) {
      return false;
    }
    if (*done) {
      return true;
    }
  }
}

Result<std::string> ReadTokenFile(const std::string& path) {
  LZ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, ps::kMaxTokenLen + 1));
  std::string_view first = text;
  first = first.substr(0, first.find('\n'));
  std::string token(TrimSpace(first));
  if (token.empty() || token.size() > ps::kMaxTokenLen) {
    return Invalid("--auth-token-file", path + " holds no usable token");
  }
  return token;
}

Status RunPageServer(const PageServerOptions& opts) {
  LZ_ASSIGN_OR_RETURN(UniqueFd listener, ListenPageServer(opts.address, opts.port));
  if (opts.daemonize) {
    pid_t child = ::fork();
    if (child < 0) {
      return FailErrno("fork");
    }
    if (child > 0) {
      if (!opts.pidfile.empty()) {
        LZ_TRY(WriteFileAtomically(opts.pidfile, std::to_string(child) + "\n"));
      }
      _exit(0);  // the daemon serves; its parent only reports
    }
    ::setsid();
  } else if (!opts.pidfile.empty()) {
    LZ_TRY(WriteFileAtomically(opts.pidfile, std::to_string(::getpid()) + "\n"));
  }
  if (opts.status_fd >= 0) {
    char ready = 0;
    (void)!::write(opts.status_fd, &ready, 1);
    ::close(opts.status_fd);
  }
  return ServePages(listener.get(), opts.dir, opts.token);
}

}  // namespace lz
