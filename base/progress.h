#pragma once

#include <cstdint>
#include <string>

namespace lz {

/// A one-line progress report on stderr, shown only when stderr is a terminal and the work has
/// lasted more than a second; redrawn at most five times a second. Not thread-safe.
class Progress {
 public:
  explicit Progress(std::string what);
  ~Progress();
  void Update(uint64_t done_bytes);

 private:
  std::string what_;
  bool tty_;
  uint64_t start_ns_;
  uint64_t last_ns_ = 0;
  bool shown_ = false;
};

}  // namespace lz
