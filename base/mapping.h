#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <span>
#include <utility>

#include "base/result.h"

namespace lz {

/// Owns an mmap'ed range; unmaps it when destroyed. Move-only. Not thread-safe.
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t len) : addr_(addr), len_(len) {}
  Mapping(Mapping&& o) noexcept
      : addr_(std::exchange(o.addr_, nullptr)), len_(std::exchange(o.len_, 0)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      Reset();
      addr_ = std::exchange(o.addr_, nullptr);
      len_ = std::exchange(o.len_, 0);
    }
    return *this;
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { Reset(); }

  /// Anonymous private read-write memory, zero-filled.
  [[nodiscard]] static Result<Mapping> Anonymous(size_t len);
  /// The same with every page already in place (MAP_POPULATE). On a VM, faulting fresh pages
  /// in one at a time is what costs: 2 MiB took 6 ms touched page by page, 0.25 ms populated.
  [[nodiscard]] static Result<Mapping> Populated(size_t len);

  std::byte* data() const { return static_cast<std::byte*>(addr_); }
  size_t size() const { return len_; }
  std::span<std::byte> span() const { return {data(), len_}; }

 private:
  void Reset() {
    if (addr_ != nullptr) {
      ::munmap(addr_, len_);
      addr_ = nullptr;
    }
  }
  void* addr_ = nullptr;
  size_t len_ = 0;
};

inline Result<Mapping> Mapping::Populated(size_t len) {
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
  if (p == MAP_FAILED) {
    return FailErrno("mmap", std::to_string(len) + " bytes");
  }
  return Mapping(p, len);
}

inline Result<Mapping> Mapping::Anonymous(size_t len) {
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return FailErrno("mmap", std::to_string(len) + " bytes");
  }
  return Mapping(p, len);
}

}  // namespace lz
