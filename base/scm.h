// Sending and receiving one descriptor with a message over a unix socket (SCM_RIGHTS).
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace lz {

/// sendmsg of `len` bytes with `fd` attached (none if fd < 0). Returns what sendmsg returns;
/// errno is left as sendmsg set it. The receiver gets its own copy of the descriptor.
ssize_t SendWithFd(int sock, const void* msg, size_t len, int fd);
/// recvmsg of up to `len` bytes; `*fd` gets a received descriptor (close-on-exec) or -1.
/// Returns what recvmsg returns; errno is left as recvmsg set it.
ssize_t RecvWithFd(int sock, void* msg, size_t len, int* fd, int flags);

}  // namespace lz
