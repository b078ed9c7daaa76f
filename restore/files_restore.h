// Child side: open every file of a task's descriptor table, of every kind lazarus dumps, and
// the objects that several tasks of the tree share.
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "images/image_dir.h"

namespace lz {

class SharedMemory;

/// The byte range of a dumped lock, for fcntl (F_SETLK, F_OFD_SETLK).
struct flock PosixRange(const pb::FileLock& l);

/// Connects the datagram clients of servers in the tree (peer_in_tree) through the tasks'
/// descriptors (pidfd_getfd), once every task has made its sockets: a server may sit in a task
/// made after its client's, or later in the same task's table.
[[nodiscard]] Status ConnectTreeDatagramClients(const img::Dump& dump);

/// Creates the objects behind the tree's fds. An object held by several tasks (one open file
/// with a tree id, or a pipe or socketpair whose ends sit in different tasks) is created once,
/// by the nearest task that is an ancestor of every holder, before it forks its children: they
/// inherit it through fork, along with this object (the whole opener is copied by fork).
/// Everything the opener keeps lives at or above `floor`, above every descriptor number of
/// every task, so that placing a descriptor never closes one of them. Not thread-safe.
class FileOpener {
 public:
  /// Memfds are opened through `shm`, which the front-end holds for the whole restore.
  FileOpener(std::string images_dir, int floor, const img::Dump& dump, const SharedMemory& shm);

  const SharedMemory& shared_memory() const { return shm_; }
  FileOpener(const FileOpener&) = delete;
  FileOpener& operator=(const FileOpener&) = delete;

  /// Creates what task `pid` must create for the tasks below it. Call before forking them.
  [[nodiscard]] Status OpenSharedFor(pid_t pid);
  /// An open file of the calling task (a copy of the shared one if it has a tree id).
  [[nodiscard]] Result<UniqueFd> Open(const pb::OpenFile& f);
  /// After every fd is in place: epoll watch lists refer to other fds by number. Then closes
  /// every object the opener still holds.
  [[nodiscard]] Status FinishEpoll(const pb::FdTable& table);
  /// Descriptors the opener holds (to keep open while the task closes lazarus's own).
  std::vector<int> HeldFds() const;

 private:
  enum class Kind { kPipe, kUnixPair, kFile };
  struct Shared {
    Kind kind;
    const pb::OpenFile* file;  // one holder's entry
  };
  void Plan();
  pid_t Creator(const std::vector<pid_t>& holders) const;
  bool IsAncestorOrSelf(pid_t a, pid_t b) const;
  // The first entry of the dump that `recorded` accepts (every entry that recorded an object's
  // queued bytes recorded the same ones), or null.
  const pb::OpenFile* FirstRecorded(const std::function<bool(const pb::OpenFile&)>& recorded) const;
  Result<UniqueFd> OpenUnshared(const pb::OpenFile& f);  // OpenObject, then its own locks
  Result<UniqueFd> OpenObject(const pb::OpenFile& f);
  Status CreatePipe(const pb::OpenFile& f);
  Status CreateSocketPair(const pb::OpenFile& f);
  Result<UniqueFd> OpenPipeEnd(const pb::OpenFile& f);
  Result<UniqueFd> OpenUnixSocket(const pb::OpenFile& f);
  Result<UniqueFd> OpenMemfd(const pb::OpenFile& f);
  Result<UniqueFd> Above(int fd);

  std::string dir_;
  int floor_;
  const img::Dump& dump_;
  const SharedMemory& shm_;
  std::map<pid_t, pid_t> parent_;                 // within the tree
  std::map<pid_t, std::vector<Shared>> created_;  // what each task creates for its subtree
  struct PipeEnds {
    UniqueFd rd;
    UniqueFd wr;
  };
  std::map<uint64_t, PipeEnds> pipes_;       // by pipe inode
  std::map<uint64_t, UniqueFd> unix_ends_;   // connected unix sockets by inode
  std::map<uint32_t, UniqueFd> tree_files_;  // open files shared by tasks, by tree id
};

}  // namespace lz
