// Command-line options, with CRIU's names and meanings.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"

namespace lz {

struct CliOptions {
  std::string command;
  std::vector<std::string> positional;
  std::vector<std::string> argv;  // the whole command line, kept in the inventory

  pid_t tree = 0;                 // -t|--tree
  std::string images_dir = ".";   // -D|--images-dir
  bool leave_running = false;     // -R
  bool leave_stopped = false;     // -s
  bool shell_job = false;         // -j
  bool file_locks = false;        // -l
  bool restore_detached = false;  // -d on restore
  bool daemon = false;            // -d on page-server
  bool lazy_pages = false;        // --lazy-pages
  bool page_server = false;       // --page-server
  bool display_stats = false;     // --display-stats
  bool summary = false;           // show --summary
  bool help = false;
  std::string log_file;  // -o
  int verbosity = 2;     // -v
  std::string pidfile;
  std::string address;
  int port = 0;
  int status_fd = -1;
  std::string auth_token_file;
  std::string compress = "zstd:3";  // level 3 beats 1 here on speed and ratio (docs/BENCHMARKS.md)
  int chunk_pages = 16;
  int timeout = 10;
  std::string feature;              // check --feature
  std::string trace_file;           // lazy-pages --trace FILE
  int fill_delay_ms = 0;            // lazy-pages --fill-delay MS
  int fill_threads = 2;             // lazy-pages --fill-threads N
  bool record_working_set = false;  // lazy-pages --record-working-set
  int record_seconds = 0;           // lazy-pages --record-seconds N
  bool use_working_set = true;      // lazy-pages --no-working-set turns it off
};

/// Parses argv. Errors are one line, naming the option.
[[nodiscard]] Result<CliOptions> ParseOptions(int argc, char** argv);

void PrintUsage();
/// Help for one command; false if the command is unknown.
bool PrintCommandHelp(const std::string& command);

}  // namespace lz
