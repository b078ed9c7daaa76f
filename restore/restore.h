// `lazarus restore`: bring a dumped tree back with its pids.
#pragma once

#include <string>

#include "base/result.h"
#include "images/stats.pb.h"

namespace lz {

struct RestoreOptions {
  std::string dir;
  bool detached = false;   // -d: do not wait for the root task
  std::string pidfile;     // --pidfile: root pid written here
  bool shell_job = false;  // -j
  bool lazy = false;       // --lazy-pages
};

struct RestoreResult {
  pid_t root = 0;
  int exit_code = 0;  // the root's status when not detached
  pb::RestoreStats stats;
};

/// Restores the dump in opts.dir. On failure every task created so far is killed.
[[nodiscard]] Result<RestoreResult> RunRestore(const RestoreOptions& opts);

}  // namespace lz
