// An allocator for large buffers that are filled at once: their pages are put in place by the
// kernel in one go (MAP_POPULATE) instead of being faulted in one at a time when first
// written, which on a VM is what costs (docs/BENCHMARKS.md: 2 MiB, 6 ms against 0.25 ms).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <utility>

namespace lz {

template <typename T>
class PopulatedAllocator {
 public:
  using value_type = T;
  PopulatedAllocator() = default;
  template <typename U>
  PopulatedAllocator(const PopulatedAllocator<U>&) {}  // NOLINT: rebinding is implicit

  T* allocate(size_t n) {
    size_t bytes = n * sizeof(T);
    if (bytes < kMinBytes) {
      return static_cast<T*>(::operator new(bytes));
    }
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
      throw std::bad_alloc();
    }
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    size_t bytes = n * sizeof(T);
    if (bytes < kMinBytes) {
      ::operator delete(p);
    } else {
      ::munmap(p, bytes);
    }
  }
  // resize() leaves new elements of a trivial type as they are, not zeroed: the buffer is
  // filled at once, and a zeroing pass first would touch every page a second time.
  template <typename U>
  void construct(U* p) {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  bool operator==(const PopulatedAllocator<U>&) const {
    return true;
  }

 private:
  static constexpr size_t kMinBytes = 64 * 1024;  // below this, malloc's own pages do
};

}  // namespace lz
