// Collecting the state of one frozen process into its images.
#pragma once

#include <sys/types.h>

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
[[nodiscard]] Result<pb::FdTable> DumpFds(pid_t pid, const std::string& dir);
/// Pages of `mm`'s VMAs that hold data into the page store and pagemap of `pid` in `dir`.
/// `progress` (may be null) hears of every batch read.
/// With `page_server`, the page store goes there instead of into `dir`.
[[nodiscard]] Result<MemoryStats> DumpPages(pid_t pid, const pb::Mm& mm, const std::string& dir,
                                            const img::PageStoreOptions& opts,
                                            Progress* progress = nullptr,
                                            PageServerClient* page_server = nullptr);

/// Which VMAs' pages are dumped, and which may come back lazily.
bool VmaHasPrivatePages(const pb::Vma& vma);
bool VmaIsLazy(const pb::Vma& vma);

}  // namespace lz
