// The image directory: which file holds what, and loading a whole dump.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "images/core.pb.h"
#include "images/files.pb.h"
#include "images/inventory.pb.h"
#include "images/mm.pb.h"
#include "images/pagemap.h"

namespace lz::img {

std::string CorePath(const std::string& dir, pid_t pid);
std::string MmPath(const std::string& dir, pid_t pid);
std::string FdsPath(const std::string& dir, pid_t pid);
std::string PagemapPath(const std::string& dir, pid_t pid);
/// File name (not path) of a task's page store.
std::string PagesName(pid_t pid);
/// File names of a shared memory object's pagemap and page store.
std::string ShmemPagemapName(uint32_t id);
std::string ShmemPagesName(uint32_t id);

/// Everything dumped of one process.
struct TaskImages {
  pb::TaskCore core;
  pb::Mm mm;
  pb::FdTable fds;
  PagemapFile pagemap;
};

/// One shared memory object and where its content is.
struct ShmemImages {
  pb::ShmemObject meta;
  PagemapFile pagemap;  // runs' addresses are offsets in the object
};

struct Dump {
  std::string dir;
  pb::Inventory inventory;
  std::vector<TaskImages> tasks;  // in inventory order: parents before children
  std::vector<ShmemImages> shmem;

  /// The object with id `id`, or nullptr.
  const ShmemImages* FindShmem(uint32_t id) const;
};

/// Whether the pages of `v` may be served on demand (kPageLazy): anonymous private, heap and
/// stack memory, the kinds userfaultfd's missing mode can serve. The dumper marks their runs
/// so, and a lazy restore registers them.
bool VmaIsLazy(const pb::Vma& v);

/// The first descriptor of `table` that refers to open file `file_id`, or -1.
int FirstFdOf(const pb::FdTable& table, uint32_t file_id);

/// Reads the inventory, refusing a directory whose dump did not complete.
[[nodiscard]] Result<pb::Inventory> ReadInventory(const std::string& dir);
/// Reads every image of the dump in `dir` and checks that they agree with each other.
[[nodiscard]] Result<Dump> LoadDump(const std::string& dir);

/// Marks `dir` as holding an incomplete dump (a restore refuses it); cleared on success.
[[nodiscard]] Status MarkIncomplete(const std::string& dir);
[[nodiscard]] Status ClearIncomplete(const std::string& dir);

}  // namespace lz::img
