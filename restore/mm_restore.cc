// RestoreMm: rebuild a task's address space from outside with remote syscalls.
//
// The task starts as a copy of lazarus that has opened the files its mappings need
// (map_sources.cc). Map scratch pages at an address free in both layouts (one remote syscall);
// then one batch run from them: unregister lazarus's rseq, move the kernel's
// [vvar]/[vvar_vclock]/[vdso] block to where the dumped code expects it, unmap everything
// lazarus had, map every dumped VMA, apply its madvise flags, and (lazy) make the userfaultfd.
// Then fill the eager pages through /proc/PID/mem; lazy: register the lazy ranges and put the
// eager pages inside them with UFFDIO_COPY. Last, set the mm fields (brk, arg/env, auxv, exe)
// with PR_SET_MM_MAP in a batch that also closes the task's copies of the descriptors.
#include <fcntl.h>
#include <linux/prctl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "base/file_util.h"
#include "base/log.h"
#include "base/proc.h"
#include "base/sys.h"
#include "base/vdso.h"
#include "images/page_store.h"
#include "restore/restore_internal.h"
#include "restore/shmem_restore.h"
#include "uffd/uffd_ops.h"

namespace lz {
namespace {

constexpr uint64_t P = img::kPageSize;

struct Range {
  uint64_t start;
  uint64_t end;
};

bool Overlaps(const std::vector<Range>& used, uint64_t a, uint64_t len) {
  return std::any_of(used.begin(), used.end(),
                     [&](const Range& r) { return a < r.end && r.start < a + len; });
}

// A hole of `len` bytes free in every listed range set, searched from 256 MiB up.
Result<uint64_t> FindHole(const std::vector<Range>& used, uint64_t len) {
  for (uint64_t a = 0x10000000; a < (uint64_t{1} << 46); a += 0x100000) {
    if (!Overlaps(used, a, len)) {
      return a;
    }
  }
  return Invalid("restore", "no free address range for lazarus's scratch pages");
}

bool IsSpecial(pb::VmaKind k) {
  return k == pb::VMA_VDSO || k == pb::VMA_VVAR || k == pb::VMA_VVAR_VCLOCK ||
         k == pb::VMA_VSYSCALL;
}

const char* SpecialName(pb::VmaKind k) {
  switch (k) {
    case pb::VMA_VDSO:
      return "[vdso]";
    case pb::VMA_VVAR:
      return "[vvar]";
    case pb::VMA_VVAR_VCLOCK:
      return "[vvar_vclock]";
    default:
      return "";
  }
}

class MmBuilder {
 public:
  MmBuilder(const img::Dump& dump, RestoredTask& t, LazyHandOver* lazy, const SharedMemory& shm)
      : dump_(dump),
        t_(t),
        mm_(t.img->mm),
        rt_(t.pid, OwnSyscallInsn()),
        lazy_(lazy != nullptr),
        hand_over_(lazy),
        shm_(shm) {}

  Status Build() {
    LZ_ASSIGN_OR_RETURN(std::string maps,
                        ReadFileToString("/proc/" + std::to_string(t_.pid) + "/maps"));
    LZ_ASSIGN_OR_RETURN(current_, ParseSmaps(maps));
    for (const ProcVma& v : current_) {
      used_.push_back({v.start, v.end});
    }
    for (const pb::Vma& v : mm_.vmas()) {
      used_.push_back({v.start(), v.end()});
    }
    for (const pb::Vma& v : mm_.vmas()) {
      if (Registered(v)) {
        registered_.push_back({v.start(), v.end()});  // in address order, as the VMAs are
      }
    }
    LZ_TRY(MapScratch());
    // From here on, one batch (one ptrace stop) reshapes the whole address space; it runs
    // from the scratch pages, which it spares.
    LZ_TRY(UnregisterRseq());
    LZ_TRY(MoveVdso());
    UnmapLazarus();
    LZ_TRY(MapVmas());
    ApplyMadvise();
    size_t uffd_call = calls_.size();
    if (lazy_) {
      Call({"userfaultfd", SYS_userfaultfd, {O_CLOEXEC | O_NONBLOCK}});
    }
    LZ_TRY(RunCalls());
    LZ_TRY(FillPages());
    long remote_uffd = -1;
    if (lazy_) {
      remote_uffd = results_[uffd_call];
      LZ_TRY(RegisterLazy(static_cast<int>(remote_uffd)));
      LZ_TRY(FillRegistered());
      LZ_TRY(hand_over_->Send(t_));
    }
    LZ_TRY(SetMmFields(remote_uffd));
    t_.syscall_insn = rt_.syscall_insn();
    return Ok();
  }

 private:
  // glibc registered rseq for lazarus's thread; once its TLS is unmapped, the kernel's rseq
  // update on the next return to user mode would fault and kill the task with SIGSEGV.
  Status UnregisterRseq() {
    LZ_ASSIGN_OR_RETURN(RseqConfig rseq, GetRseqConfig(t_.pid));
    if (rseq.addr != 0) {
      constexpr uint64_t kRseqFlagUnregister = 1;
      Call({"rseq unregister", SYS_rseq, {rseq.addr, rseq.len, kRseqFlagUnregister, rseq.sig}});
    }
    return Ok();
  }

  Status MapScratch() {
    LZ_ASSIGN_OR_RETURN(uint64_t at, FindHole(used_, kScratchSize));
    LZ_ASSIGN_OR_RETURN(long r,
                        rt_.Syscall("mmap scratch", SYS_mmap, at, kScratchSize,
                                    PROT_READ | PROT_WRITE | PROT_EXEC,  // batches run from it
                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                                    static_cast<uint64_t>(-1), 0));
    t_.scratch = static_cast<uint64_t>(r);
    used_.push_back({t_.scratch, t_.scratch + kScratchSize});
    keep_.push_back({t_.scratch, t_.scratch + kScratchSize});
    return Ok();
  }

  const ProcVma* Current(const char* name) const {
    for (const ProcVma& v : current_) {
      if (v.path == name) {
        return &v;
      }
    }
    return nullptr;
  }

  Status MoveVdso() {
    LZ_ASSIGN_OR_RETURN(VdsoInfo own, OwnVdso());
    std::vector<std::pair<const ProcVma*, const pb::Vma*>> moves;
    const pb::Vma* dumped_vdso = nullptr;
    for (const pb::Vma& v : mm_.vmas()) {
      if (!IsSpecial(v.kind()) || v.kind() == pb::VMA_VSYSCALL) {
        continue;
      }
      const ProcVma* cur = Current(SpecialName(v.kind()));
      if (cur == nullptr || cur->end - cur->start != v.end() - v.start()) {
        return Invalid(std::string(SpecialName(v.kind())) +
                       " differs from the dumping kernel's; restore on the same kernel");
      }
      moves.emplace_back(cur, &v);
      if (v.kind() == pb::VMA_VDSO) {
        dumped_vdso = &v;
      }
    }
    if (dumped_vdso == nullptr) {
      return Invalid("the dump has no [vdso]; such processes are not supported");
    }
    if (mm_.vdso_crc() != own.crc) {
      return Invalid(
          "the vDSO of this kernel differs from the dumping kernel's; restore on the same kernel");
    }
    // The vDSO finds its data pages at fixed offsets, so the block moves as a whole: first to
    // a hole free in both layouts (the destinations may overlap the sources), then home.
    uint64_t lo = UINT64_MAX, hi = 0;
    for (auto& [cur, dst] : moves) {
      lo = std::min(lo, cur->start);
      hi = std::max(hi, cur->end);
      if (dst->start() - dumped_vdso->start() != cur->start - Current("[vdso]")->start) {
        return Invalid("vDSO layout differs from the dumping kernel's");
      }
    }
    LZ_ASSIGN_OR_RETURN(uint64_t hole, FindHole(used_, hi - lo));
    for (auto& [cur, dst] : moves) {
      Mremap(cur->start, cur->end - cur->start, hole + (cur->start - lo));
    }
    for (auto& [cur, dst] : moves) {
      Mremap(hole + (cur->start - lo), cur->end - cur->start, dst->start());
      keep_.push_back({dst->start(), dst->end()});
    }
    rt_.set_syscall_insn(dumped_vdso->start() + own.syscall_off);
    return Ok();
  }

  void Mremap(uint64_t from, uint64_t len, uint64_t to) {
    Call({"mremap", SYS_mremap, {from, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to}}, to);
  }

  // Queues a call of the batch; `lands_at`, when given, is the address it must return.
  void Call(RemoteCall c, uint64_t lands_at = 0) {
    if (lands_at != 0) {
      expect_.emplace_back(calls_.size(), lands_at);
    }
    calls_.push_back(c);
  }

  Status RunCalls() {
    LZ_TRY(rt_.RunBatch(calls_, t_.scratch + kScratchBatchOff, &results_));
    for (auto [i, at] : expect_) {
      if (static_cast<uint64_t>(results_[i]) != at) {
        return Invalid(std::string(calls_[i].what) + " landed at the wrong address");
      }
    }
    return Ok();
  }

  // Unmaps what lazarus had, sparing the scratch pages and the vDSO block, which may now sit
  // where one of lazarus's mappings was. munmap accepts ranges with nothing mapped in them, so a
  // handful of calls over the gaps between the kept ranges do it (not one per mapping).
  void UnmapLazarus() {
    constexpr uint64_t kTaskSize = 0x7ffffffff000;  // x86-64, 4-level paging
    std::vector<Range> keep = keep_;
    std::sort(keep.begin(), keep.end(),
              [](const Range& a, const Range& b) { return a.start < b.start; });
    uint64_t at = 0;
    for (const Range& k : keep) {
      if (k.start > at) {
        Call({"munmap", SYS_munmap, {at, k.start - at}});
      }
      at = std::max(at, k.end);
    }
    if (at < kTaskSize) {
      Call({"munmap", SYS_munmap, {at, kTaskSize - at}});
    }
  }

  // One mmap per dumped VMA. Files and shared memory come from the descriptors the task
  // opened for them before it was seized (map_sources.cc).
  Status MapVmas() {
    for (const pb::Vma& v : mm_.vmas()) {
      if (IsSpecial(v.kind())) {
        continue;
      }
      if (v.kind() == pb::VMA_SYSV_SHM) {
        LZ_TRY(AttachSysv(v));
        continue;
      }
      uint64_t len = v.end() - v.start();
      uint64_t flags = MAP_FIXED | (v.shared() ? MAP_SHARED : MAP_PRIVATE);
      uint64_t fd = static_cast<uint64_t>(-1);
      uint64_t off = 0;
      if (v.madv() & pb::MADV_GROWSDOWN) {
        flags |= MAP_GROWSDOWN;
      }
      switch (v.kind()) {
        case pb::VMA_FILE_PRIVATE:
        case pb::VMA_FILE_SHARED:
        case pb::VMA_ANON_SHARED:
        case pb::VMA_MEMFD: {
          LZ_ASSIGN_OR_RETURN(int f, MapSourceFd(dump_, t_.sources, v, shm_));
          fd = static_cast<uint64_t>(f);
          off = v.pgoff();
          break;
        }
        default:
          flags |= MAP_ANONYMOUS;
          break;
      }
      Call({"mmap", SYS_mmap, {v.start(), len, v.prot(), flags, fd, off}}, v.start());
    }
    return Ok();
  }

  // A SysV segment, made again by the front-end with its id, attached where it was (read-only
  // if it was, which mprotect cannot undo), then given the protection it had.
  Status AttachSysv(const pb::Vma& v) {
    const img::ShmemImages* seg = dump_.FindShmem(static_cast<uint32_t>(v.shmid()));
    if (seg == nullptr) {
      return Invalid("SysV shared memory object " + std::to_string(v.shmid()) + " is missing");
    }
    uint64_t flags = v.shmat_flags() & SHM_RDONLY;
    Call({"shmat", SYS_shmat, {static_cast<uint64_t>(seg->meta.sysv_id()), v.start(), flags}},
         v.start());
    uint32_t given = PROT_READ | (flags & SHM_RDONLY ? 0 : PROT_WRITE);
    if (v.prot() != given) {
      Call({"mprotect", SYS_mprotect, {v.start(), v.end() - v.start(), v.prot()}});
    }
    return Ok();
  }

  // Whether `addr` lies in a VMA whose untouched pages read as zero (anonymous memory).
  bool ZeroBacked(uint64_t addr) const {
    for (const pb::Vma& v : mm_.vmas()) {
      if (v.start() <= addr && addr < v.end()) {
        return v.kind() != pb::VMA_FILE_PRIVATE && v.kind() != pb::VMA_MEMFD;
      }
    }
    return true;
  }

  // A lazy restore registers a whole VMA of a lazy kind with the uffd when the dump has a run
  // in it (where nothing was there at dump time, untouched pages fault as usual).
  bool Registered(const pb::Vma& v) const {
    if (!lazy_ || !img::VmaIsLazy(v)) {
      return false;
    }
    const img::Pagemap& pm = t_.img->pagemap.pagemap;
    size_t i = pm.LowerBound(v.start());
    return i < pm.runs().size() && pm.runs()[i].vaddr < v.end();
  }

  bool InRegistered(uint64_t addr) const {
    auto it = std::upper_bound(registered_.begin(), registered_.end(), addr,
                               [](uint64_t a, const Range& r) { return a < r.end; });
    return it != registered_.end() && it->start <= addr;
  }

  Result<const img::PageStoreReader*> Store() {
    if (!t_.store) {
      return Unexpected{t_.store.error()};
    }
    if (*t_.store == nullptr) {
      LZ_ASSIGN_OR_RETURN(*t_.store, img::OpenStoreOf(dump_.dir, t_.img->pagemap));
    }
    return t_.store->get();
  }

  bool Eager(const img::PageRun& r) const { return !(lazy_ && (r.flags & img::kPageLazy)); }

  // The eager pages outside registered VMAs, through /proc/PID/mem. Eager pages inside one
  // (each thread's hot pages, section 2 of docs/ARCHITECTURE.md) wait for FillRegistered: a
  // write here could fault in a transparent huge page, and the lazy pages around it would then
  // be present and zero, and never fault.
  Status FillPages() {
    const img::PagemapFile& pm = t_.img->pagemap;
    LZ_ASSIGN_OR_RETURN(const img::PageStoreReader* store, Store());
    LZ_ASSIGN_OR_RETURN(UniqueFd mem,
                        OpenFile("/proc/" + std::to_string(t_.pid) + "/mem", O_WRONLY));
    auto wanted = [this](const img::PageRun& r) { return Eager(r) && !InRegistered(r.vaddr); };
    constexpr uint64_t kZeroPages = 16;
    std::vector<std::byte> zeros;  // only if a run needs it: fresh pages are dear to touch
    for (const img::PageRun& r : pm.pagemap.runs()) {
      (Eager(r) ? t_.pages_eager : t_.pages_lazy) += r.nr_pages;
      // Over a file, a page that was zero at dump time must be written: the file may differ.
      if (r.present() || !wanted(r) || ZeroBacked(r.vaddr)) {
        continue;
      }
      zeros.resize(P * kZeroPages);
      for (uint64_t p = 0; p < r.nr_pages; p += kZeroPages) {
        size_t n = std::min<uint64_t>(kZeroPages, r.nr_pages - p);
        LZ_TRY(
            PwriteAll(mem.get(), std::span(zeros.data(), n * P), r.vaddr + p * P, "task memory"));
      }
    }
    return img::ReadPresentRuns(*store, pm.pagemap.runs(), wanted,
                                [&](uint64_t addr, std::span<const std::byte> bytes) {
                                  return PwriteAll(mem.get(), bytes, addr, "task memory");
                                });
  }

  // Lazy restore, once the uffd is registered: the eager pages of registered VMAs go in with
  // UFFDIO_COPY (exactly those pages), their zero runs as the zero page, so that none of them
  // waits for the daemon when the task runs.
  Status FillRegistered() {
    const img::PagemapFile& pm = t_.img->pagemap;
    auto wanted = [this](const img::PageRun& r) { return Eager(r) && InRegistered(r.vaddr); };
    // The task is stopped and its pages there are missing: anything but a whole copy is an
    // error (no one waits, so nothing is woken).
    int err = 0;
    for (const img::PageRun& r : pm.pagemap.runs()) {
      if (!r.present() && wanted(r) &&
          UffdZero(t_.uffd.get(), r.vaddr, uint64_t{r.nr_pages} * P, &err, /*wake=*/false) !=
              CopyOutcome::kCopied) {
        return Fail(err, "UFFDIO_ZEROPAGE", "at " + std::to_string(r.vaddr));
      }
    }
    LZ_ASSIGN_OR_RETURN(const img::PageStoreReader* store, Store());
    return img::ReadPresentRuns(
        *store, pm.pagemap.runs(), wanted,
        [&](uint64_t addr, std::span<const std::byte> bytes) -> Status {
          uint64_t copied = 0;
          if (UffdCopy(t_.uffd.get(), addr, bytes.data(), bytes.size(), &copied, &err,
                       /*wake=*/false) != CopyOutcome::kCopied) {
            return Fail(err, "UFFDIO_COPY", "at " + std::to_string(addr));
          }
          return Ok();
        });
  }

  void ApplyMadvise() {
    static const struct {
      uint32_t bit;
      int advice;
    } kAdvice[] = {
        {pb::MADV_DONTDUMP_FLAG, MADV_DONTDUMP},     {pb::MADV_WIPEONFORK_FLAG, MADV_WIPEONFORK},
        {pb::MADV_DONTFORK_FLAG, MADV_DONTFORK},     {pb::MADV_HUGEPAGE_FLAG, MADV_HUGEPAGE},
        {pb::MADV_NOHUGEPAGE_FLAG, MADV_NOHUGEPAGE}, {pb::MADV_MERGEABLE_FLAG, MADV_MERGEABLE}};
    for (const pb::Vma& v : mm_.vmas()) {
      if (IsSpecial(v.kind())) {
        continue;
      }
      for (const auto& a : kAdvice) {
        if (v.madv() & a.bit) {
          Call({"madvise",
                SYS_madvise,
                {v.start(), v.end() - v.start(), static_cast<uint64_t>(a.advice)}});
        }
      }
    }
  }

  // `remote_fd`: the task's userfaultfd, made in the batch. The task's copy is closed with the
  // mm fields: the daemon will hold the only one.
  Status RegisterLazy(int remote_fd) {
    LZ_ASSIGN_OR_RETURN(UniqueFd pidfd, PidfdOpen(t_.pid));
    LZ_ASSIGN_OR_RETURN(t_.uffd, PidfdGetfd(pidfd.get(), remote_fd));
    uffdio_api api{UFFD_API,
                   UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |
                       UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_THREAD_ID,
                   0};
    // Invariant: api is a uffdio_api the kernel fills in.
    if (::ioctl(t_.uffd.get(), UFFDIO_API, &api) != 0) {
      return FailErrno("UFFDIO_API");
    }
    for (const Range& r : registered_) {
      uffdio_register reg{{r.start, r.end - r.start}, UFFDIO_REGISTER_MODE_MISSING, 0};
      // Invariant: reg describes a whole anonymous private VMA of the task.
      if (::ioctl(t_.uffd.get(), UFFDIO_REGISTER, &reg) != 0) {
        return FailErrno("UFFDIO_REGISTER", "range at " + std::to_string(r.start));
      }
    }
    return Ok();
  }

  // One batch: PR_SET_MM_MAP, then the closes of every descriptor the task opened for us.
  Status SetMmFields(long remote_uffd) {
    int exe_fd = ExeSourceFd(t_.sources, mm_);
    if (exe_fd < 0) {
      return Invalid("the dump names no executable");
    }
    prctl_mm_map map{};
    map.start_code = mm_.start_code();
    map.end_code = mm_.end_code();
    map.start_data = mm_.start_data();
    map.end_data = mm_.end_data();
    map.start_brk = mm_.start_brk();
    map.brk = mm_.brk();
    map.start_stack = mm_.start_stack();
    map.arg_start = mm_.arg_start();
    map.arg_end = mm_.arg_end();
    map.env_start = mm_.env_start();
    map.env_end = mm_.env_end();
    const std::string& auxv = mm_.auxv();
    if (auxv.size() > kScratchArgs - 4096) {
      return Invalid("auxv too large");
    }
    LZ_TRY(WriteScratch(t_, 4096, auxv.data(), auxv.size()));
    map.auxv = reinterpret_cast<__u64*>(t_.scratch + 4096);
    map.auxv_size = static_cast<__u32>(auxv.size());
    map.exe_fd = static_cast<__u32>(exe_fd);
    LZ_TRY(WriteScratch(t_, 0, &map, sizeof map));
    calls_.clear();
    expect_.clear();
    Call({"prctl PR_SET_MM_MAP", SYS_prctl, {PR_SET_MM, PR_SET_MM_MAP, t_.scratch, sizeof map}});
    for (const MapSource& src : t_.sources) {
      Call({"close", SYS_close, {static_cast<uint64_t>(src.fd)}});
    }
    if (remote_uffd >= 0) {
      Call({"close", SYS_close, {static_cast<uint64_t>(remote_uffd)}});
    }
    return RunCalls();
  }

  const img::Dump& dump_;
  RestoredTask& t_;
  const pb::Mm& mm_;
  RemoteThread rt_;
  bool lazy_;
  LazyHandOver* hand_over_;
  std::vector<ProcVma> current_;
  std::vector<Range> used_;
  std::vector<Range> keep_;        // ranges UnmapLazarus must not touch
  std::vector<Range> registered_;  // VMAs a lazy restore registers with the uffd, in order
  const SharedMemory& shm_;
  std::vector<RemoteCall> calls_;                    // the batch being built
  std::vector<std::pair<size_t, uint64_t>> expect_;  // (call, the address it must return)
  std::vector<long> results_;
};

}  // namespace

Status WriteScratch(const RestoredTask& t, size_t offset, const void* data, size_t len) {
  if (offset + len > kScratchArgs) {
    return Invalid("scratch overflow");
  }
  return WriteRemote(t.pid, t.scratch + offset,
                     std::span(static_cast<const std::byte*>(data), len));
}

Status RestoreMm(const img::Dump& dump, RestoredTask& t, LazyHandOver* lazy,
                 const SharedMemory& shm) {
  MmBuilder b(dump, t, lazy, shm);
  return b.Build();
}

}  // namespace lz
