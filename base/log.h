// Leveled logging to stderr or to the file given with -o. The verbosity follows CRIU's -v:
// 0 errors only, 1 warnings, 2 info (default), 3 debug, 4 trace.
#pragma once

#include <cstdio>
#include <string>

namespace lz {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3, kTrace = 4 };

/// Process-wide log settings; set once by the command front-end before any work starts.
void SetLogLevel(int level);
int GetLogLevel();
/// Sends log lines to `path` (appending) instead of stderr. Returns false if it cannot open it.
bool SetLogFile(const std::string& path);

void LogLine(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace lz

#define LZ_LOG(level, ...)                                                  \
  do {                                                                      \
    if (static_cast<int>(::lz::LogLevel::level) <= ::lz::GetLogLevel()) {   \
      ::lz::LogLine(::lz::LogLevel::level, __VA_ARGS__);                    \
    }                                                                       \
  } while (0)
#define LZ_ERROR(...) LZ_LOG(kError, __VA_ARGS__)
#define LZ_WARN(...) LZ_LOG(kWarn, __VA_ARGS__)
#define LZ_INFO(...) LZ_LOG(kInfo, __VA_ARGS__)
#define LZ_DEBUG(...) LZ_LOG(kDebug, __VA_ARGS__)
