#pragma once

#include <time.h>

#include <cstdint>

namespace lz {

inline uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
}

/// A point in time some nanoseconds from now; 0 means never.
class Deadline {
 public:
  explicit Deadline(uint64_t from_now_ns) : at_(from_now_ns ? MonotonicNs() + from_now_ns : 0) {}
  bool Expired() const { return at_ != 0 && MonotonicNs() > at_; }
  /// The MonotonicNs() it expires at; 0 for never.
  uint64_t at() const { return at_; }

 private:
  uint64_t at_;
};

}  // namespace lz
