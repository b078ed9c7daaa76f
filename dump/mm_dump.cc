// DumpMm and DumpPages: the address space and the pages that hold data.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/crc32c.h"
#include "base/file_util.h"
#include "base/held_signals.h"
#include "base/log.h"
#include "base/proc.h"
#include "dump/task_dump.h"
#include "images/image_dir.h"
#include "images/page_server_client.h"

namespace lz {
namespace {

// Pages examined per pagemap read and copied per /proc/PID/mem read: 2 MiB, a few syscalls per
// huge page's worth while keeping the buffer in L2.
constexpr size_t kBatchPages = 512;
constexpr uint64_t P = img::kPageSize;

Result<pb::VmaKind> Classify(const ProcVma& v) {
  const std::string& p = v.path;
  if (p == "[vdso]") return pb::VMA_VDSO;
  if (p == "[vvar]") return pb::VMA_VVAR;
  if (p == "[vvar_vclock]") return pb::VMA_VVAR_VCLOCK;
  if (p == "[vsyscall]") return pb::VMA_VSYSCALL;
  if (v.HasFlag("io") || v.HasFlag("pf")) {
    return Invalid("device mapping " + p + " is not supported");
  }
  if (v.HasFlag("ht")) {
    return Invalid("hugetlb mapping " + p + " is not supported yet");
  }
  if (p == "[heap]") return pb::VMA_HEAP;
  if (p == "[stack]") return pb::VMA_STACK;
  if (p.empty() || p.rfind("[anon:", 0) == 0) {
    return v.shared ? pb::VMA_ANON_SHARED : pb::VMA_ANON_PRIVATE;
  }
  if (p == "/dev/zero (deleted)" || p.rfind("[anon_shmem:", 0) == 0) {
    return pb::VMA_ANON_SHARED;
  }
  if (p.rfind("/memfd:", 0) == 0 && p.ends_with(" (deleted)")) {
    return pb::VMA_MEMFD;
  }
  // A file of /dev/shm unlinked once made (a POSIX semaphore or shm_open segment, as Python's
  // multiprocessing makes them): a tmpfs object with no name, a memfd in all but that. Saved
  // and brought back as one (its mapping then reads "/memfd:NAME (deleted)").
  if (p.rfind("/dev/shm/", 0) == 0 && p.ends_with(" (deleted)") && v.dev_major == 0) {
    return pb::VMA_MEMFD;
  }
  // A SysV shared memory segment (shmat): "/SYSV<key> (deleted)", a file of the kernel's own
  // shm mount, whose inode number is the segment's id.
  if (p.rfind("/SYSV", 0) == 0 && p.ends_with(" (deleted)") && v.dev_major == 0 && v.shared) {
    return pb::VMA_SYSV_SHM;
  }
  if (p.front() != '/' || p.find(" (deleted)") != std::string::npos || p.rfind("/SYSV", 0) == 0) {
    return Invalid("mapping of " + p + " is not supported yet");
  }
  return v.shared ? pb::VMA_FILE_SHARED : pb::VMA_FILE_PRIVATE;
}

uint32_t MadvFlags(const ProcVma& v) {
  static const struct {
    const char* code;
    uint32_t bit;
  } kMap[] = {{"gd", pb::MADV_GROWSDOWN},       {"dd", pb::MADV_DONTDUMP_FLAG},
              {"wf", pb::MADV_WIPEONFORK_FLAG}, {"dc", pb::MADV_DONTFORK_FLAG},
              {"hg", pb::MADV_HUGEPAGE_FLAG},   {"nh", pb::MADV_NOHUGEPAGE_FLAG},
              {"mg", pb::MADV_MERGEABLE_FLAG},  {"lo", pb::MADV_LOCKED}};
  uint32_t out = 0;
  for (const auto& m : kMap) {
    if (v.HasFlag(m.code)) {
      out |= m.bit;
    }
  }
  return out;
}

bool AllZero(const std::byte* p) {
  const auto* w = reinterpret_cast<const uint64_t*>(p);
  uint64_t acc = 0;
  for (size_t i = 0; i < P / 8; i += 8) {
    acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7];
    if (acc != 0) {
      return false;
    }
  }
  return true;
}

// Walks one VMA and feeds its data pages to the page store and pagemap.
class VmaPageDumper {
 public:
  VmaPageDumper(int pagemap_fd, int mem_fd, img::PageStoreWriter& store, img::Pagemap& pm,
                MemoryStats& stats, std::span<const uint64_t> hot, Progress* progress)
      : pagemap_fd_(pagemap_fd),
        mem_fd_(mem_fd),
        store_(store),
        pm_(pm),
        stats_(stats),
        hot_(hot),
        progress_(progress) {
    entries_.resize(kBatchPages);
    buf_.resize(kBatchPages * P);
  }

  Status Dump(const pb::Vma& vma) {
    new_vma_ = true;
    uint32_t lazy = img::VmaIsLazy(vma) ? uint32_t{img::kPageLazy} : 0u;
    for (uint64_t addr = vma.start(); addr < vma.end(); addr += kBatchPages * P) {
      size_t n = std::min<uint64_t>(kBatchPages, (vma.end() - addr) / P);
      auto bytes = std::as_writable_bytes(std::span(entries_.data(), n));
      LZ_ASSIGN_OR_RETURN(size_t got, PreadFull(pagemap_fd_, bytes, addr / P * 8));
      if (got != bytes.size()) {
        return Fail(EIO, "read pagemap", "at " + std::to_string(addr));
      }
      stats_.pages_scanned += n;
      size_t i = 0;
      while (i < n) {
        if (!Wanted(entries_[i])) {
          i++;
          continue;
        }
        // A span ends where a page is wanted no more or its laziness changes.
        bool hot = lazy != 0 && IsHot(addr + i * P);
        size_t j = i;
        while (j < n && Wanted(entries_[j]) && (lazy == 0 || IsHot(addr + j * P) == hot)) {
          j++;
        }
        LZ_TRY(CopySpan(addr + i * P, j - i, hot ? 0u : lazy));
        i = j;
      }
    }
    return Ok();
  }

 private:
  // Present or swapped, and the task's own (anonymous, or a private copy of a file page).
  static bool Wanted(uint64_t e) {
    return (e & (kPagemapPresent | kPagemapSwap)) && !(e & kPagemapFile);
  }

  bool IsHot(uint64_t page) const { return std::binary_search(hot_.begin(), hot_.end(), page); }

  Status CopySpan(uint64_t addr, size_t n, uint32_t lazy) {
    auto out = std::span(buf_.data(), n * P);
    LZ_ASSIGN_OR_RETURN(size_t got, PreadFull(mem_fd_, out, addr));
    if (got != out.size()) {
      return Fail(EIO, "read memory", "at " + std::to_string(addr + got));
    }
    stats_.pages_present += n;
    if (progress_ != nullptr) {
      progress_->Update(stats_.pages_present * P);
    }
    LZ_TRY(CheckInterrupted("dumping memory"));
    LZ_TRY(AppendPageRuns(addr, out, lazy, new_vma_, store_, pm_, stats_));
    new_vma_ = false;
    return Ok();
  }

  int pagemap_fd_;
  int mem_fd_;
  img::PageStoreWriter& store_;
  img::Pagemap& pm_;
  MemoryStats& stats_;
  std::span<const uint64_t> hot_;
  std::vector<uint64_t> entries_;
  std::vector<std::byte> buf_;
  bool new_vma_ = true;  // the next run starts a VMA: never merge it into the previous one
  Progress* progress_;
};

}  // namespace

Status AppendPageRuns(uint64_t addr, std::span<const std::byte> pages, uint32_t flags,
                      bool new_range, img::PageStoreWriter& store, img::Pagemap& pm,
                      MemoryStats& stats) {
  size_t n = pages.size() / P;
  size_t i = 0;
  while (i < n) {
    bool zero = AllZero(pages.data() + i * P);
    size_t j = i + 1;
    while (j < n && AllZero(pages.data() + j * P) == zero) {
      j++;
    }
    img::PageRun run{addr + i * P, static_cast<uint32_t>(j - i), flags, 0};
    if (zero) {
      run.flags |= img::kPageZero;
      stats.pages_zero += j - i;
    } else {
      run.flags |= img::kPagePresent;
      run.page_index = store.pages_appended();
      LZ_TRY(store.Append(pages.subspan(i * P, (j - i) * P)));
      stats.pages_written += j - i;
    }
    pm.Append(run, !new_range);
    new_range = false;
    i = j;
  }
  return Ok();
}

bool VmaHasPrivatePages(const pb::Vma& v) {
  switch (v.kind()) {
    case pb::VMA_ANON_PRIVATE:
    case pb::VMA_HEAP:
    case pb::VMA_STACK:
    case pb::VMA_FILE_PRIVATE:
      return true;
    case pb::VMA_MEMFD:
      return !v.shared();  // a shared mapping's pages are the object's, saved once
    default:
      return false;
  }
}

Result<pb::Mm> DumpMm(pid_t pid, const std::vector<ProcVma>& vmas, ParasiteSession& parasite) {
  pb::Mm mm;
  for (const ProcVma& v : vmas) {
    LZ_ASSIGN_OR_RETURN(pb::VmaKind kind, Classify(v));
    pb::Vma* out = mm.add_vmas();
    out->set_start(v.start);
    out->set_end(v.end);
    out->set_pgoff(v.pgoff);
    out->set_prot(v.prot);
    out->set_shared(v.shared);
    out->set_kind(kind);
    out->set_path(v.path);
    out->set_madv(MadvFlags(v));
    if (kind == pb::VMA_VDSO) {
      std::vector<std::byte> code(v.end - v.start);
      LZ_TRY(ReadRemote(pid, v.start, code));
      mm.set_vdso_crc(Crc32c(code));
    }
    if (kind == pb::VMA_SYSV_SHM) {
      // Attached read-only, it can never be made writable: the restore attaches it the same.
      out->set_shmat_flags(v.HasFlag("mw") ? 0 : SHM_RDONLY);
    }
    if (kind == pb::VMA_FILE_PRIVATE || kind == pb::VMA_FILE_SHARED ||
        kind == pb::VMA_ANON_SHARED || kind == pb::VMA_MEMFD || kind == pb::VMA_SYSV_SHM) {
      char range[64];
      snprintf(range, sizeof range, "%lx-%lx", v.start, v.end);
      struct stat st;
      if (::stat(ProcPath(pid, std::string("map_files/") + range).c_str(), &st) != 0) {
        return FailErrno("stat mapped file", v.path);
      }
      out->set_dev(st.st_dev);
      out->set_ino(st.st_ino);
      out->set_file_size(st.st_size);
      out->set_file_mtime_ns(st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec);
    }
  }
  LZ_ASSIGN_OR_RETURN(ProcStat st, ReadProcStat(pid));
  mm.set_start_code(st.start_code);
  mm.set_end_code(st.end_code);
  mm.set_start_data(st.start_data);
  mm.set_end_data(st.end_data);
  mm.set_start_brk(st.start_brk);
  mm.set_start_stack(st.start_stack);
  mm.set_arg_start(st.arg_start);
  mm.set_arg_end(st.arg_end);
  mm.set_env_start(st.env_start);
  mm.set_env_end(st.env_end);
  LZ_ASSIGN_OR_RETURN(long brk, parasite.leader().Syscall("brk", SYS_brk, 0));
  mm.set_brk(static_cast<uint64_t>(brk));
  LZ_ASSIGN_OR_RETURN(std::string auxv, ReadFileToString(ProcPath(pid, "auxv")));
  mm.set_auxv(auxv);
  LZ_ASSIGN_OR_RETURN(std::string exe, ReadLink(ProcPath(pid, "exe")));
  mm.set_exe_path(exe);
  struct stat est;
  if (::stat(ProcPath(pid, "exe").c_str(), &est) == 0) {
    mm.set_exe_dev(est.st_dev);
    mm.set_exe_ino(est.st_ino);
  }
  return mm;
}

std::vector<uint64_t> HotPagesOf(const pb::TaskCore& core) {
  std::vector<uint64_t> pages;
  auto around = [&](uint64_t addr) {
    uint64_t page = addr & ~(P - 1);
    for (uint64_t p : {page - P, page, page + P}) {
      pages.push_back(p);
    }
  };
  for (const pb::ThreadCore& t : core.threads()) {
    Regs regs{};
    if (t.gpregs().size() == sizeof regs) {
      std::memcpy(&regs, t.gpregs().data(), sizeof regs);
      around(regs.rsp);      // the return path reads above it, the next call pushes below it
      around(regs.fs_base);  // the TCB above it, static TLS (errno, stack guard) below it
    }
    if (t.rseq_addr() != 0) {
      pages.push_back(t.rseq_addr() & ~(P - 1));
    }
  }
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  return pages;
}

Result<MemoryStats> DumpPages(pid_t pid, const pb::Mm& mm, const std::string& dir,
                              const img::PageStoreOptions& opts, std::span<const uint64_t> hot,
                              Progress* progress, PageServerClient* page_server) {
  LZ_ASSIGN_OR_RETURN(UniqueFd pagemap_fd, OpenFile(ProcPath(pid, "pagemap"), O_RDONLY));
  LZ_ASSIGN_OR_RETURN(UniqueFd mem_fd, OpenFile(ProcPath(pid, "mem"), O_RDONLY));
  std::string name = img::PagesName(pid);
  LZ_ASSIGN_OR_RETURN(
      auto store, page_server != nullptr
                      ? img::PageStoreWriter::CreateWith(MakeRemoteSink(*page_server, pid),
                                                         page_server->where() + ":" + name, opts)
                      : img::PageStoreWriter::Create(dir + "/" + name, opts));
  img::PagemapFile pm;
  pm.pages_file = img::PagesName(pid);
  pm.chunk_pages = opts.chunk_pages;
  MemoryStats stats;
  VmaPageDumper dumper(pagemap_fd.get(), mem_fd.get(), *store, pm.pagemap, stats, hot, progress);
  for (const pb::Vma& v : mm.vmas()) {
    if (VmaHasPrivatePages(v)) {
      LZ_TRY_CTX(dumper.Dump(v), "dump pages of pid " + std::to_string(pid));
    }
  }
  LZ_ASSIGN_OR_RETURN(img::PageStoreStats ps, store->Finish());
  stats.bytes_in = ps.bytes_in;
  stats.bytes_out = ps.bytes_out;
  LZ_TRY(img::WritePagemap(img::PagemapPath(dir, pid), pm));
  return stats;
}

}  // namespace lz
