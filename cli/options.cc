#include "cli/options.h"

#include <getopt.h>

#include <cstdio>
#include <cstring>

#include "base/file_util.h"

namespace lz {
namespace {

enum LongOnly {
  kDisplayStats = 1000,
  kNoDisplayStats,
  kPidfile,
  kLazyPages,
  kPageServer,
  kAddress,
  kPort,
  kStatusFd,
  kAuthTokenFile,
  kCompress,
  kChunkPages,
  kTimeout,
  kFeature,
  kSummary,
  kTrace,
  kFillDelay,
  kFillThreads,
  kRecordWorkingSet,
  kRecordSeconds,
  kNoWorkingSet,
};

const option kLongOptions[] = {
    {"tree", required_argument, nullptr, 't'},
    {"images-dir", required_argument, nullptr, 'D'},
    {"leave-running", no_argument, nullptr, 'R'},
    {"leave-stopped", no_argument, nullptr, 's'},
    {"shell-job", no_argument, nullptr, 'j'},
    {"file-locks", no_argument, nullptr, 'l'},
    {"restore-detached", no_argument, nullptr, 'd'},
    {"daemon", no_argument, nullptr, 'd'},
    {"log-file", required_argument, nullptr, 'o'},
    {"verbosity", optional_argument, nullptr, 'v'},
    {"help", no_argument, nullptr, 'h'},
    {"display-stats", no_argument, nullptr, kDisplayStats},
    {"no-display-stats", no_argument, nullptr, kNoDisplayStats},
    {"pidfile", required_argument, nullptr, kPidfile},
    {"lazy-pages", no_argument, nullptr, kLazyPages},
    {"page-server", no_argument, nullptr, kPageServer},
    {"address", required_argument, nullptr, kAddress},
    {"port", required_argument, nullptr, kPort},
    {"status-fd", required_argument, nullptr, kStatusFd},
    {"auth-token-file", required_argument, nullptr, kAuthTokenFile},
    {"compress", required_argument, nullptr, kCompress},
    {"chunk-pages", required_argument, nullptr, kChunkPages},
    {"timeout", required_argument, nullptr, kTimeout},
    {"feature", required_argument, nullptr, kFeature},
    {"summary", no_argument, nullptr, kSummary},
    {"trace", required_argument, nullptr, kTrace},
    {"fill-delay", required_argument, nullptr, kFillDelay},
    {"fill-threads", required_argument, nullptr, kFillThreads},
    {"record-working-set", no_argument, nullptr, kRecordWorkingSet},
    {"record-seconds", required_argument, nullptr, kRecordSeconds},
    {"no-working-set", no_argument, nullptr, kNoWorkingSet},
    {nullptr, 0, nullptr, 0},
};

Result<int> IntArg(const char* name, const char* arg, int64_t lo, int64_t hi) {
  int64_t v;
  if (arg == nullptr || !ParseI64(arg, &v) || v < lo || v > hi) {
    return Invalid(std::string("option ") + name,
                   std::string("expects a number from ") + std::to_string(lo) + " to " +
                       std::to_string(hi) + ", got '" + (arg ? arg : "") + "'");
  }
  return static_cast<int>(v);
}

Result<int> Verbosity(const char* arg, int current) {
  if (arg == nullptr) {
    return current + 1;
  }
  if (std::strspn(arg, "v") == std::strlen(arg)) {
    return current + 1 + static_cast<int>(std::strlen(arg));  // -vvv
  }
  return IntArg("-v", arg, 0, 5);
}

Status Apply(int c, CliOptions& o) {
  switch (c) {
    case 't': {
      LZ_ASSIGN_OR_RETURN(o.tree, IntArg("-t", optarg, 1, 1 << 22));
      break;
    }
    case 'D':
      o.images_dir = optarg;
      break;
    case 'R':
      o.leave_running = true;
      break;
    case 's':
      o.leave_stopped = true;
      break;
    case 'j':
      o.shell_job = true;
      break;
    case 'l':
      o.file_locks = true;
      break;
    case 'd':
      o.restore_detached = true;
      o.daemon = true;
      break;
    case 'o':
      o.log_file = optarg;
      break;
    case 'v': {
      LZ_ASSIGN_OR_RETURN(o.verbosity, Verbosity(optarg, o.verbosity));
      break;
    }
    case 'h':
      o.help = true;
      break;
    case kDisplayStats:
      o.display_stats = true;
      break;
    case kNoDisplayStats:
      o.display_stats = false;
      break;
    case kPidfile:
      o.pidfile = optarg;
      break;
    case kLazyPages:
      o.lazy_pages = true;
      break;
    case kPageServer:
      o.page_server = true;
      break;
    case kAddress:
      o.address = optarg;
      break;
    case kPort: {
      LZ_ASSIGN_OR_RETURN(o.port, IntArg("--port", optarg, 1, 65535));
      break;
    }
    case kStatusFd: {
      LZ_ASSIGN_OR_RETURN(o.status_fd, IntArg("--status-fd", optarg, 0, 1 << 20));
      break;
    }
    case kAuthTokenFile:
      o.auth_token_file = optarg;
      break;
    case kCompress:
      o.compress = optarg;
      break;
    case kChunkPages: {
      LZ_ASSIGN_OR_RETURN(o.chunk_pages, IntArg("--chunk-pages", optarg, 1, 1024));
      break;
    }
    case kTimeout: {
      LZ_ASSIGN_OR_RETURN(o.timeout, IntArg("--timeout", optarg, 0, 1 << 20));
      break;
    }
    case kFeature:
      o.feature = optarg;
      break;
    case kSummary:
      o.summary = true;
      break;
    case kTrace:
      o.trace_file = optarg;
      break;
    case kFillThreads: {
      LZ_ASSIGN_OR_RETURN(o.fill_threads, IntArg("--fill-threads", optarg, 0, 64));
      break;
    }
    case kFillDelay: {
      LZ_ASSIGN_OR_RETURN(o.fill_delay_ms, IntArg("--fill-delay", optarg, 0, 3600000));
      break;
    }
    case kRecordWorkingSet:
      o.record_working_set = true;
      break;
    case kRecordSeconds: {
      LZ_ASSIGN_OR_RETURN(o.record_seconds, IntArg("--record-seconds", optarg, 1, 86400));
      break;
    }
    case kNoWorkingSet:
      o.use_working_set = false;
      break;
    default:
      return Invalid("unknown option; see 'lazarus --help'");
  }
  return Ok();
}

}  // namespace

Result<CliOptions> ParseOptions(int argc, char** argv) {
  CliOptions o;
  for (int i = 0; i < argc; i++) {
    o.argv.emplace_back(argv[i]);
  }
  optind = 1;
  opterr = 0;
  for (;;) {
    int c = getopt_long(argc, argv, "+t:D:Rsjldo:v::h", kLongOptions, nullptr);
    if (c == -1) {
      if (optind >= argc) {
        break;
      }
      // Options may follow the command, as with CRIU: take the word and go on.
      o.positional.emplace_back(argv[optind++]);
      continue;
    }
    if (c == '?' || c == ':') {
      std::string bad = optopt ? std::string("-") + static_cast<char>(optopt) : argv[optind - 1];
      return Invalid("unknown or incomplete option '" + bad + "'; see 'lazarus --help'");
    }
    LZ_TRY(Apply(c, o));
  }
  if (!o.positional.empty()) {
    o.command = o.positional.front();
    o.positional.erase(o.positional.begin());
  }
  return o;
}

void PrintUsage() {
  std::fputs(
      "Usage:\n"
      "  lazarus dump|pre-dump -t PID [<options>]\n"
      "  lazarus restore [<options>]\n"
      "  lazarus check [--feature FEAT]\n"
      "  lazarus page-server\n"
      "  lazarus lazy-pages -D DIR [<options>]\n"
      "  lazarus show DIR|FILE [--summary]\n"
      "\n"
      "Commands:\n"
      "  dump           checkpoint a process/tree identified by pid\n"
      "  pre-dump       pre-dump task(s) minimizing their frozen time\n"
      "  restore        restore a process/tree\n"
      "  check          checks whether the kernel support is up-to-date\n"
      "  page-server    launch page server\n"
      "  lazy-pages     serve the memory of a lazily restored tree (userfaultfd)\n"
      "  show           decode images to JSON (like crit show)\n"
      "\n"
      "Dump/Restore options:\n"
      "  -t|--tree PID         checkpoint a process tree identified by PID\n"
      "  -d|--restore-detached detach after restore\n"
      "  -s|--leave-stopped    leave tasks in stopped state after checkpoint\n"
      "  -R|--leave-running    leave tasks in running state after checkpoint\n"
      "  -D|--images-dir DIR   directory for image files\n"
      "     --pidfile FILE     write root task, service or page-server pid to FILE\n"
      "  -j|--shell-job        allow one to dump and restore shell jobs\n"
      "  -l|--file-locks       handle file locks (flock, POSIX, OFD); without it a task\n"
      "                        holding one is not dumped\n"
      "  --timeout NUM         a timeout (in seconds) on collecting tasks during dump\n"
      "                        (default 10 seconds)\n"
      "  --lazy-pages          restore pages on demand\n"
      "                        this requires running a second instance of lazarus\n"
      "                        in lazy-pages mode: 'lazarus lazy-pages -D DIR'\n"
      "  --compress zstd[:LEVEL]|none\n"
      "                        page store compression (default zstd:3)\n"
      "  --chunk-pages N       pages per independently compressed chunk (default 16)\n"
      "\n"
      "* Logging:\n"
      "  -o|--log-file FILE    log file name\n"
      "  -v[v...]|--verbosity  increase verbosity (can use multiple v)\n"
      "  -vNUM|--verbosity=NUM set verbosity to NUM (higher level means more output):\n"
      "                          -v1 - only errors and messages\n"
      "                          -v2 - also warnings (default level)\n"
      "                          -v3 - also information messages and timestamps\n"
      "                          -v4 - lots of debug\n"
      "  --display-stats       print out dump/restore stats\n"
      "\n"
      "* Memory dumping options:\n"
      "  --page-server         send pages to page server (see options below as well)\n"
      "\n"
      "Page/Service server options:\n"
      "  --address ADDR        address of server or service\n"
      "  --port PORT           port of page server\n"
      "  -d|--daemon           run in the background after creating socket\n"
      "  --status-fd FD        write \\0 to the FD and close it once process is ready\n"
      "                        to handle requests\n"
      "  --auth-token-file F   require the shared secret in F from clients\n"
      "\n"
      "Check options:\n"
      "  --feature FEAT        only check a particular feature\n"
      "\n"
      "Show options:\n"
      "  --summary             a table of tasks, VMAs and pages instead of JSON\n",
      stdout);
}

bool PrintCommandHelp(const std::string& command) {
  struct Help {
    const char* command;
    const char* text;
  };
  static const Help kHelp[] = {
      {"dump",
       "Usage: lazarus dump -t PID -D DIR [-R|--leave-running] [-s|--leave-stopped]\n"
       "       [-j|--shell-job] [-l|--file-locks] [-o FILE] [-v[N]] [--display-stats]\n"
       "       [--compress zstd[:LEVEL]|none] [--chunk-pages N] [--timeout SEC]\n"
       "       [--page-server|--lazy-pages --address ADDR --port PORT [--auth-token-file F]]\n"
       "Checkpoint the process tree rooted at PID into DIR. By default the tree is killed\n"
       "after a successful dump; on any failure it is resumed as it was.\n"
       "  --page-server  send the page stores to 'lazarus page-server' at ADDR:PORT\n"
       "  --lazy-pages   keep the page stores here and serve them on ADDR:PORT until a\n"
       "                 remote 'lazy-pages --page-server' has taken every page (post-copy)\n"},
      {"pre-dump", "Usage: lazarus pre-dump -t PID -D DIR\n(not implemented yet)\n"},
      {"restore",
       "Usage: lazarus restore -D DIR [-d|--restore-detached] [--pidfile FILE]\n"
       "       [-j|--shell-job] [-l|--file-locks] [--lazy-pages] [-o FILE] [-v[N]]\n"
       "       [--display-stats]\n"
       "Restore the tree dumped in DIR with its pids (and the file locks a dump with\n"
       "--file-locks kept; -l is accepted for CRIU's command lines). Without -d, wait for\n"
       "the root task and exit with its status. With --lazy-pages, memory is served on\n"
       "demand by 'lazarus lazy-pages -D DIR', which must be started first.\n"},
      {"lazy-pages",
       "Usage: lazarus lazy-pages -D DIR [-o FILE] [-v[N]] [--display-stats] [--trace FILE]\n"
       "       [--fill-delay MS] [--fill-threads N]\n"
       "       [--record-working-set [--record-seconds N]] [--no-working-set]\n"
       "       [--page-server --address ADDR --port PORT [--auth-token-file F]]\n"
       "Serve the memory of a tree restored with 'restore --lazy-pages' through userfaultfd,\n"
       "faults first, the rest in the background; exit once every page is in place.\n"
       "  --trace FILE      write every fault (ns since start, pid, address) to FILE\n"
       "  --fill-delay MS   serve only faults for MS milliseconds before filling the rest\n"
       "  --fill-threads N  threads reading, decoding and copying in the background fill\n"
       "                    (default 2; 0: the event loop does it between faults)\n"
       "  --record-working-set  note the chunks the tree faults, in order, until SIGUSR1 to\n"
       "                    the daemon (e.g. once the service answered), --record-seconds N or\n"
       "                    the end, holding the background fill back meanwhile; save them\n"
       "                    as DIR/working-set.img and working-set.pages, laid out in one piece\n"
       "  --no-working-set  do not prefetch a recorded working set (by default it is read in\n"
       "                    one go and installed before the tasks fault on it)\n"
       "  --page-server     read the page stores from a page server at ADDR:PORT\n"
       "                    (the other images are local; the loop fills, one connection)\n"},
      {"page-server",
       "Usage: lazarus page-server -D DIR --address ADDR --port PORT [-d] [--pidfile F]\n"
       "       [--status-fd FD] [--auth-token-file F]\n"
       "Serve the page stores of DIR to a remote 'lazy-pages --page-server', or receive\n"
       "them from 'dump --page-server'. One client at a time; exits when it is done.\n"
       "  --address ADDR         the only address listened on (required)\n"
       "  -d, --daemon           run in the background once listening\n"
       "  --status-fd FD         write one byte to FD once listening\n"
       "  --auth-token-file F    clients must present the secret in F\n"},
      {"check",
       "Usage: lazarus check [--feature NAME]\n"
       "Probe the kernel features lazarus relies on; exit 0 when the required ones are there.\n"},
      {"show",
       "Usage: lazarus show DIR|FILE [--summary]\n"
       "Decode an image file, or every image of a directory, to JSON.\n"},
  };
  for (const Help& h : kHelp) {
    if (command == h.command) {
      std::fputs(h.text, stdout);
      return true;
    }
  }
  return false;
}

}  // namespace lz
