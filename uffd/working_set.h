// The working set: the pages a restored tree touches first, recorded page by page during one
// lazy restore (lazy-pages --record-working-set) and, at the next, read in one go and
// installed in the order they were touched, as the tree starts (uffd/daemon.cc).
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
  /// Task `pid` touched its page at dump-time address `vaddr`; `zero`: a page the dump did not
  /// store, which reads as zero.
  void Note(pid_t pid, uint64_t vaddr, bool zero);
  size_t pages() const { return order_.size(); }
  /// Notes which pages of the files task `pid` maps are in use now: restored mappings start
  /// empty, so those are the pages it touched since the restore, and the private copies the
  /// restore wrote (the kernel read the file's page to make each).
  [[nodiscard]] Status NoteMappedFiles(pid_t pid);
  /// Writes working-set.pages (a page store of those pages, in that order, stored raw) and then
  /// working-set.img into `dir`. `source_of(pid)` gives a task's pagemap and page store.
  [[nodiscard]] Status Write(const std::string& dir, uint64_t dumped_at, uint64_t recorded_ns,
                             const std::function<const TaskSource*(pid_t)>& source_of) const;

 private:
  struct Touch {
    pid_t pid;
    uint64_t vaddr;
    bool zero;
  };
  std::vector<Touch> order_;
  std::set<std::pair<pid_t, uint64_t>> seen_;
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> files_;  // path -> ranges
};

/// A recorded working set, checked and read by a thread of its own as soon as the daemon
/// starts, while the restore is still building the tree.
class WorkingSetPrefetch {
 public:
  using Run = WorkingSetRun;

  /// If `dir` holds a working set, starts checking and reading it on a thread of its own
  /// (and reading its files ahead on another), which writes to eventfd `done_fd` when the
  /// pages are ready; null when there is none.
  static std::unique_ptr<WorkingSetPrefetch> Start(const std::string& dir, uint64_t dumped_at,
                                                   int done_fd);
  ~WorkingSetPrefetch();

  bool ready() const { return ready_.load(std::memory_order_acquire); }
  /// After ready(): what went wrong, if anything (then nothing may be installed).
  const Status& status() const { return status_; }
  /// After ready(): false when it was made for other images (a warning said why).
  bool usable() const { return usable_; }
  /// The runs of task `pid`, in the order they were touched.
  std::span<const Run> Of(pid_t pid) const;
  uint64_t pages() const { return pages_; }
  uint64_t bytes_read() const { return file_size_; }
  uint64_t ready_ns() const { return ready_ns_; }

 private:
  WorkingSetPrefetch() = default;
  void Work(int done_fd);
  // Whether the working set was recorded on these images; loads its runs if so.
  Status Check();
  Status ReadAndDecode();
  // Where page 0 lies in `file` when every chunk is stored raw, one after the other: the
  // pages are then used where they are. Null otherwise.
  const std::byte* InPlace(std::span<const std::byte> file) const;
  using FileRanges =
      std::vector<std::pair<std::string, std::vector<uint64_t>>>;  // path, (offset, length)*
  // Reads the recorded ranges of mapped files ahead, into the page cache.
  static void ReadFilesAhead(const FileRanges& files);

  std::string dir_;
  uint64_t dumped_at_ = 0;
  bool usable_ = false;
  std::unique_ptr<img::PageStoreReader> store_;  // working-set.pages
  std::map<pid_t, std::vector<Run>> runs_;
  FileRanges files_;  // loaded by Check, then handed to the read-ahead thread
  uint64_t pages_ = 0;
  uint64_t file_size_ = 0;
  uint64_t start_ns_ = 0;
  uint64_t ready_ns_ = 0;
  Mapping file_;   // working-set.pages, mapped: the pages themselves when stored raw
  Mapping arena_;  // its pages, decoded, when they were compressed
  Status status_ = Ok();
  std::atomic<bool> ready_{false};
  std::thread thread_;
};

}  // namespace lz
