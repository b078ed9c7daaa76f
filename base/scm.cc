#include "base/scm.h"

#include <sys/socket.h>

#include <cstring>

namespace lz {

ssize_t SendWithFd(int sock, const void* msg, size_t len, int fd) {
  iovec iov{const_cast<void*>(msg), len};
  char ctl[CMSG_SPACE(sizeof(int))] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  if (fd >= 0) {
    mh.msg_control = ctl;
    mh.msg_controllen = sizeof ctl;
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  return ::sendmsg(sock, &mh, MSG_NOSIGNAL);
}

ssize_t RecvWithFd(int sock, void* msg, size_t len, int* fd, int flags) {
  iovec iov{msg, len};
  char ctl[CMSG_SPACE(sizeof(int))];
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl;
  mh.msg_controllen = sizeof ctl;
  *fd = -1;
  ssize_t n = ::recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
  if (n >= 0) {
    cmsghdr* c = CMSG_FIRSTHDR(&mh);
    if (c != nullptr && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      std::memcpy(fd, CMSG_DATA(c), sizeof *fd);
    }
  }
  return n;
}

}  // namespace lz
