#include "uffd/decode_pool.h"

#include <sys/eventfd.h>
#include <unistd.h>

namespace lz {

Result<std::unique_ptr<DecodePool>> DecodePool::Start(int threads) {
  auto p = std::unique_ptr<DecodePool>(new DecodePool());
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    return FailErrno("eventfd");
  }
  p->efd_.reset(fd);
  for (int i = 0; i < threads; i++) {
    p->threads_.emplace_back([raw = p.get()] { raw->Work(); });
  }
  return p;
}

DecodePool::~DecodePool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) {
    t.join();
  }
}

void DecodePool::Submit(DecodeJob* job) {
  {
    std::lock_guard<std::mutex> l(mu_);
    todo_.push_back(job);
  }
  cv_.notify_one();
}

std::vector<DecodeJob*> DecodePool::TakeDone() {
  uint64_t n;
  (void)!::read(efd_.get(), &n, sizeof n);
  std::lock_guard<std::mutex> l(mu_);
  std::vector<DecodeJob*> out;
  out.swap(done_);
  return out;
}

void DecodePool::Work() {
  // Jobs are taken and handed back a few at a time: one wake-up and one eventfd write per
  // batch instead of per 64 KiB chunk keeps the hand-off from costing more than the decode.
  constexpr size_t kBatch = 4;
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  std::vector<DecodeJob*> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return stop_ || !todo_.empty(); });
      if (stop_) {
        break;
      }
      while (!todo_.empty() && batch.size() < kBatch) {
        batch.push_back(todo_.front());
        todo_.pop_front();
      }
    }
    for (DecodeJob* job : batch) {
      job->result = job->store->DecodeChunk(job->chunk, job->stored, job->out, dctx);
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      done_.insert(done_.end(), batch.begin(), batch.end());
    }
    batch.clear();
    uint64_t one = 1;
    (void)!::write(efd_.get(), &one, sizeof one);
  }
  ZSTD_freeDCtx(dctx);
}

}  // namespace lz
