// The lazy-pages daemon: one io_uring event loop over the restore connection, every task's
// userfaultfd and the page-store reads. Faults go first; the background fill uses what is left.
//
// Where a page fault is served: OnUffdReadable -> HandleFault -> (chunk read) OnReadDone ->
// CopyChunk -> UFFDIO_COPY.
#include "uffd/daemon.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/kcmp.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/file_util.h"
#include "base/kernel_features.h"
#include "base/log.h"
#include "base/mapping.h"
#include "base/proc.h"
#include "base/scm.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/page_server_client.h"
#include "images/page_server_protocol.h"
#include "uffd/guard.h"
#include "uffd/protocol.h"
#include "uffd/remote_images.h"
#include "uffd/target.h"
#include "uffd/uffd_ops.h"
#include "uffd/working_set.h"

namespace lz {
namespace {

constexpr uint64_t P = img::kPageSize;
// Chunk reads in flight. Two slots are held back for faults so that a fault never queues
// behind the background fill.
constexpr size_t kSlots = 16;
constexpr size_t kFaultReserve = 2;
constexpr size_t kMaxMsgs = 32;  // uffd_msg read per read(2)
constexpr size_t kLatencyReserve = 1 << 20;
// A lost page server is retried with growing pauses for this long before the tasks are killed.
constexpr uint64_t kReconnectWindowNs = 5'000'000'000;

enum Tag : uint64_t {
  kTagListen = 1,
  kTagControl = 2,
  kTagUffd = 3,
  kTagRead = 4,
  kTagFillIdle = 5,
  kTagRemote = 6,      // the page-server connection; index = connection generation
  kTagPrefetch = 7,    // the working set is read and decoded
  kTagSignal = 8,      // SIGUSR1: stop recording the working set
  kTagControlOut = 9,  // the control socket has room again for queued replies
};

uint64_t MakeTag(Tag kind, uint64_t index) { return (uint64_t{kind} << 56) | index; }
Tag TagKind(uint64_t data) { return static_cast<Tag>(data >> 56); }
uint64_t TagIndex(uint64_t data) { return data & ((uint64_t{1} << 56) - 1); }

struct Waiter {
  int target;
  uint64_t addr;
  uint64_t since_ns;
};

// A read slot's buffer, populated when it is made (Mapping::Populated) rather than faulted in
// page by page by the first reads.
class SlotBuffer {
 public:
  Status Ensure(size_t n) {
    if (m_.size() < n) {
      LZ_ASSIGN_OR_RETURN(m_, Mapping::Populated((n + P - 1) / P * P));
    }
    return Ok();
  }
  std::byte* data() const { return m_.data(); }
  std::span<std::byte> span() const { return m_.span(); }

 private:
  Mapping m_;
};

struct ReadSlot {
  bool busy = false;
  bool done = false;  // read ahead and read, waiting for the loop to have time (DrainReadAhead)
  int done_res = 0;
  SlotBuffer decoded;
  std::shared_ptr<const TaskSource> source;
  uint64_t chunk = 0;
  bool for_fault = false;
  SlotBuffer buf;
  std::vector<Waiter> waiters;
};

// A chunk a fill thread is reading, decoding or copying.
struct FillPick {
  std::shared_ptr<const TaskSource> source;
  uint64_t chunk = 0;
  uint32_t pages = 0;  // decoded, once read: the index entry the read used
};

// A readers-writer lock that prefers its writer: the event loop (the writer) must not starve
// behind the fill threads' copies (the readers), or faults would wait for the whole fill.
class RwLock {
 public:
  RwLock() {
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&l_, &a);
    pthread_rwlockattr_destroy(&a);
  }
  ~RwLock() { pthread_rwlock_destroy(&l_); }
  RwLock(const RwLock&) = delete;
  RwLock& operator=(const RwLock&) = delete;
  void lock() { pthread_rwlock_wrlock(&l_); }
  void unlock() { pthread_rwlock_unlock(&l_); }
  void lock_shared() { pthread_rwlock_rdlock(&l_); }
  void unlock_shared() { pthread_rwlock_unlock(&l_); }

 private:
  pthread_rwlock_t l_;
};

// One piece of a chunk a fill thread copies in: planned and settled under fill_mu_, copied
// with only the shared lock held.
struct PieceCopy {
  Target* target = nullptr;
  PendingRange piece{};
  const std::byte* src = nullptr;
  uint64_t done = 0;   // bytes from the piece's start that are in place now
  uint64_t pages = 0;  // pages this copy put there
  CopyOutcome outcome = CopyOutcome::kCopied;
  int err = 0;
};

// The store chunk holding the present dump-time page `image` of `src`.
uint64_t ChunkOfImage(const TaskSource& src, uint64_t image) {
  return *src.pagemap.pagemap.StoredIndexOf(image) / src.store->chunk_pages();
}

// The dump-time address of the first page of chunk `k` of `src`; none past the last chunk.
std::optional<uint64_t> FirstImageOfChunk(const TaskSource& src, uint64_t k) {
  const img::Pagemap& pm = src.pagemap.pagemap;
  uint64_t first = k * src.store->chunk_pages();
  size_t ri = pm.FirstPresentRunFromIndex(first);
  if (ri >= pm.runs().size()) {
    return std::nullopt;
  }
  const img::PageRun& r = pm.runs()[ri];
  uint64_t idx = std::max(first, r.page_index);
  if (idx >= first + src.store->chunk_pages()) {
    return std::nullopt;
  }
  return r.vaddr + (idx - r.page_index) * P;
}

class LazyPagesDaemon {
 public:
  LazyPagesDaemon(const LazyPagesOptions& opts, Guard guard,
                  std::unique_ptr<PageServerClient> remote, RemoteImages remote_images,
                  uint64_t dumped_at, std::vector<pid_t> pids)
      : opts_(opts),
        dumped_at_(dumped_at),
        pids_(std::move(pids)),
        guard_(std::move(guard)),
        remote_(std::move(remote)),
        remote_images_(std::move(remote_images)) {
    latencies_.reserve(kLatencyReserve);
    loop_copies_.reserve(64);  // a chunk has at most 16 pieces per task: the first fault
    loop_pieces_.reserve(64);  // allocates nothing either
    slots_.resize(kSlots);
    for (ReadSlot& s : slots_) {
      s.waiters.reserve(64);
    }
  }
  ~LazyPagesDaemon() {
    prefetch_.reset();  // joins its thread, which may still write prefetch_done_
    StopFillThreads();
    if (preload_.joinable()) {
      preload_.join();
    }
    if (ring_ready_) {
      io_uring_queue_exit(&ring_);
    }
    if (trace_ != nullptr) {
      std::fclose(trace_);
    }
  }

  Status Run() {
    Status st = Serve();
    StopFillThreads();
    if (st && recording_) {
      StopRecording("every task is done");
    }
    for (const std::string& f : remote_images_.partial_files) {
      ::unlink(f.c_str());  // only the restore needed them
    }
    if (!st) {
      return st;
    }
    if (remote_) {
      Status bye = remote_->Bye();
      if (!bye) {
        LZ_WARN("lazy-pages: %s", bye.error().Message().c_str());
      }
    }
    done_ns_ = MonotonicNs();
    guard_.Done();
    for (auto& t : targets_) {
      t->uffd.reset();
    }
    ::unlink(SocketPath().c_str());
    return Ok();
  }

  pb::LazyStats Stats() {
    pb::LazyStats s;
    s.set_faults(latencies_.size());
    if (!latencies_.empty()) {
      std::sort(latencies_.begin(), latencies_.end());
      s.set_fault_p50_ns(latencies_[latencies_.size() / 2]);
      s.set_fault_p99_ns(latencies_[latencies_.size() * 99 / 100]);
      s.set_fault_max_ns(latencies_.back());
    }
    s.set_pages_by_fault(pages_by_fault_);
    s.set_pages_by_fill(pages_by_fill_);
    s.set_pages_zero(pages_zero_);
    s.set_residency_ns(first_task_ns_ ? done_ns_ - first_task_ns_ : 0);
    s.set_tasks(static_cast<uint32_t>(targets_.size()));
    s.set_chunks_read(chunks_read_);
    s.set_pages_by_prefetch(pages_by_prefetch_);
    s.set_working_set_pages(working_set_pages_);
    s.set_prefetch_ns(prefetch_ns_);
    return s;
  }

 private:
  // The event loop. It holds mu_ except while it waits for the ring, so that the fill
  // threads' copies and the loop's event handling never interleave (see FillThread).
  Status Serve() {
    LZ_TRY(Listen());
    int r = io_uring_queue_init(256, &ring_, 0);
    if (r < 0) {
      return Fail(-r, "io_uring_queue_init");
    }
    ring_ready_ = true;
    StartPreload();  // both run while the rest is set up and the restore forks
    LZ_TRY(StartWorkingSet());
    // Slot buffers are sized (and their pages touched) now, before any restore connects:
    // faulting in 2 MiB of fresh memory inside AddTask cost the restore 6 ms here.
    max_stored_ = static_cast<uint32_t>(ZSTD_compressBound(img::kDefaultChunkPages * P));
    chunk_bytes_ = img::kDefaultChunkPages * P;
    for (ReadSlot& s : slots_) {
      LZ_TRY(EnsureSlot(s));
    }
    // The fill threads start now too, and wait for AllowFill: made when the tree starts
    // running, their creation and buffers held up the first faults by 3 ms.
    StartFillThreads();
    int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
      return FailErrno("eventfd");
    }
    fill_idle_.reset(efd);
    PollMulti(fill_idle_.get(), MakeTag(kTagFillIdle, 0));
    if (!opts_.trace_file.empty()) {
      trace_ = std::fopen(opts_.trace_file.c_str(), "we");
      if (trace_ == nullptr) {
        return FailErrno("open trace file", opts_.trace_file);
      }
    }
    PollOnce(listen_.get(), MakeTag(kTagListen, 0));
    if (remote_) {
      PollMulti(remote_->fd(), MakeTag(kTagRemote, remote_gen_));
    }
    start_ns_ = MonotonicNs();
    std::unique_lock<RwLock> lock(mu_);
    while (!Finished()) {
      io_uring_cqe* first = nullptr;
      __kernel_timespec ts{};
      bool timed = NextTimer(&ts);
      if (ReadAheadWaiting() || WorkingSetLeft()) {
        ts = {};       // only look for new events, then copy the next chunk read ahead, or install
        timed = true;  // the next pieces of the working set
      } else if ((!deferred_.empty() || ResolvingForkedPids()) &&
                 (!timed || ts.tv_sec > 0 || ts.tv_nsec > kDeferredPollNs)) {
        // Also while a child forked a moment ago is not known by pid: it shows up in /proc
        // soon after its fork event, and a quiet tree would not wake the loop to look.
        // A copy refused with EAGAIN (the tree is changing its address space) is tried again
        // soon: no completion may come to wake the loop for it.
        ts = {0, kDeferredPollNs};
        timed = true;
      }
      lock.unlock();
      r = io_uring_submit_and_wait_timeout(&ring_, &first, 1, timed ? &ts : nullptr, nullptr);
      lock.lock();
      if (r < 0 && r != -EINTR && r != -ETIME) {
        return Fail(-r, "io_uring_submit_and_wait");
      }
      io_uring_cqe* cqe;
      unsigned head;
      unsigned n = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        Dispatch(cqe->user_data, cqe->res, cqe->flags);
        n++;
      }
      io_uring_cq_advance(&ring_, n);
      if (fatal_) {
        return Unexpected{*fatal_};
      }
      if (ResolvingForkedPids()) {
        ResolveForkedPids();
      }
      DrainReadAhead();
      InstallWorkingSetStep();
      if (recording_ && record_until_ns_ != 0 && MonotonicNs() >= record_until_ns_) {
        StopRecording(std::to_string(opts_.record_seconds) + " s passed");
      }
      RetryDeferred();
      FillBackground();
      if (remote_) {
        Status sent = remote_->Flush();  // this turn's background reads, in one send
        if (!sent) {
          Reconnect(sent.error());
        }
      }
    }
    return Ok();
  }

  std::string SocketPath() const { return opts_.dir + "/" + kLazySocketName; }

  Status Listen() {
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      return FailErrno("socket");
    }
    listen_.reset(fd);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = SocketPath();
    if (path.size() >= sizeof addr.sun_path) {
      return Invalid("socket path too long: " + path);
    }
    std::strcpy(addr.sun_path, path.c_str());
    ::unlink(path.c_str());
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return FailErrno("bind", path);
    }
    if (::listen(fd, 4) != 0) {
      return FailErrno("listen", path);
    }
    LZ_INFO("lazy-pages: waiting for restore on %s", path.c_str());
    return Ok();
  }

  io_uring_sqe* Sqe() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      io_uring_submit(&ring_);
      sqe = io_uring_get_sqe(&ring_);
    }
    return sqe;
  }

  void PollOnce(int fd, uint64_t tag) {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_poll_add(sqe, fd, POLLIN);
    io_uring_sqe_set_data64(sqe, tag);
  }

  void PollMulti(int fd, uint64_t tag) {
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_poll_multishot(sqe, fd, POLLIN);
    io_uring_sqe_set_data64(sqe, tag);
  }

  void Dispatch(uint64_t data, int res, unsigned flags) {
    uint64_t idx = TagIndex(data);
    LZ_LOG(kTrace, "lazy-pages: cqe kind %lu index %lu res %d flags %u", data >> 56, idx, res,
           flags);
    switch (TagKind(data)) {
      case kTagListen:
        OnListenReadable();
        break;
      case kTagControlOut:
        reply_poll_armed_ = false;
        FlushReplies();
        break;
      case kTagControl:
        OnControlReadable(res);
        if (!(flags & IORING_CQE_F_MORE) && control_.valid()) {
          PollMulti(control_.get(), MakeTag(kTagControl, 0));
        }
        break;
      case kTagUffd: {
        Target& t = *targets_[idx];
        if (res < 0 || (res & (POLLERR | POLLHUP))) {
          t.gone = true;
        } else {
          OnUffdReadable(t);
        }
        if (!(flags & IORING_CQE_F_MORE) && !t.gone) {
          PollMulti(t.uffd.get(), MakeTag(kTagUffd, idx));
        }
        break;
      }
      case kTagRead: {
        ReadSlot& s = slots_[idx];
        if (s.for_fault || !s.waiters.empty()) {
          OnReadDone(s, res, s.buf.span());
        } else {
          // Read ahead: copying it in costs ~15 us a page here, which a fault arriving
          // meanwhile must not wait behind. It is copied when no fault waits (DrainReadAhead).
          s.done = true;
          s.done_res = res;
          ahead_done_.push_back(idx);
        }
        break;
      }
      case kTagRemote:
        if (idx == remote_gen_) {
          OnRemoteReadable(flags);
        }
        break;
      case kTagPrefetch:
        OnPrefetchReady();
        break;
      case kTagSignal: {
        signalfd_siginfo si;
        while (::read(signal_fd_.get(), &si, sizeof si) == sizeof si) {
        }
        if (recording_) {
          StopRecording("SIGUSR1");
        }
        if (!(flags & IORING_CQE_F_MORE)) {
          PollMulti(signal_fd_.get(), MakeTag(kTagSignal, 0));
        }
        break;
      }
      case kTagFillIdle: {
        uint64_t n;
        (void)!::read(fill_idle_.get(), &n, sizeof n);  // only a wake-up: Finished() decides
        if (!(flags & IORING_CQE_F_MORE)) {
          PollMulti(fill_idle_.get(), MakeTag(kTagFillIdle, 0));
        }
        break;
      }
    }
  }

  void OnListenReadable() {
    int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      PollOnce(listen_.get(), MakeTag(kTagListen, 0));
      return;
    }
    if (control_.valid()) {
      ::close(fd);  // one restore at a time
    } else {
      control_.reset(fd);
      PollMulti(fd, MakeTag(kTagControl, 0));
    }
    PollOnce(listen_.get(), MakeTag(kTagListen, 0));
  }

  // Replies never wait for room on the socket: a daemon blocked there while the restore is
  // blocked sending it the next task would hang both. Those that do not fit wait in
  // replies_, sent as soon as the socket has room (kTagControlOut); none is dropped.
  void Reply(uint32_t type, int32_t pid) {
    replies_.push_back(LazyMsg{kLazyMagic, kLazyVersion, type, pid});
    FlushReplies();
  }

  void FlushReplies() {
    while (!replies_.empty() && control_.valid()) {
      ssize_t n =
          ::send(control_.get(), &replies_.front(), sizeof(LazyMsg), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n == static_cast<ssize_t>(sizeof(LazyMsg))) {
        replies_.pop_front();
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!reply_poll_armed_) {
          reply_poll_armed_ = true;
          io_uring_sqe* sqe = Sqe();
          io_uring_prep_poll_add(sqe, control_.get(), POLLOUT);
          io_uring_sqe_set_data64(sqe, MakeTag(kTagControlOut, 0));
        }
        return;
      }
      LZ_WARN("lazy-pages: cannot answer the restore: %s", std::strerror(errno));
      replies_.clear();  // it went away; OnControlReadable notices
      return;
    }
  }

  void OnControlReadable(int res) {
    (void)res;
    for (;;) {
      LazyMsg m{};
      int fd = -1;
      ssize_t n = RecvWithFd(control_.get(), &m, sizeof m, &fd, MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
      }
      if (n <= 0) {
        control_.reset();
        if (!all_sent_) {
          fatal_ = Error{0, "restore went away before handing over every task", ""};
        }
        return;
      }
      UniqueFd uffd(fd);
      if (n != sizeof m || m.magic != kLazyMagic || m.version != kLazyVersion) {
        fatal_ = Error{0, "malformed message on the lazy-pages socket", ""};
        return;
      }
      if (m.type == kLazyAllSent) {
        all_sent_ = true;
        if (opts_.fill_delay_ms > 0) {
          fill_at_ns_ = MonotonicNs() + uint64_t(opts_.fill_delay_ms) * 1000000;
        }
        Reply(kLazyAck, m.pid);
        continue;
      }
      if (m.type != kLazyTask || !uffd.valid()) {
        fatal_ = Error{0, "unexpected message on the lazy-pages socket", ""};
        return;
      }
      Status st = AddTask(m.pid, std::move(uffd));
      if (!st) {
        Reply(kLazyError, m.pid);
        fatal_ = st.error();
        return;
      }
      Reply(kLazyAck, m.pid);
    }
  }

  // A task's pagemap and page store, and the pages it will miss.
  struct Loaded {
    std::shared_ptr<TaskSource> source;
    RangeSet pending;
  };

  Result<Loaded> LoadTask(pid_t pid, std::unique_ptr<img::PageStoreReader> remote_store) {
    LZ_LOG(kTrace, "lazy-pages: loading the images of pid %d", pid);
    Loaded out;
    auto src = std::make_shared<TaskSource>();
    src->pid = pid;
    LZ_ASSIGN_OR_RETURN(src->pagemap, img::ReadPagemap(img::PagemapPath(opts_.dir, pid)));
    if (remote_store != nullptr) {
      src->store = std::move(remote_store);
    } else {
      LZ_ASSIGN_OR_RETURN(src->store,
                          img::PageStoreReader::Open(opts_.dir + "/" + src->pagemap.pages_file));
    }
    if (src->store->total_pages() != src->pagemap.pagemap.stored_pages() ||
        src->store->chunk_pages() != src->pagemap.chunk_pages) {
      return Invalid(src->pagemap.pages_file + " does not match its pagemap");
    }
    for (const img::PageRun& r : src->pagemap.pagemap.runs()) {
      if (r.present() && (r.flags & img::kPageLazy)) {
        out.pending.Add(r.vaddr, r.end());
      }
    }
    out.source = std::move(src);
    return out;
  }

  // Loads every task of the dump on a thread of its own while the restore forks the tree, so
  // that handing a task over costs the restore no reading (local page stores only).
  void StartPreload() {
    if (remote_) {
      return;
    }
    preload_ = std::thread([this] {
      for (pid_t pid : pids_) {
        auto t = LoadTask(pid, nullptr);
        if (t) {  // a zombie has no pagemap; an error comes back when the task is handed over
          preloaded_.emplace(pid, std::move(*t));
        }
      }
    });
  }

  Result<Loaded> TakeTask(pid_t pid) {
    if (preload_.joinable()) {
      preload_.join();
    }
    auto it = preloaded_.find(pid);
    if (it != preloaded_.end()) {
      Loaded out = std::move(it->second);
      preloaded_.erase(it);
      return out;
    }
    std::unique_ptr<img::PageStoreReader> remote_store;
    if (remote_) {
      auto r = remote_images_.stores.find(pid);
      if (r == remote_images_.stores.end() || r->second == nullptr) {
        return Invalid("lazy-pages", "pid " + std::to_string(pid) + " is not in the dump");
      }
      remote_store = std::move(r->second);
    }
    return LoadTask(pid, std::move(remote_store));
  }

  Status AddTask(pid_t pid, UniqueFd uffd) {
    LZ_ASSIGN_OR_RETURN(Loaded loaded, TakeTask(pid));
    std::shared_ptr<TaskSource> src = std::move(loaded.source);
    max_stored_ = std::max(max_stored_, src->store->max_stored_size());
    chunk_bytes_ = std::max<size_t>(chunk_bytes_, size_t{src->store->chunk_pages()} * P);
    for (ReadSlot& s : slots_) {
      if (!s.busy) {
        LZ_TRY(EnsureSlot(s));
      }
    }
    RangeSet pending = std::move(loaded.pending);
    if (first_task_ns_ == 0) {
      first_task_ns_ = MonotonicNs();
    }
    LZ_TRY(guard_.Add(pid, uffd.get()));
    AddTarget(pid, std::move(uffd), src, std::move(pending));
    LZ_INFO("lazy-pages: serving pid %d", pid);
    if (prefetch_ != nullptr && !prefetch_pending_) {
      // Checked, read and usable (OnPrefetchReady): installed from the next turns on, after the
      // ack, so that the restore never waits for it.
      targets_.back()->ws_left = prefetch_->Of(pid);
    }
    return Ok();
  }

  void AddTarget(pid_t pid, UniqueFd uffd, std::shared_ptr<const TaskSource> src,
                 RangeSet pending) {
    auto t = std::make_unique<Target>();
    t->id = static_cast<int>(targets_.size());
    t->pid = pid;
    t->uffd = std::move(uffd);
    t->source = std::move(src);
    t->pending = std::move(pending);
    PollMulti(t->uffd.get(), MakeTag(kTagUffd, t->id));
    targets_.push_back(std::move(t));
    fill_cursor_.push_back(0);
    WakeIdleFillThreads();  // a forked child brings pages to fill
  }

  // Reads every queued uffd event of `t`. Events that change the address space (remove,
  // unmap, remap) are applied in order with the faults, as the kernel queued them.
  void OnUffdReadable(Target& t) {
    uffd_msg msgs[kMaxMsgs];
    for (;;) {
      ssize_t n = ::read(t.uffd.get(), msgs, sizeof msgs);
      if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) {
          t.gone = true;
        }
        return;
      }
      if (n == 0 || n % sizeof(uffd_msg) != 0) {
        t.gone = true;
        return;
      }
      // The kernel hands out queued faults before events, and reading an event lets the task
      // that caused it go on: a fault read with a DONTNEED, an unmap, a remap or a fork must be
      // served with what the events say (no old data in dropped pages; a child that still
      // misses the faulted page), so the events of a read go first.
      size_t count = static_cast<size_t>(n) / sizeof(uffd_msg);
      for (size_t i = 0; i < count; i++) {
        if (msgs[i].event != UFFD_EVENT_PAGEFAULT) {
          HandleEvent(t, msgs[i]);
        }
      }
      for (size_t i = 0; i < count; i++) {
        if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
          HandleEvent(t, msgs[i]);
        }
      }
    }
  }

  void HandleEvent(Target& t, const uffd_msg& m) {
    switch (m.event) {
      case UFFD_EVENT_PAGEFAULT:
        if (t.pid == 0 || t.pid_guessed) {
          pid_t tgid = TgidOf(static_cast<pid_t>(m.arg.pagefault.feat.ptid));
          LearnPid(t, MemoryOwner(tgid), /*guessed=*/false);
        }
        HandleFault(t.id, m.arg.pagefault.address & ~(P - 1), MonotonicNs());
        break;
      case UFFD_EVENT_FORK:
        OnFork(t, static_cast<int>(m.arg.fork.ufd));
        break;
      case UFFD_EVENT_REMAP:
        t.pending.Remap(m.arg.remap.from, m.arg.remap.to, m.arg.remap.len);
        break;
      case UFFD_EVENT_REMOVE:
      case UFFD_EVENT_UNMAP:
        t.pending.RemoveLive(m.arg.remove.start, m.arg.remove.end);
        break;
      default:
        LZ_WARN("lazy-pages: pid %d: unknown uffd event %u", t.pid, m.event);
    }
  }

  // The fork event does not say the child's pid: it is learnt from the child's first fault
  // (UFFD_FEATURE_THREAD_ID: certain) or guessed from its parent's children in /proc
  // (ResolveForkedPids), where it is usually listed by the time the event is read.
  void OnFork(Target& parent, int ufd) {
    UniqueFd uffd(ufd);
    if (!guard_.Add(0, uffd.get())) {
      LZ_WARN("lazy-pages: guard did not take the uffd of a child of %d", parent.pid);
    }
    // The child's memory is a copy of its parent's: it misses the same pages, except where
    // the parent's VMAs are not copied (MADV_DONTFORK) or come empty (MADV_WIPEONFORK). A
    // parent forked since the restore may not be known by pid yet: by now it is listed.
    if (parent.pid == 0) {
      ResolveForkedPids();
    }
    RangeSet pending = parent.pending;
    DropUncopiedRanges(parent.pid, pending);
    AddTarget(0, std::move(uffd), parent.source, std::move(pending));
    targets_.back()->parent_pid = parent.pid;
    targets_.back()->parent_id = parent.id;
    resolve_until_ns_ = MonotonicNs() + 1'000'000'000;
    targets_.back()->ws_left = parent.ws_left;  // and the same working set still to install
    targets_.back()->ws_done = parent.ws_done;
    LZ_INFO("lazy-pages: pid %d forked a child", parent.pid);
    ResolveForkedPids();  // usually listed by the time its fork event is read
  }

  // Read as the fork event is: the parent, let go by that read, could change its VMAs since
  // the fork only in the moment this takes.
  static void DropUncopiedRanges(pid_t parent, RangeSet& pending) {
    if (parent <= 0 || pending.empty()) {
      return;
    }
    auto vmas = ReadSmaps(parent);
    if (!vmas) {
      LZ_WARN("lazy-pages: VMAs of pid %d not read at its fork: %s", parent,
              vmas.error().Message().c_str());
      return;
    }
    for (const ProcVma& v : *vmas) {
      if (v.HasFlag("dc") || v.HasFlag("wf")) {
        pending.RemoveLive(v.start, v.end);
      }
    }
  }

  static pid_t TgidOf(pid_t tid) {
    auto text = ReadFileToString("/proc/" + std::to_string(tid) + "/status");
    if (!text) {
      return 0;
    }
    for (std::string_view line : SplitString(*text, '\n')) {
      int64_t v;
      if (line.rfind("Tgid:", 0) == 0 && ParseI64(TrimSpace(line.substr(5)), &v)) {
        return static_cast<pid_t>(v);
      }
    }
    return 0;
  }

  // A pid from a fault (the faulting thread's process: certain) or guessed from /proc. The
  // guard hears only certain ones: until then, if the daemon dies, it kills every descendant
  // of the tasks it knows.
  void LearnPid(Target& t, pid_t pid, bool guessed) {
    if (pid <= 0 || (t.pid != 0 && !t.pid_guessed) || (guessed && t.pid != 0)) {
      return;
    }
    if (t.pid != 0 && t.pid != pid) {
      LZ_WARN("lazy-pages: a forked child taken for pid %d is pid %d", t.pid, pid);
    }
    t.pid = pid;
    t.pid_guessed = guessed;
    if (!guessed) {
      // Another child guessed to be this one is not: it is unknown again.
      for (auto& o : targets_) {
        if (o.get() != &t && o->pid == pid && o->pid_guessed) {
          o->pid = 0;
          o->pid_guessed = false;
        }
      }
    }
    if (!guard_.Add(pid, -1, guessed)) {
      LZ_WARN("lazy-pages: could not tell the guard about pid %d", pid);
    }
    LZ_INFO("lazy-pages: serving forked child %d%s", pid, guessed ? " (from /proc)" : "");
  }

  // A forked child inherits its parent's userfaultfd ranges (VmFlags "um"); a child that
  // exec'd (posix_spawn) or shares its parent's memory (vfork) is no fork of a lazy task.
  static bool HasUffdRanges(pid_t pid) {
    auto vmas = ReadSmaps(pid);
    return vmas && std::any_of(vmas->begin(), vmas->end(),
                               [](const ProcVma& v) { return v.HasFlag("um"); });
  }

  // The process whose memory `pid` runs in: itself, or the parent of a vfork()ed child that
  // has not exec'd yet (its faults come on its parent's uffd).
  static pid_t MemoryOwner(pid_t pid) {
    for (int up = 0; up < 4 && pid > 1; up++) {
      auto text = ReadFileToString("/proc/" + std::to_string(pid) + "/stat");
      auto st = text ? ParseStat(*text) : Result<ProcStat>(Unexpected{text.error()});
      if (!st || st->ppid <= 1 || !SharesMemoryWith(pid, st->ppid)) {
        break;
      }
      pid = st->ppid;
    }
    return pid;
  }

  // A vfork()ed child, before it execs, is its parent's memory, not a copy of it.
  static bool SharesMemoryWith(pid_t a, pid_t b) {
    return ::syscall(SYS_kcmp, a, b, KCMP_VM, 0, 0) == 0;
  }

  static bool IsZombie(pid_t pid) {
    char state = StateIn("/proc/" + std::to_string(pid) + "/stat");
    return state == 'Z' || state == '?';  // '?': gone, no candidate either
  }

  // A forked child not known by pid, still there.
  bool AnyUnknownChild() const {
    return std::any_of(targets_.begin(), targets_.end(),
                       [](const std::unique_ptr<Target>& t) { return t->pid == 0 && !t->gone; });
  }

  // Looking in /proc costs a few reads per candidate (its smaps among them): done for a second
  // after each fork, not for the rest of a run that has a child never found.
  bool ResolvingForkedPids() const {
    return MonotonicNs() < resolve_until_ns_ && AnyUnknownChild();
  }

  void ResolveForkedPids() {
    // The newest first: a child just forked is the newest entry of its parent's children, and
    // an older target still unknown must not take it.
    for (auto it = targets_.rbegin(); it != targets_.rend(); ++it) {
      Target* t = it->get();
      if (t->pid != 0 || t->gone) {
        continue;
      }
      if (t->parent_id >= 0 && targets_[t->parent_id]->pid > 0) {
        t->parent_pid = targets_[t->parent_id]->pid;  // known since, or corrected since
      }
      std::vector<pid_t> children = ChildrenOf(t->parent_pid);
      for (auto k_it = children.rbegin(); k_it != children.rend(); ++k_it) {
        pid_t k = *k_it;
        auto is_k = [k](const std::unique_ptr<Target>& o) { return o->pid == k; };
        if (std::any_of(targets_.begin(), targets_.end(), is_k) || IsZombie(k) ||
            SharesMemoryWith(k, t->parent_pid) || !HasUffdRanges(k)) {
          continue;
        }
        LearnPid(*t, k, /*guessed=*/true);
        break;
      }
    }
  }

  void Trace(const Target& t, uint64_t addr, uint64_t now) {
    if (trace_ != nullptr) {
      std::fprintf(trace_, "%lu %d %#lx\n", now - start_ns_, t.pid, addr);
    }
  }

  // A page the dump did not store (zero, never touched, or dropped since): the zero page.
  void ServeZero(Target& t, uint64_t addr, uint64_t since) {
    int err = 0;
    CopyOutcome o = UffdZero(t.uffd.get(), addr, P, &err);
    if (o == CopyOutcome::kCopied) {
      pages_zero_++;
    } else if (o == CopyOutcome::kAlreadyMapped) {
      UffdWake(t.uffd.get(), addr, P);
    } else if (o == CopyOutcome::kRetry && err == ENOENT) {
      // No VMA there any more (unmapped, or never in this task): nothing to put in place; woken,
      // the thread faults again as the kernel sees fit.
      UffdWake(t.uffd.get(), addr, P);
      return;
    } else if (o == CopyOutcome::kRetry) {
      deferred_.push_back({t.id, addr, since});
      return;
    } else if (o == CopyOutcome::kTargetGone) {
      t.gone = true;
      return;
    } else {
      Fatal(Error{err, "UFFDIO_ZEROPAGE", "pid " + std::to_string(t.pid)});
      return;
    }
    latencies_.push_back(MonotonicNs() - since);
  }

  void HandleFault(int target, uint64_t addr, uint64_t since) {
    Target& t = *targets_[target];
    if (t.gone) {
      return;
    }
    Trace(t, addr, since);
    LZ_LOG(kTrace, "lazy-pages: pid %d fault at %#lx", t.pid, addr);
    std::optional<uint64_t> image = t.pending.ImageOf(addr);
    if (!image) {
      if (recording_) {
        recorder_.Note(t.source->pid, addr, /*zero=*/true);  // installed as the zero page next time
      }
      ServeZero(t, addr, since);
      return;
    }
    uint64_t chunk = ChunkOfImage(*t.source, *image);
    if (recording_) {
      recorder_.Note(t.source->pid, *image, /*zero=*/false);
    }
    if (prefetch_pending_) {
      // The working set is being checked and read: the page may be in it, and is then read
      // once, there. It is ready long before the tree runs, unless the disk is very slow.
      prefetch_waiters_.push_back({target, addr, since});
      return;
    }
    if (!t.ws_left.empty() && CopyFromWorkingSet(t, *image, since)) {
      return;
    }
    if (ReadSlot* reading = SlotReading(t.source, chunk)) {
      reading->for_fault = true;
      reading->waiters.push_back({target, addr, since});
      if (reading->done) {  // read ahead, already here
        CopyReadAhead(*reading);
      }
      return;
    }
    ReadSlot* slot = FreeSlot();
    if (slot == nullptr) {
      deferred_.push_back({target, addr, since});
      return;
    }
    IssueRead(*slot, t.source, chunk, true);
    slot->waiters.push_back({target, addr, since});
    ReadAhead(t, chunk);
  }

  // Memory is mostly touched in address order: a fault in chunk k is likely followed by
  // faults in the next chunks, which cost a round trip each. Fetch them now, using only slots
  // the background fill would use anyway. Six chunks ahead took a sequential scan of 256 MiB
  // with the fill held back from 3074 faults and 1.07 s to 468 faults and 0.58 s (two: 0.82 s).
  void ReadAhead(Target& t, uint64_t chunk) {
    constexpr uint64_t kAhead = 6;
    if (recording_) {
      return;  // a chunk read ahead would never fault, and so never be recorded
    }
    for (uint64_t k = chunk + 1; k <= chunk + kAhead && k < t.source->store->chunk_count(); k++) {
      if (BusySlots() + kFaultReserve >= kSlots || SlotReading(t.source, k) != nullptr) {
        continue;
      }
      std::optional<uint64_t> image = FirstImageOfChunk(*t.source, k);
      if (!image) {
        return;
      }
      if (t.pending.ContainsImage(*image)) {
        IssueRead(*FreeSlot(), t.source, k, false);
      }
    }
  }

  Status EnsureSlot(ReadSlot& s) {
    LZ_TRY(s.buf.Ensure(max_stored_));
    return s.decoded.Ensure(chunk_bytes_);
  }

  // The read slot fetching `chunk` of `src`, if one is.
  ReadSlot* SlotReading(const std::shared_ptr<const TaskSource>& src, uint64_t chunk) {
    for (ReadSlot& s : slots_) {
      if (s.busy && s.source == src && s.chunk == chunk) {
        return &s;
      }
    }
    return nullptr;
  }

  ReadSlot* FreeSlot() {
    for (ReadSlot& s : slots_) {
      if (!s.busy) {
        return &s;
      }
    }
    return nullptr;
  }

  size_t BusySlots() const {
    return static_cast<size_t>(
        std::count_if(slots_.begin(), slots_.end(), [](const ReadSlot& s) { return s.busy; }));
  }

  void IssueRead(ReadSlot& s, const std::shared_ptr<const TaskSource>& src, uint64_t chunk,
                 bool for_fault) {
    const img::ChunkIndexEntry& e = src->store->chunk(chunk);
    // Grows only when a task with larger chunks arrived while this slot was busy.
    if (Status grown = EnsureSlot(s); !grown) {
      Fatal(grown.error());
      return;
    }
    s.busy = true;
    s.done = false;
    s.source = src;
    s.chunk = chunk;
    s.for_fault = for_fault;
    s.waiters.clear();
    chunks_read_++;
    if (remote_) {
      SendRemoteRead(s);
      return;
    }
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_read(sqe, src->store->fd(), s.buf.data(), e.stored_size, e.offset);
    io_uring_sqe_set_data64(sqe, MakeTag(kTagRead, static_cast<uint64_t>(&s - slots_.data())));
    if (for_fault) {
      io_uring_submit(&ring_);  // no batching delay on the fault path
    }
  }

  // --page-server: a chunk read is a request on the connection (id = read slot); the answer
  // arrives through OnRemoteReadable. A send that fails is taken care of by the reconnection.
  void SendRemoteRead(const ReadSlot& s) {
    const img::ChunkIndexEntry& e = s.source->store->chunk(s.chunk);
    uint32_t id = static_cast<uint32_t>(&s - slots_.data());
    Status st = remote_->SendRead(id, s.source->pid, e.offset, e.stored_size, s.for_fault);
    if (!st) {
      LZ_WARN("lazy-pages: %s", st.error().Message().c_str());
    }
  }

  void OnRemoteReadable(unsigned flags) {
    Status st = remote_->Receive([this](uint32_t id, int status, std::span<const std::byte> data) {
      if (id >= slots_.size() || !slots_[id].busy) {
        return;  // an answer to a request sent again after a reconnection
      }
      ReadSlot& s = slots_[id];
      if (status != 0) {
        Fatal(
            Error{status, remote_->where(),
                  "chunk " + std::to_string(s.chunk) + " of pid " + std::to_string(s.source->pid)});
        return;
      }
      OnReadDone(s, static_cast<int>(data.size()), data);  // decoded where it was received
    });
    if (!st) {
      Reconnect(st.error());
      return;
    }
    if (!(flags & IORING_CQE_F_MORE)) {
      PollMulti(remote_->fd(), MakeTag(kTagRemote, remote_gen_));
    }
  }

  // The page server went away: try again with growing pauses for a bounded time, then give
  // up the way a failed read does (the tasks are killed). Reads in flight are asked again.
  void Reconnect(const Error& why) {
    LZ_WARN("lazy-pages: %s; reconnecting", why.Message().c_str());
    io_uring_sqe* sqe = Sqe();
    io_uring_prep_poll_remove(sqe, MakeTag(kTagRemote, remote_gen_));
    io_uring_sqe_set_data64(sqe, 0);
    io_uring_submit(&ring_);
    remote_gen_++;
    uint64_t give_up = MonotonicNs() + kReconnectWindowNs;
    uint64_t pause_ms = 50;
    Error last = why;
    while (MonotonicNs() < give_up) {
      ::usleep(static_cast<useconds_t>(pause_ms * 1000));
      pause_ms = std::min<uint64_t>(pause_ms * 2, 1000);
      auto c =
          PageServerClient::Connect(opts_.ps_address, opts_.ps_port, ps::kRoleRead, opts_.ps_token);
      if (!c) {
        last = c.error();
        continue;
      }
      remote_ = std::move(*c);
      PollMulti(remote_->fd(), MakeTag(kTagRemote, remote_gen_));
      for (ReadSlot& s : slots_) {
        if (s.busy) {
          SendRemoteRead(s);
        }
      }
      if (Status sent = remote_->Flush(); !sent) {
        LZ_WARN("lazy-pages: %s", sent.error().Message().c_str());
      }
      LZ_INFO("lazy-pages: reconnected to %s", remote_->where().c_str());
      return;
    }
    Fatal(last.Wrap("page server lost for " + std::to_string(kReconnectWindowNs / 1000000000) +
                    " s"));
  }

  // The read of `s` returned `res` (bytes, or -errno) into `stored`: the slot's buffer, or the
  // page-server client's receive buffer.
  void OnReadDone(ReadSlot& s, int res, std::span<const std::byte> stored) {
    const img::ChunkIndexEntry& e = s.source->store->chunk(s.chunk);
    if (res != static_cast<int>(e.stored_size)) {
      Fatal(Error{res < 0 ? -res : EIO, "read " + s.source->store->path(),
                  "chunk " + std::to_string(s.chunk)});
      return;
    }
    Status st = s.source->store->DecodeChunk(s.chunk, stored.first(e.stored_size), s.decoded.span(),
                                             dctx_.get());
    if (!st) {
      Fatal(st.error());
      return;
    }
    FinishChunk(s);
  }

  // The chunk of `s` is decoded: copy it into every task that shares its pages, then settle
  // the faults that waited for it.
  void FinishChunk(ReadSlot& s) {
    const img::ChunkIndexEntry& e = s.source->store->chunk(s.chunk);
    for (auto& t : targets_) {
      if (recording_) {
        break;  // only the pages that faulted (below): every page touched must fault once
      }
      if (!t->gone && t->source == s.source) {
        CopyChunk(*t, s.chunk, e.nr_pages, s.decoded.span(),
                  s.for_fault ? &pages_by_fault_ : &pages_by_fill_);
      }
    }
    for (const Waiter& w : s.waiters) {
      if (recording_ && !targets_[w.target]->gone) {
        CopyFaultedPage(*targets_[w.target], w.addr, s);
      }
    }
    s.busy = false;
    std::vector<Waiter> waiters;
    waiters.swap(s.waiters);
    s.waiters.swap(spare_waiters_);
    for (const Waiter& w : waiters) {
      Target& t = *targets_[w.target];
      if (t.gone) {
        continue;
      }
      if (t.pending.ImageOf(w.addr)) {
        HandleFault(w.target, w.addr, w.since_ns);  // the copy had to be retried
      } else {
        UffdWake(t.uffd.get(), w.addr, P);
        latencies_.push_back(MonotonicNs() - w.since_ns);
      }
    }
    waiters.clear();
    spare_waiters_.swap(waiters);
    WakeIdleFillThreads();
  }

  // Work for idle fill threads may have appeared: a slot is free again (the fill threads
  // skipped its chunk, and a copy of it the kernel asked to retry left pages behind that only
  // they come back for), or a forked child brings pages to fill.
  void WakeIdleFillThreads() {
    if (fill_threads_.empty() || !fill_allowed_by_loop_) {
      return;  // until AllowFill they wait anyway, and AllowFill wakes them
    }
    std::lock_guard<std::mutex> f(fill_mu_);
    if (fill_waiting_ > 0 && fill_allowed_) {
      fill_cv_.notify_all();
    }
  }

  // Copies the one page of chunk `s` that faulted at live address `live` in `t`, if it is still
  // missing.
  void CopyFaultedPage(Target& t, uint64_t live, const ReadSlot& s) {
    std::optional<uint64_t> image = t.pending.ImageOf(live);
    std::optional<uint64_t> stored =
        image ? t.source->pagemap.pagemap.StoredIndexOf(*image) : std::nullopt;
    if (!stored) {
      return;
    }
    uint64_t index = *stored;
    uint64_t first = s.chunk * s.source->store->chunk_pages();
    if (index < first || index >= first + s.source->store->chunk(s.chunk).nr_pages) {
      return;  // moved on to another chunk meanwhile: the fault is handled again
    }
    PendingRange page{*image, *image + P, static_cast<int64_t>(live - *image)};
    CopyPiece(t, page, s.decoded.data() + (index - first) * P, &pages_by_fault_, true);
  }

  // Copies every still-missing page of chunk `k` into `t` (on the loop), counting the pages in
  // `*pages`. Without `wake`, the caller wakes what waits on them.
  void CopyChunk(Target& t, uint64_t k, uint32_t nr_pages, std::span<const std::byte> decoded,
                 uint64_t* pages, bool wake = true) {
    loop_copies_.clear();  // keeps its capacity: no allocation once warm
    PlanCopies(t, k, nr_pages, decoded, &loop_copies_, &loop_pieces_);
    for (const PieceCopy& c : loop_copies_) {
      if (!CopyPiece(t, c.piece, c.src, pages, wake)) {
        return;
      }
    }
  }

  // Returns false when the target is gone or the daemon failed.
  bool CopyPiece(Target& t, const PendingRange& piece, const std::byte* src, uint64_t* pages,
                 bool wake) {
    uint64_t len = piece.image_end - piece.image_start;
    uint64_t off = 0;
    while (off < len) {
      uint64_t copied = 0;
      int err = 0;
      CopyOutcome o = UffdCopy(t.uffd.get(), piece.live_start() + off, src + off, len - off,
                               &copied, &err, wake);
      *pages += copied / P;
      switch (o) {
        case CopyOutcome::kCopied:
          off = len;
          break;
        case CopyOutcome::kAlreadyMapped:
          off += copied + P;  // that page is there already; go on after it
          break;
        case CopyOutcome::kRetry:
          t.pending.RemoveImage(piece.image_start, piece.image_start + off + copied);
          return true;  // the rest stays pending and comes around again
        case CopyOutcome::kTargetGone:
          t.gone = true;
          return false;
        case CopyOutcome::kError:
          Fatal(Error{err, "UFFDIO_COPY", "pid " + std::to_string(t.pid)});
          return false;
      }
    }
    t.pending.RemoveImage(piece.image_start, piece.image_end);
    return true;
  }

  void RetryDeferred() {
    size_t n = deferred_.size();
    while (n-- > 0 && FreeSlot() != nullptr) {
      Waiter w = deferred_.front();
      deferred_.pop_front();
      HandleFault(w.target, w.addr, w.since_ns);
    }
  }

  // Whether the background fill is held back by --fill-delay; `ts` gets the time left.
  bool FillWaiting(__kernel_timespec* ts) const {
    if (!all_sent_ || fill_at_ns_ == 0) {
      return false;
    }
    uint64_t now = MonotonicNs();
    if (now >= fill_at_ns_) {
      return false;
    }
    ts->tv_sec = static_cast<int64_t>((fill_at_ns_ - now) / 1000000000);
    ts->tv_nsec = static_cast<int64_t>((fill_at_ns_ - now) % 1000000000);
    return true;
  }

  // The next chunk the background fill should fetch, round robin over the tasks, skipping
  // chunks that are being fetched already. Advances that task's cursor past it.
  std::optional<FillPick> PickFillChunk() {
    // Every chunk skipped below is in a read slot or another fill thread's hands: with as many
    // attempts, the scan gets past them all to the work behind them.
    size_t attempts = targets_.size() * 2 + kSlots + fill_now_.size();
    while (attempts-- > 0) {
      Target& t = *targets_[fill_next_ % targets_.size()];
      uint64_t& cursor = fill_cursor_[t.id];
      std::optional<PendingRange> next = t.gone ? std::nullopt : t.pending.NextFrom(cursor);
      if (!next) {
        fill_next_++;
        continue;
      }
      uint64_t chunk = ChunkOfImage(*t.source, next->image_start);
      cursor = FirstImageOfChunk(*t.source, chunk + 1).value_or(0);  // next time, after it
      if (SlotReading(t.source, chunk) != nullptr || FilledNow(t.source, chunk)) {
        fill_next_++;
        continue;
      }
      return FillPick{t.source, chunk};
    }
    return std::nullopt;
  }

  bool FilledNow(const std::shared_ptr<const TaskSource>& src, uint64_t chunk) const {
    return std::any_of(fill_now_.begin(), fill_now_.end(),
                       [&](const FillPick& p) { return p.source == src && p.chunk == chunk; });
  }

  void FillBackground() {
    __kernel_timespec unused;
    if (!all_sent_ || FillWaiting(&unused) || recording_ || prefetch_pending_ || WorkingSetLeft()) {
      return;  // while recording, every page touched must fault; the prefetch reads its own
    }
    if (opts_.fill_threads > 0) {
      AllowFill();
      return;
    }
    while (BusySlots() + kFaultReserve < kSlots) {
      std::optional<FillPick> pick = PickFillChunk();
      if (!pick) {
        return;
      }
      IssueRead(*FreeSlot(), pick->source, pick->chunk, false);
    }
  }

  void StartFillThreads() {
    for (int i = 0; i < opts_.fill_threads; i++) {
      fill_threads_.emplace_back([this] { FillThread(); });
    }
  }

  // Called every turn of the loop once the fill may run: fill_mu_ is taken only the first
  // time, so that the loop never waits there for a fill thread planning or settling copies.
  void AllowFill() {
    if (fill_allowed_by_loop_) {
      return;
    }
    fill_allowed_by_loop_ = true;
    std::lock_guard<std::mutex> f(fill_mu_);
    fill_allowed_ = true;
    fill_cv_.notify_all();
  }

  void StopFillThreads() {
    {
      std::lock_guard<std::mutex> f(fill_mu_);
      stop_fill_ = true;
    }
    fill_cv_.notify_all();
    for (std::thread& th : fill_threads_) {
      th.join();
    }
    fill_threads_.clear();
  }

  // A background fill thread. It takes a few chunks (shared lock + fill_mu_), reads and
  // decodes them holding no lock, so both cores decode, then copies them in holding the lock
  // shared, so both cores copy too; fill_mu_ is taken only to read and update what is
  // missing. The lock is what keeps a copy from using a stale view of what is missing: the
  // loop holds it exclusively while it reads uffd events (a DONTNEED, an unmap, a remap) and
  // applies them, and while it serves faults. A copy that starts before the loop has read
  // such an event fails with EAGAIN (the kernel's mmap_changing) and is retried later.
  void FillThread() {
    // The fill reads and decodes on what the restored tasks leave of the CPU (SCHED_IDLE): on
    // two cores, a fill at normal priority delayed a restored service's first answer by
    // 10-50 ms.
    sched_param prio{};
    // Chunks are taken a few at a time: on this VM a contended lock hand-off costs as much as
    // decoding a chunk.
    constexpr size_t kBatch = 4;
    img::DCtxPtr dctx = img::NewDCtx();
    std::vector<std::byte> stored;
    std::vector<std::vector<std::byte>> decoded(kBatch);
    size_t need_stored = 0;
    size_t need_decoded = 0;
    std::vector<FillPick> batch;
    std::vector<PieceCopy> copies;
    std::vector<PendingRange> pieces;
    for (;;) {
      batch.clear();
      {
        std::shared_lock<RwLock> rd(mu_);
        std::unique_lock<std::mutex> f(fill_mu_);
        if (stop_fill_ || fatal_) {
          return;
        }
        need_stored = max_stored_;
        need_decoded = chunk_bytes_;
        if (!fill_allowed_) {
          rd.unlock();
          fill_waiting_++;
          fill_cv_.wait(f);
          fill_waiting_--;
          continue;
        }
        while (batch.size() < kBatch) {
          std::optional<FillPick> pick = PickFillChunk();
          if (!pick) {
            break;
          }
          batch.push_back(*pick);
          fill_now_.push_back(*pick);
        }
        if (batch.empty()) {
          uint64_t one = 1;
          (void)!::write(fill_idle_.get(), &one, sizeof one);  // the loop checks Finished()
          rd.unlock();
          fill_waiting_++;
          fill_cv_.wait(f);
          fill_waiting_--;
          continue;
        }
      }
      // Reading and decoding hold no lock: at idle priority. Whatever holds a lock the loop
      // waits for runs at normal priority, or a busy tree would starve it and its faults.
      pthread_setschedparam(pthread_self(), SCHED_IDLE, &prio);
      // Grown without a lock held (the pages are touched as they are zeroed), and only when a
      // task with larger chunks arrived.
      if (stored.size() < need_stored) {
        stored.resize(need_stored);
      }
      for (auto& d : decoded) {
        if (d.size() < need_decoded) {
          d.resize(need_decoded);
        }
      }
      Status st = Ok();
      for (size_t i = 0; i < batch.size() && st; i++) {
        st = batch[i].source->store->ReadChunk(batch[i].chunk, stored, decoded[i], dctx.get(),
                                               &batch[i].pages);
      }
      pthread_setschedparam(pthread_self(), SCHED_OTHER, &prio);
      if (!st) {
        std::shared_lock<RwLock> rd(mu_);
        std::lock_guard<std::mutex> f(fill_mu_);
        Fatal(st.error());
        uint64_t one = 1;
        (void)!::write(fill_idle_.get(), &one, sizeof one);
        return;
      }
      // One chunk at a time under the shared lock: between two, the loop (the lock prefers
      // writers) gets in to serve a fault instead of waiting for the whole batch's copies,
      // ~15 us a page here. Each chunk is planned afresh, after whatever events the loop
      // applied meanwhile.
      for (size_t i = 0; i < batch.size(); i++) {
        std::shared_lock<RwLock> rd(mu_);
        copies.clear();
        {
          std::lock_guard<std::mutex> f(fill_mu_);
          uint32_t nr = batch[i].pages;  // as decoded
          for (auto& t : targets_) {
            if (!t->gone && t->source == batch[i].source) {
              PlanCopies(*t, batch[i].chunk, nr, decoded[i], &copies, &pieces);
            }
          }
        }
        for (PieceCopy& c : copies) {
          RunCopy(c);
        }
        std::lock_guard<std::mutex> f(fill_mu_);
        for (const PieceCopy& c : copies) {
          SettleCopy(c);
        }
        std::erase_if(fill_now_, [&](const FillPick& p) {
          return p.source == batch[i].source && p.chunk == batch[i].chunk;
        });
      }
      std::lock_guard<std::mutex> f(fill_mu_);
      if (fill_waiting_ > 0) {
        fill_cv_.notify_all();  // an idle thread may find work left behind (a retried copy)
      }
    }
  }

  // The still-missing pieces of chunk `k` in `t`, with where their bytes are in `decoded`.
  // `pieces` is scratch space the caller keeps, so that no call allocates once it has grown.
  void PlanCopies(Target& t, uint64_t k, uint32_t nr_pages, std::span<const std::byte> decoded,
                  std::vector<PieceCopy>* out, std::vector<PendingRange>* pieces) {
    const img::Pagemap& pm = t.source->pagemap.pagemap;
    pieces->clear();
    uint64_t first = k * t.source->store->chunk_pages();
    uint64_t last = first + nr_pages;
    for (size_t ri = pm.FirstPresentRunFromIndex(first); ri < pm.runs().size(); ri++) {
      const img::PageRun& r = pm.runs()[ri];
      if (!r.present()) {
        continue;
      }
      if (r.page_index >= last) {
        break;
      }
      uint64_t s = std::max(first, r.page_index);
      uint64_t e = std::min(last, r.page_index + r.nr_pages);
      uint64_t img_s = r.vaddr + (s - r.page_index) * P;
      size_t from = pieces->size();
      t.pending.Intersect(img_s, img_s + (e - s) * P, pieces);
      for (size_t i = from; i < pieces->size(); i++) {
        const PendingRange& piece = (*pieces)[i];
        PieceCopy c;
        c.target = &t;
        c.piece = piece;
        c.src = decoded.data() + (s - first) * P + (piece.image_start - img_s);
        out->push_back(c);
      }
    }
  }

  // The ioctls of one piece; touches nothing shared.
  static void RunCopy(PieceCopy& c) {
    uint64_t len = c.piece.image_end - c.piece.image_start;
    int fd = c.target->uffd.get();
    while (c.done < len) {
      uint64_t copied = 0;
      c.outcome = UffdCopy(fd, c.piece.live_start() + c.done, c.src + c.done, len - c.done, &copied,
                           &c.err);
      c.pages += copied / P;
      if (c.outcome == CopyOutcome::kCopied) {
        c.done = len;
      } else if (c.outcome == CopyOutcome::kAlreadyMapped) {
        c.done += copied + P;  // that page is there already; go on after it
        c.outcome = CopyOutcome::kCopied;
      } else {
        c.done += copied;
        return;
      }
    }
  }

  // Under fill_mu_: what the copy changed in what is missing.
  void SettleCopy(const PieceCopy& c) {
    Target& t = *c.target;
    pages_by_fill_ += c.pages;
    switch (c.outcome) {
      case CopyOutcome::kCopied:
        t.pending.RemoveImage(c.piece.image_start, c.piece.image_end);
        break;
      case CopyOutcome::kRetry:  // the rest stays pending and comes around again
        t.pending.RemoveImage(c.piece.image_start, c.piece.image_start + c.done);
        break;
      case CopyOutcome::kTargetGone:
        t.gone = true;
        break;
      case CopyOutcome::kError:
      case CopyOutcome::kAlreadyMapped:
        Fatal(Error{c.err, "UFFDIO_COPY", "pid " + std::to_string(t.pid)});
        break;
    }
  }

  // The loop's wait ends at the earliest of --fill-delay and --record-seconds.
  bool NextTimer(__kernel_timespec* ts) const {
    bool fill = FillWaiting(ts);
    if (!recording_ || record_until_ns_ == 0) {
      return fill;
    }
    uint64_t now = MonotonicNs();
    uint64_t left = record_until_ns_ > now ? record_until_ns_ - now : 0;
    uint64_t fill_left = fill ? uint64_t(ts->tv_sec) * 1000000000 + uint64_t(ts->tv_nsec) : left;
    left = std::min(left, fill_left);
    ts->tv_sec = static_cast<int64_t>(left / 1000000000);
    ts->tv_nsec = static_cast<int64_t>(left % 1000000000);
    return true;
  }

  // --record-working-set: faults are noted from now on; otherwise a working set recorded on
  // these images starts loading now, while the restore builds the tree.
  Status StartWorkingSet() {
    if (opts_.record_working_set) {
      recording_ = true;
      record_start_ns_ = MonotonicNs();
      if (opts_.record_seconds > 0) {
        record_until_ns_ = record_start_ns_ + uint64_t(opts_.record_seconds) * 1000000000;
      }
      sigset_t usr1;
      sigemptyset(&usr1);
      sigaddset(&usr1, SIGUSR1);
      int fd = ::signalfd(-1, &usr1, SFD_CLOEXEC | SFD_NONBLOCK);
      if (fd < 0) {
        return FailErrno("signalfd");
      }
      signal_fd_.reset(fd);
      PollMulti(fd, MakeTag(kTagSignal, 0));
      LZ_INFO("lazy-pages: recording the working set until SIGUSR1%s",
              opts_.record_seconds > 0 ? " or the time limit" : "");
      return Ok();
    }
    if (!opts_.use_working_set || remote_) {
      return Ok();
    }
    int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd < 0) {
      return FailErrno("eventfd");
    }
    prefetch_done_.reset(fd);
    prefetch_ = WorkingSetPrefetch::Start(opts_.dir, dumped_at_, fd);
    prefetch_pending_ = prefetch_ != nullptr;
    if (prefetch_ != nullptr) {
      PollOnce(fd, MakeTag(kTagPrefetch, 0));
    }
    return Ok();
  }

  void StopRecording(const std::string& why) {
    recording_ = false;
    working_set_pages_ = recorder_.pages();
    uint64_t took = MonotonicNs() - record_start_ns_;
    for (auto& t : targets_) {
      if (t->pid > 0 && !t->gone) {
        Status files = recorder_.NoteMappedFiles(t->pid);
        if (!files) {
          LZ_WARN("lazy-pages: mapped files of pid %d not noted: %s", t->pid,
                  files.error().Message().c_str());
        }
      }
    }
    Status st =
        recorder_.Write(opts_.dir, dumped_at_, took, [this](pid_t pid) -> const TaskSource* {
          for (auto& t : targets_) {
            if (t->source->pid == pid) {
              return t->source.get();
            }
          }
          return nullptr;
        });
    if (!st) {
      LZ_WARN("lazy-pages: working set not saved: %s", st.error().Message().c_str());
    } else {
      LZ_INFO("lazy-pages: working set of %zu pages recorded in %lu ms (%s); filling the rest",
              recorder_.pages(), took / 1000000, why.c_str());
    }
  }

  // The working set is decoded: install it in every task there is, then settle the faults
  // that waited for it.
  void OnPrefetchReady() {
    if (prefetch_ == nullptr || !prefetch_->ready()) {
      return;
    }
    prefetch_pending_ = false;
    prefetch_ns_ = prefetch_->ready_ns();
    if (!prefetch_->status()) {
      LZ_WARN("lazy-pages: working set not used: %s",
              prefetch_->status().error().Message().c_str());
      prefetch_.reset();
    } else if (!prefetch_->usable()) {
      prefetch_.reset();  // made for other images; the warning said why
    } else {
      working_set_pages_ = prefetch_->pages();
      for (auto& t : targets_) {
        t->ws_left = prefetch_->Of(t->source->pid);
      }
      InstallWorkingSetStep();
      LZ_INFO("lazy-pages: working set of %lu pages (%lu KiB stored) ready in %lu us",
              prefetch_->pages(), prefetch_->bytes_read() / 1024, prefetch_ns_ / 1000);
    }
    std::vector<Waiter> waiters;
    waiters.swap(prefetch_waiters_);
    for (const Waiter& w : waiters) {
      HandleFault(w.target, w.addr, w.since_ns);  // in place now (or read the usual way)
    }
  }

  // Installs the next kWorkingSetStep pages of the working set, in the order the tree touched
  // them: the loop serves faults between steps (a fault on a page of the working set not
  // installed yet is copied from it at once, CopyFromWorkingSet). Without a wake per piece:
  // one wake per task for the span of the step.
  static constexpr uint64_t kWorkingSetStep = 128;

  void InstallWorkingSetStep() {
    uint64_t budget = kWorkingSetStep;
    for (auto& tp : targets_) {
      Target& t = *tp;
      uint64_t lo = UINT64_MAX, hi = 0;
      while (!t.ws_left.empty() && budget > 0 && !t.gone && !fatal_) {
        const WorkingSetRun& r = t.ws_left.front();
        uint64_t n = std::min<uint64_t>(budget, r.nr_pages - t.ws_done);
        if (r.zero) {
          n = r.nr_pages;
          InstallZeroRun(t, r);
        } else {
          uint64_t from = r.vaddr + t.ws_done * P;
          if (!CopyRunPart(t, r, from, from + n * P, /*wake=*/false, &lo, &hi)) {
            break;  // pages to retry once the task's events are read, or the task is gone
          }
        }
        budget -= std::min(budget, n);
        t.ws_done += static_cast<uint32_t>(n);
        if (t.ws_done >= r.nr_pages) {
          t.ws_left = t.ws_left.subspan(1);
          t.ws_done = 0;
        }
      }
      if (lo < hi && !t.gone) {
        UffdWake(t.uffd.get(), lo, hi - lo);
      }
      if (t.gone) {
        t.ws_left = {};
      }
    }
  }

  // Whether some task has working-set pages left to install.
  bool WorkingSetLeft() const {
    return std::any_of(targets_.begin(), targets_.end(),
                       [](const auto& t) { return !t->ws_left.empty(); });
  }

  // Copies the pending pages of dump-time range [from, to) of run `r` from the working set.
  // False when some are still pending (a copy to retry) or the task is gone.
  bool CopyRunPart(Target& t, const WorkingSetRun& r, uint64_t from, uint64_t to, bool wake,
                   uint64_t* lo, uint64_t* hi) {
    loop_pieces_.clear();
    t.pending.Intersect(from, to, &loop_pieces_);
    for (const PendingRange& piece : loop_pieces_) {
      const std::byte* src = r.pages.data() + (piece.image_start - r.vaddr);
      if (!CopyPiece(t, piece, src, &pages_by_prefetch_, wake)) {
        return false;
      }
      *lo = std::min(*lo, piece.live_start());
      *hi = std::max(*hi, piece.live_end());
    }
    loop_pieces_.clear();
    t.pending.Intersect(from, to, &loop_pieces_);
    return loop_pieces_.empty();
  }

  // A fault at dump-time address `image` of `t` while its working set is being installed: if
  // the page is in it, it and the pages after it in its run (up to a step) are copied from
  // there now (a read would be slower).
  bool CopyFromWorkingSet(Target& t, uint64_t image, uint64_t since) {
    for (const WorkingSetRun& r : t.ws_left) {
      uint64_t end = r.vaddr + uint64_t{r.nr_pages} * P;
      if (r.zero || image < r.vaddr || image >= end) {
        continue;
      }
      uint64_t from = image & ~uint64_t{P - 1};
      uint64_t lo = UINT64_MAX, hi = 0;
      (void)CopyRunPart(t, r, from, std::min(end, from + kWorkingSetStep * P), /*wake=*/true, &lo,
                        &hi);
      if (t.gone || t.pending.ContainsImage(image)) {
        return t.gone;  // a copy to retry: the usual way
      }
      latencies_.push_back(MonotonicNs() - since);
      return true;
    }
    return false;
  }

  // Pages the tree touched that the dump did not store: the zero page, as their fault would
  // have given them. One by one (a run may cross VMAs); a page that has data (the layout
  // differs) or that is gone is left to its fault.
  void InstallZeroRun(Target& t, const WorkingSetRun& r) {
    for (uint64_t a = r.vaddr; a < r.vaddr + uint64_t{r.nr_pages} * P && !t.gone; a += P) {
      if (t.pending.ImageOf(a)) {
        continue;
      }
      int err = 0;
      CopyOutcome o = UffdZero(t.uffd.get(), a, P, &err);
      if (o == CopyOutcome::kCopied) {
        pages_by_prefetch_++;
      } else if (o == CopyOutcome::kTargetGone) {
        t.gone = true;
      }
    }
  }

  // A chunk read ahead whose read has completed (ahead_done_): decoded and copied now.
  void CopyReadAhead(ReadSlot& s) {
    s.done = false;
    OnReadDone(s, s.done_res, s.buf.span());
  }

  // Whether a chunk read ahead waits to be copied while no fault waits for a read.
  bool ReadAheadWaiting() const {
    if (ahead_done_.empty()) {
      return false;
    }
    return std::none_of(slots_.begin(), slots_.end(),
                        [](const ReadSlot& s) { return s.busy && s.for_fault; });
  }

  // Copies one chunk read ahead, unless a fault waits for a read (its completion comes first);
  // a fault waiting for a free slot gets one this way too.
  void DrainReadAhead() {
    if (!ReadAheadWaiting() && deferred_.empty()) {
      return;
    }
    while (!ahead_done_.empty()) {
      ReadSlot& s = slots_[ahead_done_.front()];
      ahead_done_.pop_front();
      if (s.busy && s.done) {  // else a fault took it meanwhile, or it was used again
        CopyReadAhead(s);
        return;
      }
    }
  }

  static constexpr long kDeferredPollNs = 1'000'000;

  bool Finished() const {
    if (!all_sent_ || BusySlots() > 0 || !deferred_.empty() || !fill_now_.empty()) {
      return false;
    }
    return std::all_of(targets_.begin(), targets_.end(), [](const std::unique_ptr<Target>& t) {
      return t->gone || t->pending.empty();
    });
  }

  // A page cannot be delivered: the tasks must not run on without it.
  void Fatal(Error e) {
    if (fatal_) {
      return;
    }
    std::vector<pid_t> known;
    bool uncertain = false;
    for (auto& t : targets_) {
      if (t->gone) {
        continue;  // its pid may be another process's by now
      }
      if (t->pid > 0) {
        known.push_back(t->pid);
      }
      uncertain = uncertain || t->pid == 0 || t->pid_guessed;
    }
    // A child forked since the restore whose pid is not certain would run on with zeros for
    // its missing pages: every descendant goes too (children that exec'd as well).
    std::vector<pid_t> doomed = uncertain ? DescendantsOf(known) : std::vector<pid_t>();
    doomed.insert(doomed.end(), known.begin(), known.end());
    std::string pids;
    for (pid_t p : doomed) {
      ::kill(p, SIGKILL);
      pids += " " + std::to_string(p);
    }
    LZ_ERROR("lazy-pages: %s; killed restored tasks%s", e.Message().c_str(), pids.c_str());
    fatal_ = e.Wrap("lazy-pages (restored tasks killed)");
  }

  const LazyPagesOptions& opts_;
  uint64_t dumped_at_;       // the inventory's: a working set belongs to one dump
  std::vector<pid_t> pids_;  // every task of the dump
  std::thread preload_;      // loads them (StartPreload); joined before preloaded_ is read
  std::map<pid_t, Loaded> preloaded_;
  Guard guard_;
  io_uring ring_{};
  bool ring_ready_ = false;
  UniqueFd listen_;
  UniqueFd control_;
  std::vector<std::unique_ptr<Target>> targets_;
  std::vector<uint64_t> fill_cursor_;
  size_t fill_next_ = 0;
  std::vector<ReadSlot> slots_;
  std::vector<Waiter> spare_waiters_;
  std::vector<PieceCopy> loop_copies_;
  std::vector<PendingRange> loop_pieces_;
  std::deque<Waiter> deferred_;
  std::unique_ptr<PageServerClient> remote_;  // --page-server: where chunks come from
  RemoteImages remote_images_;
  uint64_t remote_gen_ = 1;  // tags of the current connection's poll
  // The loop holds mu_ exclusively, fill threads shared; among fill threads, fill_mu_ guards
  // what they change: each Target's pending set and gone flag, fill_cursor_, fill_next_,
  // fill_now_, fill_waiting_, stop_fill_, fill_allowed_, pages_by_fill_ and fatal_ (Fatal).
  RwLock mu_;
  std::mutex fill_mu_;
  std::condition_variable fill_cv_;
  std::vector<std::thread> fill_threads_;
  std::vector<FillPick> fill_now_;  // chunks the fill threads are working on
  bool stop_fill_ = false;
  bool fill_allowed_ = false;  // AllowFill: the tree runs, nothing holds the fill back
  // The loop's own copy of fill_allowed_, read without a lock.
  bool fill_allowed_by_loop_ = false;
  int fill_waiting_ = 0;           // fill threads waiting on fill_cv_
  UniqueFd fill_idle_;             // eventfd: a fill thread found nothing to do, or failed
  std::deque<size_t> ahead_done_;  // read slots read ahead and read, oldest first
  std::deque<LazyMsg> replies_;    // to the restore, waiting for room on the socket
  bool reply_poll_armed_ = false;  // a POLLOUT on the control socket is pending
  uint32_t max_stored_ = 0;
  size_t chunk_bytes_ = 0;
  img::DCtxPtr dctx_ = img::NewDCtx();  // the loop's
  bool all_sent_ = false;
  std::optional<Error> fatal_;
  FILE* trace_ = nullptr;
  uint64_t start_ns_ = 0, first_task_ns_ = 0, done_ns_ = 0;
  uint64_t fill_at_ns_ = 0;        // --fill-delay: when the background fill may start
  uint64_t resolve_until_ns_ = 0;  // the loop looks for them in /proc until then
  std::vector<uint64_t> latencies_;
  uint64_t pages_by_fault_ = 0, pages_by_fill_ = 0, pages_zero_ = 0, chunks_read_ = 0;
  // The working set (issue 7): recording it, or installing a recorded one.
  bool recording_ = false;
  WorkingSetRecorder recorder_;
  uint64_t record_start_ns_ = 0, record_until_ns_ = 0;
  UniqueFd signal_fd_;
  UniqueFd prefetch_done_;  // before prefetch_: its thread writes it until joined
  std::unique_ptr<WorkingSetPrefetch> prefetch_;
  bool prefetch_pending_ = false;  // started and not settled by OnPrefetchReady yet
  std::vector<Waiter> prefetch_waiters_;
  uint64_t pages_by_prefetch_ = 0, prefetch_ns_ = 0;
  uint64_t working_set_pages_ = 0;
};

}  // namespace

Result<pb::LazyStats> RunLazyPages(const LazyPagesOptions& opts) {
  LZ_DEBUG("lazy-pages: start");
  // Probed once, up front: a kernel without these cannot serve a single fault.
  LZ_TRY(RequireFeatures(KernelFeatures::ProbeForLazyPages(),
                         {"userfaultfd", "uffd_event_fork", "uffd_event_remap", "uffd_event_remove",
                          "uffd_event_unmap", "io_uring"}));
  LZ_ASSIGN_OR_RETURN(pb::Inventory inventory, img::ReadInventory(opts.dir));
  std::unique_ptr<PageServerClient> remote;
  RemoteImages remote_images;
  LazyPagesOptions o = opts;
  if (!opts.ps_address.empty()) {
    LZ_ASSIGN_OR_RETURN(remote, PageServerClient::Connect(opts.ps_address, opts.ps_port,
                                                          ps::kRoleRead, opts.ps_token));
    LZ_ASSIGN_OR_RETURN(remote_images, FetchRemoteImages(*remote, opts.dir));
    o.fill_threads = 0;  // one connection, driven by the event loop
    if (opts.record_working_set) {
      return Invalid("lazy-pages", "--record-working-set needs the page stores in the directory");
    }
  }
  if (opts.record_working_set) {
    // Taken through a signalfd by the loop; blocked before any thread or the guard starts.
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  }
  LZ_DEBUG("lazy-pages: probed, inventory read");
  LZ_ASSIGN_OR_RETURN(Guard guard, Guard::Start());
  LZ_DEBUG("lazy-pages: guard started");
  LazyPagesDaemon d(o, std::move(guard), std::move(remote), std::move(remote_images),
                    inventory.dumped_at_unix_ns(),
                    std::vector<pid_t>(inventory.pids().begin(), inventory.pids().end()));
  LZ_TRY(d.Run());
  pb::LazyStats stats = d.Stats();
  (void)img::WriteSingleMessage(opts.dir + "/stats-lazy", img::ImageKind::kStats, stats);
  return stats;
}

}  // namespace lz
