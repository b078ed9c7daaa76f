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
  // --file-locks: keep the locks held (else a task holding one is refused).
  bool file_locks = false;
  img::PageStoreOptions store;
  // CRIU's --timeout: a limit on collecting the tasks (freezing them and reading their state);
  // the memory dump that follows takes as long as the memory needs.
  int timeout_sec = 10;
  std::vector<std::string> command_line;
  // --page-server: page stores go to the page server at address:port instead of the image
  // directory (the other images stay local).
  bool to_page_server = false;
  std::string ps_address;
  int ps_port = 0;
  std::string ps_token;
};

/// Dumps the tree rooted at opts.pid. On any failure every task is resumed as it was and the
/// directory stays marked incomplete. Returns what --display-stats shows.
[[nodiscard]] Result<pb::DumpStats> RunDump(const DumpOptions& opts);

}  // namespace lz
