#include "base/progress.h"

#include <unistd.h>

#include <cstdio>

#include "base/clock.h"

namespace lz {

Progress::Progress(std::string what)
    : what_(std::move(what)), tty_(::isatty(STDERR_FILENO) == 1), start_ns_(MonotonicNs()) {}

Progress::~Progress() {
  if (shown_) {
    std::fputs("\r\033[K", stderr);
  }
}

void Progress::Update(uint64_t done_bytes) {
  if (!tty_) {
    return;
  }
  uint64_t now = MonotonicNs();
  if (now - start_ns_ < 1000000000 || now - last_ns_ < 200000000) {
    return;
  }
  last_ns_ = now;
  shown_ = true;
  double secs = double(now - start_ns_) / 1e9;
  std::fprintf(stderr, "\r%s: %lu MiB in %.1f s (%.0f MiB/s)\033[K", what_.c_str(),
               static_cast<unsigned long>(done_bytes >> 20), secs, double(done_bytes >> 20) / secs);
  std::fflush(stderr);
}

}  // namespace lz
