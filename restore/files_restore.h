// Child side: open every file of a task's descriptor table, of every kind lazarus dumps.
#pragma once

#include <map>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "images/files.pb.h"

namespace lz {

/// Creates the objects behind one task's fds. Pipes are created once per pipe and hand out the
/// end each file wants. Not thread-safe; lives in the restoring child.
class FileOpener {
 public:
  /// Objects the opener keeps across calls (pipe ends) live at or above `floor`, clear of every
  /// descriptor number the table uses, so that placing a descriptor never closes one of them.
  FileOpener(std::string images_dir, int floor) : dir_(std::move(images_dir)), floor_(floor) {}
  /// The table, so that a pipe's data can be found on whichever end carries it.
  void SetTable(const pb::FdTable* table) { table_ = table; }
  [[nodiscard]] Result<UniqueFd> Open(const pb::OpenFile& f);
  /// After every fd is in place: epoll watch lists refer to other fds by number.
  [[nodiscard]] Status FinishEpoll(const pb::FdTable& table);

 private:
  Result<UniqueFd> OpenPipeEnd(const pb::OpenFile& f);
  Result<UniqueFd> OpenUnixSocket(const pb::OpenFile& f);
  Result<UniqueFd> Above(int fd);
  std::string dir_;
  int floor_;
  const pb::FdTable* table_ = nullptr;
  struct PipeEnds {
    UniqueFd rd;
    UniqueFd wr;
  };
  std::map<uint64_t, PipeEnds> pipes_;
  std::map<uint64_t, UniqueFd> unix_ends_;  // connected unix sockets by inode, until handed out
};

}  // namespace lz
