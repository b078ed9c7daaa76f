// The `lazarus` command: CRIU's command line over lazarus's components.
#include <sys/wait.h>

#include <cstdio>
#include <cstring>

#include "base/log.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "dump/dump.h"
#include "images/page_server.h"
#include "images/page_store.h"
#include "restore/restore.h"
#include "uffd/daemon.h"

namespace lz {
namespace {

int Report(const Error& e) {
  std::fprintf(stderr, "Error: %s\n", e.Message().c_str());
  return 1;
}

void PrintDumpStats(const pb::DumpStats& s) {
  std::printf(
      "Displaying dump stats:\n"
      "Frozen time: %lu us\nMemory dump time: %lu us\nTotal time: %lu us\n"
      "Pages scanned: %lu\nPages present: %lu\nPages zero (not stored): %lu\n"
      "Pages written: %lu\nBytes before compression: %lu\nBytes after compression: %lu\n",
      s.frozen_ns() / 1000, s.memdump_ns() / 1000, s.total_ns() / 1000, s.pages_scanned(),
      s.pages_present(), s.pages_zero(), s.pages_written(), s.bytes_in(), s.bytes_out());
}

// The shared secret of --auth-token-file, or "" when none was given.
Result<std::string> Token(const CliOptions& o) {
  if (o.auth_token_file.empty()) {
    return std::string();
  }
  return ReadTokenFile(o.auth_token_file);
}

Status NeedAddress(const CliOptions& o, const char* what) {
  if (o.address.empty() || o.port == 0) {
    return Invalid(what, "needs --address and --port");
  }
  return Ok();
}

int RunDumpCommand(const CliOptions& o) {
  if (o.tree == 0) {
    std::fprintf(stderr, "Error: dump needs -t PID\n");
    return 1;
  }
  if (o.leave_running && o.leave_stopped) {
    std::fprintf(stderr, "Error: --leave-running and --leave-stopped exclude each other\n");
    return 1;
  }
  auto token = Token(o);
  if (!token) {
    return Report(token.error());
  }
  DumpOptions d;
  if (o.page_server) {
    if (Status st = NeedAddress(o, "dump --page-server"); !st) {
      return Report(st.error());
    }
    d.to_page_server = true;
    d.ps_address = o.address;
    d.ps_port = o.port;
    d.ps_token = *token;
  }
  // --lazy-pages (post-copy migration): the page stores stay here and are served from here
  // until the lazy-pages daemon of the restored copy has taken every page. The port is taken
  // before the freeze, so that a port in use costs the tree nothing.
  UniqueFd listener;
  if (o.lazy_pages) {
    if (Status st = NeedAddress(o, "dump --lazy-pages"); !st) {
      return Report(st.error());
    }
    auto l = ListenPageServer(o.address, o.port);
    if (!l) {
      return Report(l.error());
    }
    listener = std::move(*l);
  }
  d.pid = o.tree;
  d.dir = o.images_dir;
  d.after = o.leave_running   ? DumpOptions::After::kLeaveRunning
            : o.leave_stopped ? DumpOptions::After::kLeaveStopped
                              : DumpOptions::After::kKill;
  d.shell_job = o.shell_job;
  d.file_locks = o.file_locks;
  d.timeout_sec = o.timeout;
  d.command_line = o.argv;
  img::PageStoreOptions store;
  store.chunk_pages = static_cast<uint32_t>(o.chunk_pages);
  auto parsed = img::ParseCompression(o.compress, store);
  if (!parsed) {
    return Report(parsed.error());
  }
  d.store = *parsed;
  // Caught here so that the stack unwinds: on the way, the frozen tree lets every task go on
  // as it was (an exception nobody catches may end the process without unwinding).
  Result<pb::DumpStats> stats = Invalid("dump", "did not run");
  try {
    stats = RunDump(d);
  } catch (const std::exception& e) {
    stats = Invalid("dump", std::string("failed: ") + e.what());
  }
  if (!stats) {
    return Report(stats.error());
  }
  if (o.display_stats) {
    PrintDumpStats(*stats);
    std::fflush(stdout);
  }
  if (listener.valid()) {
    LZ_INFO("dump: serving the pages of %s on %s:%d until they are all taken", o.images_dir.c_str(),
            o.address.c_str(), o.port);
    Status st = ServePages(listener.get(), o.images_dir, *token);
    if (!st) {
      return Report(st.error());
    }
  }
  return 0;
}

int RunPageServerCommand(const CliOptions& o) {
  if (Status st = NeedAddress(o, "page-server"); !st) {
    return Report(st.error());
  }
  auto token = Token(o);
  if (!token) {
    return Report(token.error());
  }
  PageServerOptions p;
  p.dir = o.images_dir;
  p.address = o.address;
  p.port = o.port;
  p.token = *token;
  p.daemonize = o.daemon;
  p.pidfile = o.pidfile;
  p.status_fd = o.status_fd;
  Status st = RunPageServer(p);
  if (!st) {
    return Report(st.error());
  }
  return 0;
}

void PrintRestoreStats(const pb::RestoreStats& s) {
  std::printf(
      "Displaying restore stats:\n"
      "Forking time: %lu us\nMemory restore time: %lu us\nTotal restore time: %lu us\n"
      "Pages restored eagerly: %lu\nPages left to lazy-pages: %lu\n",
      s.fork_ns() / 1000, s.mm_ns() / 1000, s.total_ns() / 1000, s.pages_eager(), s.pages_lazy());
}

int RunRestoreCommand(const CliOptions& o) {
  RestoreOptions r;
  r.dir = o.images_dir;
  r.detached = o.restore_detached;
  r.pidfile = o.pidfile;
  r.shell_job = o.shell_job;
  r.lazy = o.lazy_pages;
  auto res = RunRestore(r);
  if (!res) {
    return Report(res.error());
  }
  if (o.display_stats) {
    PrintRestoreStats(res->stats);
    std::fflush(stdout);
  }
  if (r.detached) {
    return 0;
  }
  int status = 0;
  if (waitpid(res->root, &status, 0) < 0) {
    std::fprintf(stderr, "Error: waitpid %d: %s\n", res->root, std::strerror(errno));
    return 1;
  }
  if (WIFSIGNALED(status)) {
    std::fprintf(stderr, "Restored task %d was killed by signal %d\n", res->root, WTERMSIG(status));
    return 128 + WTERMSIG(status);
  }
  return WEXITSTATUS(status);
}

void PrintLazyStats(const pb::LazyStats& s) {
  std::printf(
      "Displaying lazy-pages stats:\n"
      "Tasks served: %u\nFaults: %lu\nFault latency p50: %lu us\nFault latency p99: %lu us\n"
      "Fault latency max: %lu us\nPages by fault: %lu\nPages by background fill: %lu\n"
      "Zero pages: %lu\nChunks read: %lu\nTime to full residency: %lu us\n"
      "Working set pages: %lu\nPages by working-set prefetch: %lu\nWorking set ready after: %lu "
      "us\n",
      s.tasks(), s.faults(), s.fault_p50_ns() / 1000, s.fault_p99_ns() / 1000,
      s.fault_max_ns() / 1000, s.pages_by_fault(), s.pages_by_fill(), s.pages_zero(),
      s.chunks_read(), s.residency_ns() / 1000, s.working_set_pages(), s.pages_by_prefetch(),
      s.prefetch_ns() / 1000);
}

int RunLazyPagesCommand(const CliOptions& o) {
  LazyPagesOptions l;
  if (o.page_server) {
    if (Status st = NeedAddress(o, "lazy-pages --page-server"); !st) {
      return Report(st.error());
    }
    auto token = Token(o);
    if (!token) {
      return Report(token.error());
    }
    l.ps_address = o.address;
    l.ps_port = o.port;
    l.ps_token = *token;
  }
  l.dir = o.images_dir;
  l.trace_file = o.trace_file;
  l.fill_delay_ms = o.fill_delay_ms;
  l.fill_threads = o.fill_threads;
  l.record_working_set = o.record_working_set;
  l.record_seconds = o.record_seconds;
  l.use_working_set = o.use_working_set;
  auto stats = RunLazyPages(l);
  if (!stats) {
    return Report(stats.error());
  }
  if (o.display_stats) {
    PrintLazyStats(*stats);
  }
  return 0;
}

int NotYet(const char* what) {
  std::fprintf(stderr, "Error: '%s' is not implemented yet in this version of lazarus\n", what);
  return 1;
}

int Dispatch(const CliOptions& o) {
  const std::string& c = o.command;
  if (c == "dump") return RunDumpCommand(o);
  if (c == "check") return RunCheckCommand(o);
  if (c == "show") return RunShowCommand(o);
  if (c == "pre-dump") return NotYet("pre-dump");
  if (c == "page-server") return RunPageServerCommand(o);
  if (c == "restore") return RunRestoreCommand(o);
  if (c == "lazy-pages") return RunLazyPagesCommand(o);
  std::fprintf(stderr, "Error: unknown command '%s'; see 'lazarus --help'\n", c.c_str());
  return 1;
}

}  // namespace
}  // namespace lz

int main(int argc, char** argv) {
  auto opts = lz::ParseOptions(argc, argv);
  if (!opts) {
    std::fprintf(stderr, "Error: %s\n", opts.error().Message().c_str());
    return 1;
  }
  if (opts->command.empty()) {
    lz::PrintUsage();
    return opts->help ? 0 : 1;
  }
  if (opts->help) {
    return lz::PrintCommandHelp(opts->command) ? 0 : 1;
  }
  lz::SetLogLevel(opts->verbosity);
  if (!opts->log_file.empty() && !lz::SetLogFile(opts->log_file)) {
    std::fprintf(stderr, "Error: cannot open log file %s: %s\n", opts->log_file.c_str(),
                 std::strerror(errno));
    return 1;
  }
  return lz::Dispatch(*opts);
}
