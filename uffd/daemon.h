// `lazarus lazy-pages`: serve the memory of a lazily restored tree through userfaultfd.
// The fault path starts in LazyPagesDaemon::OnUffdReadable (uffd/daemon.cc).
#pragma once

#include <string>

#include "base/result.h"
#include "images/stats.pb.h"

namespace lz {

struct LazyPagesOptions {
  std::string dir;
  std::string trace_file;  // --trace: one line per fault
  int fill_delay_ms = 0;   // --fill-delay: serve faults only for this long before filling
  // --fill-threads: threads that read, decode and copy the background fill, so that it uses
  // both cores; 0: the event loop fills between faults.
  int fill_threads = 2;
  // --page-server: the page stores are read from a page server (ps_address non-empty).
  std::string ps_address;
  int ps_port = 0;
  std::string ps_token;
  // --record-working-set: note the chunks faulted until SIGUSR1, --record-seconds or the end,
  // holding the background fill back meanwhile, and save them as the dump's working set.
  bool record_working_set = false;
  int record_seconds = 0;
  // Otherwise a working set recorded on these images is read and installed before faults;
  // --no-working-set turns that off.
  bool use_working_set = true;
};

/// Listens on DIR/lazy-pages.socket, serves every task handed over by `restore --lazy-pages`
/// until every page is in place or every task is gone. If the daemon dies first, a guard
/// process kills the restored tasks: none of them may run on with memory that never came.
[[nodiscard]] Result<pb::LazyStats> RunLazyPages(const LazyPagesOptions& opts);

}  // namespace lz
