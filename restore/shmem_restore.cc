#include "restore/shmem_restore.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <utility>

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

std::string SysvName(const pb::ShmemObject& o) {
  char key[16];
  snprintf(key, sizeof key, "%#x", static_cast<uint32_t>(o.sysv_key()));
  return "SysV shared memory segment " + std::to_string(o.sysv_id()) + " (key " + key + ")";
}

// Whether segment `o` can be made again: its id free, or held by the dumped tree's own segment
// left behind by the dump (same key and size, nobody attached: `*leftover`), and its key free.
// Checked for every segment before any is touched.
Status CheckSysvFree(const pb::ShmemObject& o, bool* leftover) {
  *leftover = false;
  shmid_ds ds{};
  if (::shmctl(o.sysv_id(), IPC_STAT, &ds) == 0) {
    bool ours = ds.shm_perm.__key == o.sysv_key() && ds.shm_segsz == o.size();
    if (!ours || ds.shm_nattch != 0) {
      return Invalid(SysvName(o) + ": the id is taken by " +
                     (ours ? "the same segment, attached by " + std::to_string(ds.shm_nattch) +
                                 (ds.shm_nattch == 1 ? " process" : " processes")
                           : std::string("another segment")));
    }
    *leftover = true;
  } else if (errno != EINVAL && errno != EIDRM) {
    return FailErrno("shmctl IPC_STAT", SysvName(o));
  }
  int holder = o.sysv_key() == IPC_PRIVATE ? -1 : ::shmget(o.sysv_key(), 0, 0);
  if (holder >= 0 && holder != o.sysv_id()) {
    return Invalid(SysvName(o) + ": another segment (" + std::to_string(holder) +
                   ") has its key now");
  }
  return Ok();
}

// The next segment made gets `id` (-1: any). Needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN;
// the kernel forgets it once a segment is made.
Status SetNextShmId(int id) {
  LZ_ASSIGN_OR_RETURN(UniqueFd next, OpenFile("/proc/sys/kernel/shm_next_id", O_WRONLY));
  return WriteAll(next.get(), std::to_string(id));
}

// Takes the creator's effective ids for as long as it lives: shmget records them as the
// segment's cuid and cgid, which nothing can change afterwards.
class AsCreator {
 public:
  AsCreator(uid_t uid, gid_t gid) : uid_(::geteuid()), gid_(::getegid()) {
    if (gid != gid_ && ::setegid(gid) != 0) {
      err_ = errno;
      return;
    }
    if (uid != uid_ && ::seteuid(uid) != 0) {
      err_ = errno;
    }
  }
  ~AsCreator() {
    (void)!::seteuid(uid_);  // first: setegid needs the privilege back
    (void)!::setegid(gid_);
  }
  int error() const { return err_; }

 private:
  uid_t uid_;
  gid_t gid_;
  int err_ = 0;
};

// Makes segment `o` again with its key and id (the tasks hold the id: postgres removes its
// segment by it when it stops), owner and mode; its id goes into `made` at once, so that a
// failure from here on removes it. Returns it attached here, to be filled.
Result<std::byte*> MakeSysvSegment(const pb::ShmemObject& o, std::vector<int>& made) {
  LZ_TRY_CTX(SetNextShmId(o.sysv_id()), "set shm_next_id");
  int id = -1;
  int err = 0;
  {
    AsCreator creator(o.sysv_cuid(), o.sysv_cgid());
    err = creator.error();
    if (err == 0) {
      id = ::shmget(o.sysv_key(), o.size(), IPC_CREAT | IPC_EXCL | static_cast<int>(o.mode()));
      err = id < 0 ? errno : 0;  // before the ids go back, which may set errno
    }
  }
  if (id < 0) {
    (void)SetNextShmId(-1);  // not consumed: the next segment anyone makes would get it
    return Fail(err, "shmget", SysvName(o));
  }
  made.push_back(id);
  if (id != o.sysv_id()) {
    return Invalid(SysvName(o) + ": the kernel gave id " + std::to_string(id));
  }
  shmid_ds ds{};
  ds.shm_perm.uid = o.sysv_uid();
  ds.shm_perm.gid = o.sysv_gid();
  ds.shm_perm.mode = static_cast<unsigned short>(o.mode());
  if (::shmctl(id, IPC_SET, &ds) != 0) {
    return FailErrno("shmctl IPC_SET", SysvName(o));
  }
  // Locked in memory again (needs CAP_IPC_LOCK, which the restore has as root).
  if (o.sysv_locked() && ::shmctl(id, SHM_LOCK, nullptr) != 0) {
    return FailErrno("shmctl SHM_LOCK", SysvName(o));
  }
  void* at = ::shmat(id, nullptr, 0);
  if (at == reinterpret_cast<void*>(-1)) {
    return FailErrno("shmat", SysvName(o));
  }
  return static_cast<std::byte*>(at);
}

// Hands `put` the stored content of object `s`, offset by offset. Zero runs need nothing: a
// new object reads as zero. The last page may reach past the object's size (a memfd's: writing
// it would grow the file; a SysV segment's: past it there is no page): cut at the size.
Status ForEachStoredPart(const img::Dump& dump, const img::ShmemImages& s,
                         const std::function<Status(uint64_t, std::span<const std::byte>)>& put) {
  LZ_ASSIGN_OR_RETURN(auto store, img::OpenStoreOf(dump.dir, s.pagemap));
  return img::ReadPresentRuns(
      *store, s.pagemap.pagemap.runs(), [](const img::PageRun&) { return true; },
      [&](uint64_t off, std::span<const std::byte> bytes) {
        uint64_t end = std::min<uint64_t>(off + bytes.size(), s.meta.size());
        return end <= off ? Ok() : put(off, bytes.first(end - off));
      });
}

}  // namespace

Status SharedMemory::CreateSysv(const img::Dump& dump) {
  std::vector<const pb::ShmemObject*> leftovers;
  for (const img::ShmemImages& s : dump.shmem) {
    bool leftover = false;
    if (s.meta.kind() == pb::SHMEM_SYSV) {
      LZ_TRY(CheckSysvFree(s.meta, &leftover));
    }
    if (leftover) {
      leftovers.push_back(&s.meta);
    }
  }
  for (const pb::ShmemObject* o : leftovers) {
    if (::shmctl(o->sysv_id(), IPC_RMID, nullptr) != 0) {
      return FailErrno("shmctl IPC_RMID", SysvName(*o));
    }
  }
  for (const img::ShmemImages& s : dump.shmem) {
    if (s.meta.kind() != pb::SHMEM_SYSV) {
      continue;
    }
    LZ_ASSIGN_OR_RETURN(std::byte * at, MakeSysvSegment(s.meta, sysv_.ids));
    // Held until every task has attached its own (Seal): with kernel.shm_rmid_forced, a
    // segment nobody holds is gone.
    sysv_.held.push_back(at);
    LZ_TRY(ForEachStoredPart(dump, s, [at](uint64_t off, std::span<const std::byte> bytes) {
      std::memcpy(at + off, bytes.data(), bytes.size());
      return Ok();
    }));
  }
  return Ok();
}

Result<SharedMemory> SharedMemory::Create(const img::Dump& dump) {
  SharedMemory out;
  out.owner_ = ::getpid();
  LZ_TRY(out.CreateSysv(dump));  // the tasks attach each by its id
  for (const img::ShmemImages& s : dump.shmem) {
    const pb::ShmemObject& o = s.meta;
    if (o.kind() == pb::SHMEM_SYSV) {
      continue;
    }
    auto fd = o.kind() == pb::SHMEM_ANON ? CreateAnon(o.size()) : CreateMemfd(o);
    if (!fd) {
      return Unexpected{fd.error().Wrap("shared memory object " + std::to_string(o.id()))};
    }
    LZ_TRY(ForEachStoredPart(dump, s, [&](uint64_t off, std::span<const std::byte> bytes) {
      return PwriteAll(fd->get(), bytes, off, "shared memory");
    }));
    out.fds_.emplace(o.id(), std::move(*fd));
  }
  return out;
}

void SharedMemory::SysvSegments::Detach() {
  for (void* at : held) {
    ::shmdt(at);
  }
  held.clear();
}

SharedMemory::SysvSegments::~SysvSegments() {
  Detach();
  for (int id : ids) {
    ::shmctl(id, IPC_RMID, nullptr);
  }
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
    if (s.meta.kind() == pb::SHMEM_SYSV && s.meta.sysv_removed() &&
        ::shmctl(s.meta.sysv_id(), IPC_RMID, nullptr) != 0) {
      return FailErrno("shmctl IPC_RMID", SysvName(s.meta));
    }
    uint32_t seals = s.meta.seals();
    if (s.meta.kind() != pb::SHMEM_MEMFD || seals == 0) {
      continue;
    }
    if (::fcntl(fds_.at(s.meta.id()).get(), F_ADD_SEALS, seals) != 0) {
      return FailErrno("F_ADD_SEALS", "memfd " + s.meta.name());
    }
  }
  sysv_.Detach();  // every task holds its own now
  return Ok();
}

}  // namespace lz
