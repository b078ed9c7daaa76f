// Shared between the restore stages; not part of the public interface.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "images/image_dir.h"
#include "images/page_store.h"
#include "parasite/ptrace.h"
#include "parasite/remote.h"
#include "restore/restore.h"
#include "uffd/protocol.h"

namespace lz {

class FileOpener;
class LazyHandOver;
class SharedMemory;

/// A file a task's mappings (or PR_SET_MM_MAP's exe) come from. The task opens it itself
/// before it is seized (OpenMapSources), at `fd`, so that the front-end maps every VMA in one
/// batch; the batch that sets the mm fields closes it.
struct MapSource {
  std::string path;  // what the task opens (a shared memory object: the front-end's fd link)
  int access;        // O_RDONLY or O_RDWR
  int fd;            // its number in the task, above every other descriptor of the restore
  bool check;        // a mapped file: must still have the dumped size and mtime
  uint64_t size;
  int64_t mtime_ns;
};

/// One task of the tree being restored, seized by the front-end.
struct RestoredTask {
  const img::TaskImages* img = nullptr;
  pid_t pid = 0;
  std::vector<PtraceAttachment> threads;  // [0] the main thread
  uint64_t scratch = 0;                   // our scratch pages inside the task
  uint64_t syscall_insn = 0;              // where remote syscalls run from now
  UniqueFd uffd;                          // lazy restore: the task's userfaultfd
  Result<std::unique_ptr<img::PageStoreReader>> store = std::unique_ptr<img::PageStoreReader>();
  uint64_t pages_eager = 0;
  uint64_t pages_lazy = 0;
  std::vector<MapSource> sources;  // the files it opened for its mappings (map_sources.cc)
};

/// The first descriptor number map sources take, above what RestoreFds keeps above `floor`.
int MapSourceBase(const img::Dump& dump, int floor);
/// One above the highest descriptor number any task's map sources may take.
int MapSourceLimit(const img::Dump& dump, int floor);
/// Every distinct file (by path and access) task `t` maps, its shared memory objects and its
/// exe, numbered from `base`. The front-end and the task compute the same plan.
[[nodiscard]] Result<std::vector<MapSource>> PlanMapSources(const img::Dump& dump,
                                                            const img::TaskImages& t,
                                                            const SharedMemory& shm, int base);
/// The planned descriptor a file or shared memory VMA maps.
[[nodiscard]] Result<int> MapSourceFd(const img::Dump& dump, const std::vector<MapSource>& sources,
                                      const pb::Vma& v, const SharedMemory& shm);
/// The planned descriptor of the exe, or -1.
int ExeSourceFd(const std::vector<MapSource>& sources, const pb::Mm& mm);
/// Task side: opens each source, checks a mapped file is as dumped, places it at its number.
[[nodiscard]] Status OpenMapSources(const std::vector<MapSource>& sources);

// Our pages inside a task being restored: the first four for syscall arguments (paths, auxv,
// structs), the last four for batches of remote syscalls (code and table; executable).
constexpr size_t kScratchArgs = 4 * 4096;
constexpr size_t kScratchBatchOff = kScratchArgs;
constexpr size_t kScratchSize = kScratchArgs + kBatchAreaSize;

// Child side (runs in the forked task, on a copy of lazarus): sessions, fds, cwd, children.
// Never returns: the task reports "ready" on `report_fd` and waits to be seized. `opener`
// carries the objects shared with other tasks down the tree (fork copies it); everything
// lazarus keeps open meanwhile sits at or above `floor`, above every dumped fd number.
[[noreturn]] void RunTaskChild(const img::Dump& dump, size_t index, int report_fd,
                               const RestoreOptions& opts, FileOpener& opener, int floor);
/// The lowest descriptor number no task of the dump uses; raises RLIMIT_NOFILE so that the
/// restore can keep its objects above it.
[[nodiscard]] Result<int> PrepareFdFloor(const img::Dump& dump);

/// Address space, from outside: replaces lazarus's mappings by the dumped ones and fills or
/// registers (lazy) the memory.
/// With `lazy` (lazy restore), the task's uffd goes to the daemon as soon as its ranges are
/// registered: from then on even the kernel's own accesses (syscalls reading task memory)
/// fault and must be served.
/// Shared memory objects are mapped from `shm`, which the front-end holds.
[[nodiscard]] Status RestoreMm(const img::Dump& dump, RestoredTask& t, LazyHandOver* lazy,
                               const SharedMemory& shm);
/// Threads, signals, timers, limits, credentials and registers, from outside; the last stage.
[[nodiscard]] Status RestoreTaskState(RestoredTask& t);
/// Remote syscall helpers on the task's main thread.
[[nodiscard]] Status WriteScratch(const RestoredTask& t, size_t offset, const void* data,
                                  size_t len);

/// The restore's end of the lazy-pages socket. Each task's uffd goes over as soon as its ranges
/// are registered; the restore does not wait for the daemon's ack there, but reads the acks
/// that have arrived at every send (so that they never fill the socket, which the daemon does
/// not wait on) and the rest at the end, each checked against the pid it answers.
class LazyHandOver {
 public:
  /// Connects to DIR/lazy-pages.socket, waiting up to a second for a daemon just started.
  [[nodiscard]] static Result<LazyHandOver> Connect(const std::string& dir);

  /// Sends `t`'s uffd (SCM_RIGHTS), then closes ours.
  [[nodiscard]] Status Send(RestoredTask& t);
  /// kLazyAllSent, then every ack still due, waiting at most 30 s for each.
  [[nodiscard]] Status Finish();

 private:
  explicit LazyHandOver(UniqueFd sock) : sock_(std::move(sock)) {}
  // Reads acks until none is waiting (or, with `wait`, until every one due has come).
  [[nodiscard]] Status ReadAcks(bool wait);

  UniqueFd sock_;
  std::vector<pid_t> sent_;
  size_t acked_ = 0;
  bool all_sent_ = false;
};

}  // namespace lz
