// Leveled logging to stderr or to the file given with -o. The verbosity follows CRIU's -v:
// 1 errors only, 2 also warnings (default), 3 also info, 4 also debug, 5 trace.
#pragma once

#include <cstdio>
#include <string>

namespace lz {

enum class LogLevel { kError = 1, kWarn = 2, kInfo = 3, kDebug = 4, kTrace = 5 };

/// Process-wide log settings; set once by the command front-end before any work starts.
void SetLogLevel(int level);
int GetLogLevel();
/// Sends log lines to `path` (appending) instead of stderr. Returns false if it cannot open it.
bool SetLogFile(const std::string& path);

void LogLine(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace lz

#define LZ_LOG(level, ...)                                                \
  do {                                                                    \
    if (static_cast<int>(::lz::LogLevel::level) <= ::lz::GetLogLevel()) { \
      ::lz::LogLine(::lz::LogLevel::level, __VA_ARGS__);                  \
    }                                                                     \
  } while (0)
#define LZ_ERROR(...) LZ_LOG(kError, __VA_ARGS__)
#define LZ_WARN(...) LZ_LOG(kWarn, __VA_ARGS__)
#define LZ_INFO(...) LZ_LOG(kInfo, __VA_ARGS__)
#define LZ_DEBUG(...) LZ_LOG(kDebug, __VA_ARGS__)
