// Threads that decode page-store chunks for the daemon's background fill, so that both cores
// decode while the event loop copies pages in and serves faults.
#pragma once

#include <zstd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "images/page_store.h"

namespace lz {

/// One chunk to decode. The submitter keeps `stored` and `out` alive and untouched until the
/// job comes back from TakeDone().
struct DecodeJob {
  const img::PageStoreReader* store = nullptr;
  uint64_t chunk = 0;
  std::span<const std::byte> stored;
  std::span<std::byte> out;
  int tag = 0;  // the submitter's own reference
  Status result;
};

/// Thread-safe queue in, queue out; completion is signalled on an eventfd for the submitter's
/// event loop. Jobs are decoded in any order.
class DecodePool {
 public:
  [[nodiscard]] static Result<std::unique_ptr<DecodePool>> Start(int threads);
  ~DecodePool();

  void Submit(DecodeJob* job);
  /// Readable when jobs are done; TakeDone() drains it.
  int event_fd() const { return efd_.get(); }
  std::vector<DecodeJob*> TakeDone();

 private:
  DecodePool() = default;
  void Work();
  UniqueFd efd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<DecodeJob*> todo_;   // guarded by mu_
  std::vector<DecodeJob*> done_;  // guarded by mu_
  bool stop_ = false;             // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace lz
