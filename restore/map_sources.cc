// The files a task's mappings come from, opened by the task itself before it is seized.
//
// Opened from outside, each would cost a remote syscall (two ptrace stops) before the mmaps
// could run; opened here, while the task is still lazarus code, every mmap, the closes and
// PR_SET_MM_MAP's exe fd go into batches. Both sides compute the same plan from the images.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "base/unique_fd.h"
#include "restore/restore_internal.h"
#include "restore/shmem_restore.h"

namespace lz {
namespace {

bool IsFile(const pb::Vma& v) {
  return v.kind() == pb::VMA_FILE_PRIVATE || v.kind() == pb::VMA_FILE_SHARED;
}

bool IsShmem(const pb::Vma& v) {
  return v.kind() == pb::VMA_ANON_SHARED || v.kind() == pb::VMA_MEMFD;
}

// A writable shared mapping needs a file open for writing; anything else maps a read-only one.
// A read-only shared mapping of a write-sealed memfd must get a read-only file: the seal, put
// back once every task has mapped, refuses a shared mapping that may become writable.
int AccessFor(const img::Dump& dump, const pb::Vma& v) {
  if (IsFile(v)) {
    return v.shared() && (v.prot() & PROT_WRITE) ? O_RDWR : O_RDONLY;
  }
  constexpr uint32_t kWriteSeals = F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;
  const img::ShmemImages* obj = dump.FindShmem(static_cast<uint32_t>(v.shmid()));
  bool sealed = obj != nullptr && (obj->meta.seals() & kWriteSeals) != 0;
  return sealed && v.shared() && !(v.prot() & PROT_WRITE) ? O_RDONLY : O_RDWR;
}

size_t MostSourcesOfATask(const img::Dump& dump) {
  size_t most = 0;
  for (const img::TaskImages& t : dump.tasks) {
    most = std::max<size_t>(most, static_cast<size_t>(t.mm.vmas_size()) + 1);  // + the exe
  }
  return most;
}

}  // namespace

int MapSourceBase(const img::Dump& dump, int floor) {
  size_t files = 0;
  for (const img::TaskImages& t : dump.tasks) {
    files += static_cast<size_t>(t.fds.files_size());
  }
  // Above everything RestoreFds keeps above the floor (shared objects, the report pipe,
  // terminal copies, the file being placed), which is at most two per open file and a few.
  return floor + static_cast<int>(2 * files) + 16;
}

int MapSourceLimit(const img::Dump& dump, int floor) {
  return MapSourceBase(dump, floor) + static_cast<int>(MostSourcesOfATask(dump)) + 1;
}

Result<std::vector<MapSource>> PlanMapSources(const img::Dump& dump, const img::TaskImages& t,
                                              const SharedMemory& shm, int base) {
  std::vector<MapSource> out;
  auto add = [&](MapSource s) {
    for (const MapSource& o : out) {
      if (o.path == s.path && o.access == s.access) {
        return;
      }
    }
    s.fd = base + static_cast<int>(out.size());
    out.push_back(std::move(s));
  };
  for (const pb::Vma& v : t.mm.vmas()) {
    if (IsFile(v)) {
      add({v.path(), AccessFor(dump, v), -1, true, v.file_size(), v.file_mtime_ns()});
    } else if (IsShmem(v)) {
      LZ_ASSIGN_OR_RETURN(std::string path, shm.PathOf(static_cast<uint32_t>(v.shmid())));
      add({path, AccessFor(dump, v), -1, false, 0, 0});
    }
  }
  if (!t.mm.exe_path().empty()) {
    add({t.mm.exe_path(), O_RDONLY, -1, false, 0, 0});
  }
  return out;
}

Result<int> MapSourceFd(const img::Dump& dump, const std::vector<MapSource>& sources,
                        const pb::Vma& v, const SharedMemory& shm) {
  std::string path = v.path();
  if (IsShmem(v)) {
    LZ_ASSIGN_OR_RETURN(path, shm.PathOf(static_cast<uint32_t>(v.shmid())));
  }
  int access = AccessFor(dump, v);
  for (const MapSource& s : sources) {
    if (s.path == path && s.access == access) {
      return s.fd;
    }
  }
  return Invalid("no planned file for the mapping of " + v.path());
}

int ExeSourceFd(const std::vector<MapSource>& sources, const pb::Mm& mm) {
  for (const MapSource& s : sources) {
    if (s.path == mm.exe_path() && s.access == O_RDONLY) {
      return s.fd;
    }
  }
  return -1;
}

Status OpenMapSources(const std::vector<MapSource>& sources) {
  for (const MapSource& s : sources) {
    UniqueFd fd(::open(s.path.c_str(), s.access | O_CLOEXEC));
    if (!fd.valid()) {
      return FailErrno(s.check ? "mapped file" : "open", s.path);
    }
    if (s.check) {
      struct stat st;
      if (::fstat(fd.get(), &st) != 0) {
        return FailErrno("fstat", s.path);
      }
      int64_t mtime = st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
      if (static_cast<uint64_t>(st.st_size) != s.size || mtime != s.mtime_ns) {
        return Invalid("mapped file " + s.path + " changed since the dump (size or mtime)");
      }
    }
    // The planned number must be free: dup3 would silently close whatever sat there.
    if (::fcntl(s.fd, F_GETFD) >= 0) {
      return Invalid("fd " + std::to_string(s.fd) + " planned for " + s.path + " is taken");
    }
    if (::dup3(fd.get(), s.fd, O_CLOEXEC) < 0) {
      return FailErrno("dup3", "fd " + std::to_string(s.fd) + " for " + s.path);
    }
  }
  return Ok();
}

}  // namespace lz
