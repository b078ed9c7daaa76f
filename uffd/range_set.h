// The pages of one task still waiting for their content, tracked by dump-time address with the
// offset to where each piece lives now (mremap moves memory). Pure arithmetic, no fds.
#pragma once

#include <cstdint>
#include <map>
#include <memory_resource>
#include <optional>
#include <vector>

namespace lz {

/// A pending piece: dump-time [image_start, image_end) now lives at image_start + delta.
struct PendingRange {
  uint64_t image_start;
  uint64_t image_end;
  int64_t delta;

  uint64_t live_start() const { return image_start + delta; }
  uint64_t live_end() const { return image_end + delta; }
};

/// Not thread-safe. Addresses are page-aligned by the caller. Its pieces live in a pool of its
/// own that keeps freed nodes: once a set has been as fragmented as it gets, splitting and
/// dropping pieces (what serving a fault does) allocates nothing.
class RangeSet {
 public:
  RangeSet() = default;
  RangeSet(const RangeSet& o) { *this = o; }
  RangeSet& operator=(const RangeSet& o);

  void Add(uint64_t image_start, uint64_t image_end);
  /// The dump-time address of live address `addr`, if that page is pending.
  std::optional<uint64_t> ImageOf(uint64_t live_addr) const;
  /// Whether the page at dump-time address `image_addr` is pending (no allocation).
  bool ContainsImage(uint64_t image_addr) const;
  /// Appends to `out` the pending pieces intersecting dump-time [start, end), clipped to it (a
  /// vector the caller reuses allocates nothing once it has grown).
  void Intersect(uint64_t image_start, uint64_t image_end, std::vector<PendingRange>* out) const;
  /// Drops dump-time [start, end) (its content arrived).
  void RemoveImage(uint64_t image_start, uint64_t image_end);
  /// Drops live [start, end) (madvise(DONTNEED) or munmap: it must never be filled).
  void RemoveLive(uint64_t live_start, uint64_t live_end);
  /// mremap moved live [from, from + len) to `to`.
  void Remap(uint64_t from, uint64_t to, uint64_t len);

  bool empty() const { return ranges_.empty(); }
  uint64_t bytes() const;
  /// The pending pages from dump-time `image_addr` on, up to the end of that piece; or else
  /// the next piece after it, wrapping around.
  std::optional<PendingRange> NextFrom(uint64_t image_addr) const;

 private:
  // Splits the piece holding `image_addr` so that a piece starts there.
  void SplitAt(uint64_t image_addr);
  std::pmr::unsynchronized_pool_resource pool_;           // before ranges_: outlives it
  std::pmr::map<uint64_t, PendingRange> ranges_{&pool_};  // by image_start
  bool moved_ = false;  // a Remap happened: live != image somewhere
};

}  // namespace lz
