#include "images/page_server_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "images/page_server_protocol.h"

namespace lz {
namespace {

constexpr uint32_t kSyncId = 0xffffffff;  // the blocking requests' id
constexpr int kIoTimeoutSec = 10;         // a server that stops answering is a lost server

std::string HelloError(uint16_t status) {
  switch (status) {
    case ps::kHelloBusy:
      return "is busy with another client";
    case ps::kHelloAuthFailed:
      return "refused our token (--auth-token-file)";
    case ps::kHelloBadVersion:
      return "speaks another protocol version";
    default:
      return "refused us (status " + std::to_string(status) + ")";
  }
}

}  // namespace

// The receive buffer is sized (and its pages touched) here, before any fault needs it, for
// two of the largest replies, so that nothing is zeroed or reallocated per receive.
PageServerClient::PageServerClient(UniqueFd fd, std::string where)
    : fd_(std::move(fd)), where_(std::move(where)), in_(2 * (ps::kMaxRead + sizeof(ps::Reply))) {}

Result<std::unique_ptr<PageServerClient>> PageServerClient::Connect(const std::string& address,
                                                                    int port, uint16_t role,
                                                                    const std::string& token) {
  std::string where = "page server " + address + ":" + std::to_string(port);
  if (address.empty()) {
    return Invalid("--page-server", "needs --address");
  }
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  auto sock_or = ps::SocketFor(address, port, &addr, &addr_len);
  if (!sock_or) {
    return Unexpected{sock_or.error().Wrap(where)};
  }
  UniqueFd sock = std::move(*sock_or);
  int fd = sock.get();
  // Bounds connect() and every later blocking send and receive.
  timeval tv{kIoTimeoutSec, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), addr_len) != 0) {
    return FailErrno("connect to", where);
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  auto c = std::unique_ptr<PageServerClient>(new PageServerClient(std::move(sock), where));
  ps::Hello h{ps::kMagic, ps::kVersion, role, static_cast<uint32_t>(token.size())};
  std::vector<std::byte> hello(sizeof h + token.size());
  std::memcpy(hello.data(), &h, sizeof h);
  std::memcpy(hello.data() + sizeof h, token.data(), token.size());
  if (!ps::SendExactly(fd, hello)) {
    return c->Lost("hello");
  }
  ps::HelloReply reply{};
  if (!ps::RecvExactly(fd, &reply, sizeof reply) || reply.magic != ps::kMagic) {
    return c->Lost("hello");
  }
  if (reply.status != ps::kHelloOk) {
    return Invalid(where, HelloError(reply.status));
  }
  return c;
}

Unexpected PageServerClient::Lost(const std::string& what) const {
  return Fail(ECONNRESET, where_, "connection lost (" + what + ")");
}

Status PageServerClient::Send(uint16_t type, uint16_t flags, uint32_t id, pid_t pid, uint32_t len,
                              uint64_t offset, std::span<const std::byte> payload) {
  ps::Request q{type, flags, id, pid, len, offset};
  iovec iov[2] = {{&q, sizeof q}, {const_cast<std::byte*>(payload.data()), payload.size()}};
  if (!ps::SendExactly(fd_.get(), iov, payload.empty() ? 1 : 2)) {
    return Lost("send");
  }
  return Ok();
}

Result<size_t> PageServerClient::Await(uint32_t id, std::span<std::byte> out) {
  ps::Reply r{};
  if (!ps::RecvExactly(fd_.get(), &r, sizeof r)) {
    return Lost("reply");
  }
  if (r.id != id || r.len > out.size()) {
    return Invalid(where_, "unexpected reply");
  }
  if (r.len > 0 && !ps::RecvExactly(fd_.get(), out.data(), r.len)) {
    return Lost("reply");
  }
  if (r.status != 0) {
    return Fail(r.status, where_, "request refused");
  }
  return static_cast<size_t>(r.len);
}

Result<uint64_t> PageServerClient::Stat(pid_t pid) {
  LZ_TRY(Send(ps::kStat, 0, kSyncId, pid, 0, 0));
  uint64_t size = 0;
  LZ_ASSIGN_OR_RETURN(size_t n, Await(kSyncId, std::as_writable_bytes(std::span(&size, 1))));
  if (n != sizeof size) {
    return Invalid(where_, "bad size reply");
  }
  return size;
}

Status PageServerClient::ReadAt(pid_t pid, uint64_t offset, std::span<std::byte> out) {
  for (size_t done = 0; done < out.size();) {
    auto part = out.subspan(done, std::min<size_t>(out.size() - done, ps::kMaxRead));
    LZ_TRY(Send(ps::kRead, ps::kUrgent, kSyncId, pid, static_cast<uint32_t>(part.size()),
                offset + done));
    LZ_ASSIGN_OR_RETURN(size_t n, Await(kSyncId, part));
    if (n != part.size()) {
      return Invalid(where_, "short read");
    }
    done += n;
  }
  return Ok();
}

Status PageServerClient::SendRead(uint32_t id, pid_t pid, uint64_t offset, uint32_t len,
                                  bool urgent) {
  ps::Request q{ps::kRead, static_cast<uint16_t>(urgent ? ps::kUrgent : 0), id, pid, len, offset};
  auto bytes = std::as_bytes(std::span(&q, 1));
  queued_.insert(queued_.end(), bytes.begin(), bytes.end());
  return urgent ? Flush() : Ok();
}

Status PageServerClient::Flush() {
  bool sent = ps::SendExactly(fd_.get(), queued_);
  queued_.clear();  // if lost, the reconnection asks again for every read in flight
  if (!sent) {
    return Lost("send");
  }
  return Ok();
}

Status PageServerClient::Receive(const Deliver& deliver) {
  for (;;) {
    ssize_t n = ::recv(fd_.get(), in_.data() + in_len_, in_.size() - in_len_, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
      return Lost("receive");
    }
    in_len_ += static_cast<size_t>(std::max<ssize_t>(n, 0));
    size_t at = 0;
    while (in_len_ - at >= sizeof(ps::Reply)) {
      ps::Reply r;
      std::memcpy(&r, in_.data() + at, sizeof r);
      if (r.len > ps::kMaxRead) {
        return Invalid(where_, "reply larger than any request");
      }
      if (in_len_ - at - sizeof r < r.len) {
        break;
      }
      deliver(r.id, r.status, std::span(in_.data() + at + sizeof r, r.len));
      at += sizeof r + r.len;
    }
    std::memmove(in_.data(), in_.data() + at, in_len_ - at);
    in_len_ -= at;
    if (n < 0) {
      return Ok();  // drained
    }
  }
}

Status PageServerClient::PutBegin(pid_t pid) { return Send(ps::kPutBegin, 0, 0, pid, 0, 0); }

Status PageServerClient::PutData(pid_t pid, std::span<const std::byte> data) {
  while (!data.empty()) {
    auto part = data.first(std::min<size_t>(data.size(), ps::kMaxPut));
    LZ_TRY(Send(ps::kPutData, 0, 0, pid, static_cast<uint32_t>(part.size()), 0, part));
    data = data.subspan(part.size());
  }
  return Ok();
}

Status PageServerClient::PutEnd(pid_t pid) {
  LZ_TRY(Send(ps::kPutEnd, 0, kSyncId, pid, 0, 0));
  LZ_ASSIGN_OR_RETURN(size_t n, Await(kSyncId, {}));
  (void)n;
  return Ok();
}

Status PageServerClient::Bye() {
  LZ_TRY(Send(ps::kBye, 0, kSyncId, 1, 0, 0));
  LZ_ASSIGN_OR_RETURN(size_t n, Await(kSyncId, {}));
  (void)n;
  return Ok();
}

namespace {

class RemoteSink : public img::ByteSink {
 public:
  RemoteSink(PageServerClient& c, pid_t pid) : c_(c), pid_(pid) {}
  Status Write(std::span<const std::byte> bytes) override {
    if (!begun_) {
      LZ_TRY(c_.PutBegin(pid_));
      begun_ = true;
    }
    return c_.PutData(pid_, bytes);
  }
  Status Commit() override { return c_.PutEnd(pid_); }

 private:
  PageServerClient& c_;
  pid_t pid_;
  bool begun_ = false;
};

}  // namespace

std::unique_ptr<img::ByteSink> MakeRemoteSink(PageServerClient& client, pid_t pid) {
  return std::make_unique<RemoteSink>(client, pid);
}

}  // namespace lz
