// One task served by the daemon: its uffd, the pages it still waits for, and where they are.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <span>
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

/// A run of pages of a recorded working set (uffd/working_set.h), in the order touched.
struct WorkingSetRun {
  uint64_t vaddr = 0;  // dump-time address
  uint32_t nr_pages = 0;
  uint64_t first_page = 0;           // in working-set.pages
  bool zero = false;                 // the zero page, not stored
  std::span<const std::byte> pages;  // once the working set is ready; empty for zero runs
};

/// Not thread-safe; owned by the daemon's event loop.
struct Target {
  int id = 0;
  pid_t pid = 0;  // the task; 0 for a child forked after restore until it is known
  // For such a child: its pid was guessed from /proc (a new child of its parent), not yet
  // confirmed by a fault of one of its threads.
  bool pid_guessed = false;
  pid_t parent_pid = 0;  // for such a child: the task that forked it
  int parent_id = -1;    // and that task's target
  UniqueFd uffd;
  std::shared_ptr<const TaskSource> source;
  RangeSet pending;  // present pages not copied yet
  // Its working set still to install (InstallWorkingSetStep), in the order it was touched.
  std::span<const WorkingSetRun> ws_left;
  uint32_t ws_done = 0;  // pages of ws_left.front() already done
  bool gone = false;
  bool poll_armed = false;
};

}  // namespace lz
