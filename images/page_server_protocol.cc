#include "images/page_server_protocol.h"

#include <netdb.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "images/image_dir.h"

namespace lz::ps {

Status CheckRequest(const Request& r) {
  if (r.pid <= 0) {
    return Invalid("page-server request", "bad pid " + std::to_string(r.pid));
  }
  if ((r.flags & ~kUrgent) != 0) {
    return Invalid("page-server request", "unknown flags " + std::to_string(r.flags));
  }
  switch (r.type) {
    case kRead:
      if (r.len == 0 || r.len > kMaxRead) {
        return Invalid("page-server request", "read of " + std::to_string(r.len) + " bytes");
      }
      return Ok();
    case kPutData:
      if (r.len == 0 || r.len > kMaxPut) {
        return Invalid("page-server request", "write of " + std::to_string(r.len) + " bytes");
      }
      return Ok();
    case kStat:
    case kPutBegin:
    case kPutEnd:
    case kBye:
      if (r.len != 0) {
        return Invalid("page-server request", "unexpected length");
      }
      return Ok();
    default:
      return Invalid("page-server request", "unknown type " + std::to_string(r.type));
  }
}

Result<HelloStatus> CheckHello(const Hello& h) {
  if (h.magic != kMagic) {
    return Invalid("page-server hello", "not a lazarus page-server client");
  }
  if (h.token_len > kMaxTokenLen) {
    return Invalid("page-server hello", "token of " + std::to_string(h.token_len) + " bytes");
  }
  if (h.version != kVersion) {
    return kHelloBadVersion;
  }
  if (h.role != kRoleRead && h.role != kRoleWrite) {
    return Invalid("page-server hello", "unknown role " + std::to_string(h.role));
  }
  return kHelloOk;
}

std::string PagesFileName(pid_t pid) { return img::PagesName(pid); }

bool RecvExactly(int fd, void* buf, size_t len) {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    ssize_t n = ::recv(fd, p, len, MSG_WAITALL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool SendExactly(int fd, const iovec* iov, int n) {
  std::vector<iovec> v(iov, iov + n);
  size_t i = 0;
  for (;;) {
    while (i < v.size() && v[i].iov_len == 0) {
      i++;  // nothing (left) to send there: sendmsg would answer 0, which means a dead peer
    }
    if (i == v.size()) {
      return true;
    }
    msghdr m{};
    m.msg_iov = v.data() + i;
    m.msg_iovlen = v.size() - i;
    ssize_t sent = ::sendmsg(fd, &m, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) {
      continue;
    }
    if (sent <= 0) {
      return false;
    }
    auto left = static_cast<size_t>(sent);
    while (i < v.size() && left >= v[i].iov_len) {
      left -= v[i].iov_len;
      i++;
    }
    if (i < v.size()) {
      v[i].iov_base = static_cast<char*>(v[i].iov_base) + left;
      v[i].iov_len -= left;
    }
  }
}

bool SendExactly(int fd, std::span<const std::byte> bytes) {
  iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
  return SendExactly(fd, &iov, 1);
}

Result<UniqueFd> SocketFor(const std::string& address, int port, sockaddr_storage* addr,
                           socklen_t* len) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int r = ::getaddrinfo(address.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (r != 0) {
    return Invalid("address " + address, gai_strerror(r));
  }
  std::memcpy(addr, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  int family = res->ai_family;
  ::freeaddrinfo(res);
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return FailErrno("socket");
  }
  return UniqueFd(fd);
}

}  // namespace lz::ps
