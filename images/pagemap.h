// Which pages of a task were dumped and where they are: sorted runs of pages.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "images/format.h"

namespace lz::img {

enum PageFlag : uint32_t {
  kPagePresent = 1,   // content in the page store at page_index
  kPageZero = 2,      // all zero: content elided
  kPageLazy = 4,      // may be served on demand (anonymous private memory)
  kPageInParent = 8,  // content in the parent image (incremental dumps)
};

struct PageRun {
  uint64_t vaddr = 0;
  uint32_t nr_pages = 0;
  uint32_t flags = 0;
  uint64_t page_index = 0;  // first page in the page store; present runs only

  uint64_t end() const { return vaddr + uint64_t{nr_pages} * kPageSize; }
  bool present() const { return (flags & kPagePresent) != 0; }
};

/// Sorted, non-overlapping runs of one task. Immutable once built; safe to share across threads
/// for reading.
class Pagemap {
 public:
  Pagemap() = default;

  /// Appends a run above every run so far, merging it into the last one where it continues it
  /// and `may_merge` allows (runs must not cross VMAs: one UFFDIO_COPY cannot).
  void Append(const PageRun& run, bool may_merge = true);

  /// The run holding `addr`, or nullptr. O(log runs).
  const PageRun* Find(uint64_t addr) const;
  /// The page-store index of the page at `addr`, if that page is stored (a present run).
  std::optional<uint64_t> StoredIndexOf(uint64_t addr) const;
  /// Index of the first present run whose pages reach page_index >= `index`. O(log runs).
  size_t FirstPresentRunFromIndex(uint64_t index) const;
  /// Index in runs() of the first run ending above `addr`.
  size_t LowerBound(uint64_t addr) const;

  std::span<const PageRun> runs() const { return runs_; }
  uint64_t stored_pages() const { return stored_pages_; }
  uint64_t total_pages() const;

  /// Checks the invariants a reader relies on: order, alignment, no overflow, page indexes
  /// within `stored_pages` and increasing. Errors name `name`.
  [[nodiscard]] Status Validate(const std::string& name, uint64_t stored_pages) const;

 private:
  std::vector<PageRun> runs_;
  std::vector<size_t> present_;  // indexes of present runs, for lookups by page index
  uint64_t stored_pages_ = 0;
};

struct PagemapFile {
  std::string pages_file;
  uint32_t chunk_pages = kDefaultChunkPages;
  Pagemap pagemap;
};

/// Whether `name` (read from an image) names a file inside the image directory and no further.
bool IsPlainFileName(const std::string& name);

/// The chunks of `pm`'s page store holding the pages a restore writes itself in a lazy restore
/// (present runs not marked lazy), sorted.
std::vector<uint64_t> EagerChunks(const PagemapFile& pm);

[[nodiscard]] Status WritePagemap(const std::string& path, const PagemapFile& pm);
[[nodiscard]] Result<PagemapFile> ReadPagemap(const std::string& path);
/// Same, on bytes in memory; `path` names them in errors.
[[nodiscard]] Result<PagemapFile> ParsePagemap(const std::string& path, std::string bytes);

}  // namespace lz::img
