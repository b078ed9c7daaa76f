// Dumping descriptors that are not plain files: pipes, inet sockets, eventfd, epoll, signalfd,
// timerfd. Each fills the kind-specific part of an OpenFile.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>

#include "base/result.h"
#include "images/files.pb.h"

namespace lz {

[[nodiscard]] Status DumpPipe(pid_t pid, int fd, const struct stat& st, pb::OpenFile* f);
/// `pidfd` lets it take a copy of the socket to ask it about itself.
[[nodiscard]] Status DumpInetSocket(int pidfd, int fd, const struct stat& st, pb::OpenFile* f);
/// A unix socket: listening or bound, or one end of a connected pair whose other end the
/// same process holds (checked by DumpFds once the table is complete).
[[nodiscard]] Status DumpUnixSocket(int pidfd, int fd, const struct stat& st, pb::OpenFile* f);
/// An inotify instance of task `pid`: each watch, with the path of the file it watches
/// (found through the file handle fdinfo gives) and that handle.
[[nodiscard]] Status DumpInotify(pid_t pid, const std::string& fdinfo, pb::OpenFile* f);
/// eventfd, epoll, signalfd, timerfd: from the anon_inode name and the fdinfo text.
[[nodiscard]] Status DumpAnonInode(const std::string& kind, const std::string& fdinfo,
                                   pb::OpenFile* f);

}  // namespace lz
