// The working set: the pages a restored tree touches first, recorded page by page during one
// lazy restore (lazy-pages --record-working-set) and, at the next, read in one go and
// installed before the tasks fault on them.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/mapping.h"
#include "base/result.h"
#include "images/page_store.h"
#include "uffd/target.h"

namespace lz {

/// The pages touched while recording, in the order of their first touch.
class WorkingSetRecorder {
 public:
  /// Task `pid` touched its page at dump-time address `vaddr`.
  void Note(pid_t pid, uint64_t vaddr);
  size_t pages() const { return order_.size(); }
  /// Writes working-set.pages (a page store of those pages, in that order) and then
  /// working-set.img into `dir`. `source_of(pid)` gives a task's pagemap and page store.
  [[nodiscard]] Status Write(const std::string& dir, uint64_t dumped_at, uint64_t recorded_ns,
                             const std::function<const TaskSource*(pid_t)>& source_of) const;

 private:
  std::vector<std::pair<pid_t, uint64_t>> order_;
  std::set<std::pair<pid_t, uint64_t>> seen_;
};

/// A recorded working set, read and decoded by a thread of its own as soon as the daemon
/// starts, while the restore is still building the tree.
class WorkingSetPrefetch {
 public:
  struct Run {
    uint64_t vaddr = 0;  // dump-time address
    uint32_t nr_pages = 0;
    uint64_t first_page = 0;           // in working-set.pages
    std::span<const std::byte> pages;  // decoded, once ready()
  };

  /// The working set of `dir` if there is one made for these images (a stale one, recorded
  /// on another dump, is ignored with a warning): null when there is none to use.
  [[nodiscard]] static Result<std::unique_ptr<WorkingSetPrefetch>> Load(const std::string& dir,
                                                                        uint64_t dumped_at);
  ~WorkingSetPrefetch();

  /// Starts reading and decoding; writes to eventfd `done_fd` when done (or failed).
  void Start(int done_fd);
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  /// After ready(): what went wrong, if anything (then nothing may be installed).
  const Status& status() const { return status_; }
  /// Whether the page of task `pid` at dump-time address `vaddr` is in the working set.
  bool Has(pid_t pid, uint64_t vaddr) const;
  /// The runs of task `pid`, in the order they were touched.
  std::span<const Run> Of(pid_t pid) const;
  uint64_t pages() const { return pages_; }
  uint64_t bytes_read() const { return file_size_; }
  uint64_t ready_ns() const { return ready_ns_; }

 private:
  WorkingSetPrefetch() = default;
  void Work(int done_fd);
  Status ReadAndDecode();

  std::string dir_;
  std::unique_ptr<img::PageStoreReader> store_;  // working-set.pages
  std::map<pid_t, std::vector<Run>> runs_;
  std::map<pid_t, std::map<uint64_t, uint64_t>> extents_;  // per task: start -> end, for Has
  uint64_t pages_ = 0;
  uint64_t file_size_ = 0;
  uint64_t start_ns_ = 0;
  uint64_t ready_ns_ = 0;
  Mapping file_;   // working-set.pages, mapped
  Mapping arena_;  // its pages, decoded
  Status status_ = Ok();
  std::atomic<bool> ready_{false};
  std::thread thread_;
};

}  // namespace lz
