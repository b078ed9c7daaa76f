// Collecting the state of one frozen process into its images.
#pragma once

#include <sys/types.h>

#include <set>
#include <span>
#include <string>
#include <vector>

#include "base/proc.h"
#include "base/progress.h"
#include "base/result.h"
#include "dump/freezer.h"
#include "dump/parasite_session.h"
#include "images/core.pb.h"
#include "images/files.pb.h"
#include "images/mm.pb.h"
#include "images/page_store.h"

namespace lz {

class PageServerClient;

struct MemoryStats {
  uint64_t pages_scanned = 0;
  uint64_t pages_present = 0;
  uint64_t pages_zero = 0;
  uint64_t pages_written = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

/// The tree links and identity /proc/PID/stat gives (pid, ppid, pgid, sid, comm, exit signal).
void FillTreeLinks(pid_t pid, const ProcStat& st, pb::TaskCore* core);
/// Threads' registers and signal state, credentials, limits, tree links.
[[nodiscard]] Result<pb::TaskCore> DumpCore(FrozenTask& task, ParasiteSession& parasite);
/// VMAs (with their backing files' identities), mm fields, auxv, exe.
[[nodiscard]] Result<pb::Mm> DumpMm(pid_t pid, const std::vector<ProcVma>& vmas,
                                    ParasiteSession& parasite);
/// The fd table; refuses a descriptor of a type that cannot be restored. Deleted files'
/// contents are saved beside the images in `dir`.
[[nodiscard]] Result<pb::FdTable> DumpFds(pid_t pid, const std::string& dir, bool file_locks);
/// The pages every thread of `core` touches the moment it runs again: its stack around the
/// stack pointer, its thread control block and TLS around fs_base, its rseq area (which the
/// kernel writes on the way back to user space). Sorted, page-aligned, without duplicates.
std::vector<uint64_t> HotPagesOf(const pb::TaskCore& core);
/// Pages of `mm`'s VMAs that hold data into the page store and pagemap of `pid` in `dir`.
/// Pages listed in `hot` (sorted) are never marked lazy. `progress` (may be null) hears of
/// every batch read. With `page_server`, the page store goes there instead of into `dir`.
[[nodiscard]] Result<MemoryStats> DumpPages(pid_t pid, const pb::Mm& mm, const std::string& dir,
                                            const img::PageStoreOptions& opts,
                                            std::span<const uint64_t> hot = {},
                                            Progress* progress = nullptr,
                                            PageServerClient* page_server = nullptr);

/// The shared memory objects of the tree (anonymous shared mappings and memfds), each saved
/// once however many tasks map it or hold it open.
class ShmemCollector {
 public:
  /// Gives every shared memory VMA and memfd of task `pid` its object's id (new objects are
  /// remembered with a path to read them through while the tree is frozen).
  [[nodiscard]] Status Add(pid_t pid, pb::Mm& mm, pb::FdTable& fds);
  /// Saves every object's content and shmem.img into `dir`; adds to `stats`.
  [[nodiscard]] Status Write(const std::string& dir, const img::PageStoreOptions& opts,
                             MemoryStats& stats);

 private:
  struct Object {
    pb::ShmemObject meta;
    std::string source;          // /proc/PID/map_files/RANGE or /proc/PID/fd/N
    uint32_t sysv_attached = 0;  // SysV: attachments in the tree (each VMA is one)
  };
  Result<uint32_t> IdOf(uint64_t dev, uint64_t ino, pb::ShmemKind kind, const std::string& name,
                        const std::string& source);
  Status CheckSysvNamespace(pid_t pid);
  Status CheckNotAlsoOpen(uint64_t dev, uint64_t ino, const std::string& path);
  std::vector<Object> objects_;
  std::set<std::pair<uint64_t, uint64_t>> deleted_open_;  // (dev, ino) of deleted files open
};

/// Appends `pages` (whole pages read at `addr`) to a store and its pagemap: zero pages as zero
/// runs, the rest stored; `flags` go on every run. The first run never merges into the one
/// before when `new_range` (runs must not cross VMAs).
[[nodiscard]] Status AppendPageRuns(uint64_t addr, std::span<const std::byte> pages, uint32_t flags,
                                    bool new_range, img::PageStoreWriter& store, img::Pagemap& pm,
                                    MemoryStats& stats);

/// Which VMAs' pages are dumped (img::VmaIsLazy says which may come back lazily).
bool VmaHasPrivatePages(const pb::Vma& vma);

}  // namespace lz
