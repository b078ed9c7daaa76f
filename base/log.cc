#include "base/log.h"

#include <stdarg.h>
#include <time.h>
#include <unistd.h>

namespace lz {
namespace {

// The one piece of process-wide mutable state: logging is configured once by main() before
// any component runs, and only read afterwards.
int g_level = static_cast<int>(LogLevel::kWarn);
FILE* g_out = nullptr;

const char* Prefix(LogLevel l) {
  switch (l) {
    case LogLevel::kError:
      return "Error";
    case LogLevel::kWarn:
      return "Warn ";
    case LogLevel::kInfo:
      return "Info ";
    case LogLevel::kDebug:
      return "Debug";
    case LogLevel::kTrace:
      return "Trace";
  }
  return "";
}

}  // namespace

void SetLogLevel(int level) { g_level = level; }
int GetLogLevel() { return g_level; }

bool SetLogFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "ae");
  if (f == nullptr) {
    return false;
  }
  setvbuf(f, nullptr, _IOLBF, 0);
  g_out = f;
  return true;
}

void LogLine(LogLevel level, const char* fmt, ...) {
  FILE* out = g_out != nullptr ? g_out : stderr;
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::fprintf(out, "(%5ld.%06ld) %d %s: %s\n", static_cast<long>(ts.tv_sec), ts.tv_nsec / 1000,
               static_cast<int>(getpid()), Prefix(level), buf);
}

}  // namespace lz
