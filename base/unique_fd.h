#pragma once

#include <unistd.h>

#include <utility>

#include "base/result.h"

namespace lz {

/// Owns one file descriptor; closes it when destroyed. Move-only. Not thread-safe.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset(o.release());
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  [[nodiscard]] int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }
  /// Closes and reports the error (for files being written, where close can fail).
  Status Close() && {
    int fd = release();
    if (fd >= 0 && ::close(fd) != 0) {
      return FailErrno("close");
    }
    return Ok();
  }

 private:
  int fd_ = -1;
};

}  // namespace lz
