// The pages of one task still waiting for their content, tracked by dump-time address with the
// offset to where each piece lives now (mremap moves memory). Pure arithmetic, no fds.
#pragma once

#include <cstdint>
#include <map>
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

/// Not thread-safe. Addresses are page-aligned by the caller.
class RangeSet {
 public:
  void Add(uint64_t image_start, uint64_t image_end);
  /// The dump-time address of live address `addr`, if that page is pending.
  std::optional<uint64_t> ImageOf(uint64_t live_addr) const;
  /// Whether the page at dump-time address `image_addr` is pending (no allocation).
  bool ContainsImage(uint64_t image_addr) const;
  /// Pending pieces intersecting dump-time [start, end), clipped to it.
  std::vector<PendingRange> Intersect(uint64_t image_start, uint64_t image_end) const;
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
  std::map<uint64_t, PendingRange> ranges_;  // by image_start
  bool moved_ = false;                       // a Remap happened: live != image somewhere
};

}  // namespace lz
