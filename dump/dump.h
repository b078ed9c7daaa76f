// `lazarus dump`: checkpoint a live process tree into an image directory.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "images/page_store.h"
#include "images/stats.pb.h"

namespace lz {

struct DumpOptions {
  pid_t pid = 0;
  std::string dir;
  enum class After { kKill, kLeaveRunning, kLeaveStopped } after = After::kKill;
  bool shell_job = false;
  img::PageStoreOptions store;
  int timeout_sec = 10;  // CRIU's --timeout: limit on how long the tree may stay frozen
  std::vector<std::string> command_line;
};

/// Dumps the tree rooted at opts.pid. On any failure every task is resumed as it was and the
/// directory stays marked incomplete. Returns what --display-stats shows.
[[nodiscard]] Result<pb::DumpStats> RunDump(const DumpOptions& opts);

}  // namespace lz
