// One task served by the daemon: its uffd, the pages it still waits for, and where they are.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "base/unique_fd.h"
#include "images/page_store.h"
#include "images/pagemap.h"
#include "uffd/range_set.h"

namespace lz {

/// The dump-time pages of a task: shared by the task and every child it forks after the
/// restore, which inherit its memory. Immutable after loading.
struct TaskSource {
  pid_t pid = 0;
  img::PagemapFile pagemap;
  std::unique_ptr<img::PageStoreReader> store;
};

/// Not thread-safe; owned by the daemon's event loop.
struct Target {
  int id = 0;
  pid_t pid = 0;         // the task; 0 for a child forked after restore until it is known
  pid_t parent_pid = 0;  // for such a child: the task that forked it
  UniqueFd uffd;
  std::shared_ptr<const TaskSource> source;
  RangeSet pending;  // present pages not copied yet
  bool gone = false;
  bool poll_armed = false;
};

}  // namespace lz
