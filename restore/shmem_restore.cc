#include "restore/shmem_restore.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file_util.h"
#include "images/page_store.h"

namespace lz {
namespace {

// Anonymous shared memory is what MAP_SHARED | MAP_ANONYMOUS makes ("/dev/zero (deleted)" in
// the maps, as the dumped task had it, where a memfd would say "/memfd:"): map it here, keep
// the file behind the mapping, drop the mapping.
Result<UniqueFd> CreateAnon(uint64_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return FailErrno("mmap shared memory", std::to_string(size) + " bytes");
  }
  auto start = reinterpret_cast<uint64_t>(p);
  char path[64];
  snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", start, start + size);
  auto fd = OpenFile(path, O_RDWR);
  ::munmap(p, size);
  return fd;
}

Result<UniqueFd> CreateMemfd(const pb::ShmemObject& o) {
  // MFD_EXEC says outright what the dumped file allowed; the mode below narrows it. Kernels
  // before 6.3 do not know the flag.
  constexpr unsigned kMfdExec = 0x10;
  int fd = ::memfd_create(o.name().c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING | kMfdExec);
  if (fd < 0 && errno == EINVAL) {
    fd = ::memfd_create(o.name().c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  }
  if (fd < 0) {
    return FailErrno("memfd_create", o.name());
  }
  UniqueFd out(fd);
  if (::ftruncate(fd, static_cast<off_t>(o.size())) != 0) {
    return FailErrno("ftruncate memfd", o.name());
  }
  if (::fchmod(fd, o.mode() & 07777) != 0) {
    return FailErrno("fchmod memfd", o.name());
  }
  return out;
}

}  // namespace

Result<SharedMemory> SharedMemory::Create(const img::Dump& dump) {
  SharedMemory out;
  out.owner_ = ::getpid();
  for (const img::ShmemImages& s : dump.shmem) {
    const pb::ShmemObject& o = s.meta;
    auto fd = o.kind() == pb::SHMEM_ANON ? CreateAnon(o.size()) : CreateMemfd(o);
    if (!fd) {
      return Unexpected{fd.error().Wrap("shared memory object " + std::to_string(o.id()))};
    }
    LZ_ASSIGN_OR_RETURN(auto store, img::OpenStoreOf(dump.dir, s.pagemap));
    // Zero runs need nothing: a new object reads as zero.
    LZ_TRY(img::ReadPresentRuns(
        *store, s.pagemap.pagemap.runs(), [](const img::PageRun&) { return true; },
        [&](uint64_t off, std::span<const std::byte> bytes) {
          // A memfd's last page may be partly past its size: writing it would grow the file.
          uint64_t end = std::min<uint64_t>(off + bytes.size(), o.size());
          return end <= off ? Ok()
                            : PwriteAll(fd->get(), bytes.first(end - off), off, "shared memory");
        }));
    out.fds_.emplace(o.id(), std::move(*fd));
  }
  return out;
}

Result<std::string> SharedMemory::PathOf(uint32_t id) const {
  auto it = fds_.find(id);
  if (it == fds_.end()) {
    return Invalid("shared memory object " + std::to_string(id) + " was not created");
  }
  return "/proc/" + std::to_string(owner_) + "/fd/" + std::to_string(it->second.get());
}

Status SharedMemory::Seal(const img::Dump& dump) {
  for (const img::ShmemImages& s : dump.shmem) {
    uint32_t seals = s.meta.seals();
    if (s.meta.kind() != pb::SHMEM_MEMFD || seals == 0) {
      continue;
    }
    if (::fcntl(fds_.at(s.meta.id()).get(), F_ADD_SEALS, seals) != 0) {
      return FailErrno("F_ADD_SEALS", "memfd " + s.meta.name());
    }
  }
  return Ok();
}

}  // namespace lz
