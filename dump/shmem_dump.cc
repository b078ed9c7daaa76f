// ShmemCollector: anonymous shared memory, memfds and SysV segments, saved once for the whole
// tree.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "base/file_util.h"
#include "base/proc.h"
#include "dump/task_dump.h"
#include "images/image_dir.h"
#include "images/image_file.h"

namespace lz {
namespace {

constexpr uint64_t P = img::kPageSize;
constexpr size_t kBatchBytes = 2 << 20;

// "/memfd:NAME (deleted)" -> "NAME"; "/dev/shm/sem.X (deleted)" -> "sem.X"
std::string MemfdName(const std::string& path) {
  std::string s = path.rfind("/memfd:", 0) == 0 ? path.substr(7) : path.substr(path.rfind('/') + 1);
  return s.ends_with(" (deleted)") ? s.substr(0, s.size() - 10) : s;
}

std::string MapFilesPath(pid_t pid, const pb::Vma& v) {
  char range[64];
  snprintf(range, sizeof range, "map_files/%lx-%lx", v.start(), v.end());
  return ProcPath(pid, range);
}

// Reads the object's data (SEEK_DATA skips the holes, which read as zero anyway) into a page
// store, with offsets as the runs' addresses.
Status SaveContent(int fd, uint64_t size, img::PageStoreWriter& store, img::Pagemap& pm,
                   MemoryStats& stats) {
  std::vector<std::byte> buf(kBatchBytes);
  bool new_range = true;
  for (off_t at = 0; static_cast<uint64_t>(at) < size;) {
    off_t data = ::lseek(fd, at, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) {
        break;  // nothing but holes from here
      }
      return FailErrno("lseek SEEK_DATA");
    }
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) {
      return FailErrno("lseek SEEK_HOLE");
    }
    data = data / P * P;
    uint64_t end = std::min<uint64_t>((hole + P - 1) / P * P, (size + P - 1) / P * P);
    for (uint64_t off = data; off < end;) {
      size_t n = std::min<uint64_t>(kBatchBytes, end - off);
      auto out = std::span(buf.data(), n);
      LZ_ASSIGN_OR_RETURN(size_t got, PreadFull(fd, out, off));
      std::fill(buf.begin() + got, buf.begin() + n, std::byte{0});  // the tail of the last page
      stats.pages_present += n / P;
      LZ_TRY(AppendPageRuns(off, out, 0, new_range, store, pm, stats));
      new_range = false;
      off += n;
    }
    at = static_cast<off_t>(end);
  }
  stats.pages_scanned += (size + P - 1) / P;
  return Ok();
}

}  // namespace

Result<uint32_t> ShmemCollector::IdOf(uint64_t dev, uint64_t ino, pb::ShmemKind kind,
                                      const std::string& name, const std::string& source) {
  for (const Object& o : objects_) {
    // A SysV segment's inode number is its id, on the mount where memfds and shared anonymous
    // memory number theirs from 1: the two never name the same object.
    bool same_space = (o.meta.kind() == pb::SHMEM_SYSV) == (kind == pb::SHMEM_SYSV);
    if (o.meta.dev() == dev && o.meta.ino() == ino && same_space) {
      if (o.meta.kind() != kind) {
        return Invalid("shared memory inode " + std::to_string(ino) + " is mapped as two kinds");
      }
      return o.meta.id();
    }
  }
  Object o;
  o.meta.set_id(static_cast<uint32_t>(objects_.size() + 1));
  o.meta.set_kind(kind);
  o.meta.set_dev(dev);
  o.meta.set_ino(ino);
  o.meta.set_name(name);
  o.source = source;
  objects_.push_back(std::move(o));
  return objects_.back().meta.id();
}

Status ShmemCollector::Add(pid_t pid, pb::Mm& mm, pb::FdTable& fds) {
  bool sysv_seen = false;
  for (pb::Vma& v : *mm.mutable_vmas()) {
    if (v.kind() == pb::VMA_SYSV_SHM) {
      // shmat maps a segment whole; a part left after munmap or mremap could not be attached.
      if (v.pgoff() != 0 || v.end() - v.start() != (v.file_size() + P - 1) / P * P) {
        return Invalid("a partial mapping of SysV shared memory segment " +
                       std::to_string(v.ino()) + " is not supported");
      }
      if (!sysv_seen) {
        LZ_TRY(CheckSysvNamespace(pid));  // once a task
        sysv_seen = true;
      }
      LZ_ASSIGN_OR_RETURN(uint32_t id,
                          IdOf(v.dev(), v.ino(), pb::SHMEM_SYSV, "", MapFilesPath(pid, v)));
      v.set_shmid(id);
      objects_[id - 1].sysv_attached++;
      continue;
    }
    if (v.kind() != pb::VMA_ANON_SHARED && v.kind() != pb::VMA_MEMFD) {
      continue;
    }
    bool memfd = v.kind() == pb::VMA_MEMFD;
    LZ_ASSIGN_OR_RETURN(uint32_t id,
                        IdOf(v.dev(), v.ino(), memfd ? pb::SHMEM_MEMFD : pb::SHMEM_ANON,
                             memfd ? MemfdName(v.path()) : "", MapFilesPath(pid, v)));
    v.set_shmid(id);
    LZ_TRY(CheckNotAlsoOpen(v.dev(), v.ino(), v.path()));
  }
  for (pb::OpenFile& f : *fds.mutable_files()) {
    if (f.type() == pb::FILE_REG && f.deleted()) {
      deleted_open_.insert({f.dev(), f.ino()});
      LZ_TRY(CheckNotAlsoOpen(f.dev(), f.ino(), f.path()));
    }
    if (f.type() != pb::FILE_MEMFD) {
      continue;
    }
    int fd = img::FirstFdOf(fds, f.id());
    LZ_ASSIGN_OR_RETURN(uint32_t id, IdOf(f.dev(), f.ino(), pb::SHMEM_MEMFD, MemfdName(f.path()),
                                          ProcPath(pid, "fd/" + std::to_string(fd))));
    f.set_shmem_id(id);
  }
  return Ok();
}

// /proc/sysvipc/shm, read at Write, lists the segments of lazarus's own IPC namespace.
Status ShmemCollector::CheckSysvNamespace(pid_t pid) {
  LZ_ASSIGN_OR_RETURN(std::string theirs, ReadLink(ProcPath(pid, "ns/ipc")));
  LZ_ASSIGN_OR_RETURN(std::string ours, ReadLink("/proc/self/ns/ipc"));
  if (theirs != ours) {
    return Invalid("SysV shared memory of another IPC namespace (" + theirs + ") is not supported");
  }
  return Ok();
}

// A deleted file both mapped (made a memfd above) and open (restored as an unlinked file of
// its own filesystem) would come back as two objects: writes through one would not show
// through the other.
Status ShmemCollector::CheckNotAlsoOpen(uint64_t dev, uint64_t ino, const std::string& path) {
  if (!deleted_open_.contains({dev, ino})) {
    return Ok();
  }
  for (const Object& o : objects_) {
    if (o.meta.dev() == dev && o.meta.ino() == ino) {
      return Invalid(path + ": a deleted file both mapped and open is not supported");
    }
  }
  return Ok();
}

namespace {

// Key, id, owner and mode of the SysV segment behind object `o` (its inode number is the id),
// which the tree must hold alone: attached elsewhere too, it could not be made again.
Status DescribeSysv(const std::vector<SysvShm>& segments, pb::ShmemObject& o, uint32_t attached,
                    uint64_t size) {
  for (const SysvShm& s : segments) {
    if (static_cast<uint64_t>(s.shmid) == o.ino()) {
      if (s.size != size) {
        return Invalid("SysV shared memory segment " + std::to_string(s.shmid) +
                       " changed while dumped");
      }
      if (s.nattch > attached) {
        return Invalid("SysV shared memory segment " + std::to_string(s.shmid) +
                       " is also attached outside the dumped tree (" +
                       std::to_string(s.nattch - attached) + " of " + std::to_string(s.nattch) +
                       " attachments)");
      }
      o.set_sysv_key(s.key);
      o.set_sysv_id(s.shmid);
      o.set_mode(s.perms & 0777);
      o.set_sysv_uid(s.uid);
      o.set_sysv_gid(s.gid);
      o.set_sysv_cuid(s.cuid);
      o.set_sysv_cgid(s.cgid);
      o.set_sysv_removed((s.perms & SHM_DEST) != 0);
      o.set_sysv_locked((s.perms & SHM_LOCKED) != 0);
      return Ok();
    }
  }
  return Invalid("SysV shared memory segment " + std::to_string(o.ino()) +
                 " is not in /proc/sysvipc/shm (another IPC namespace?)");
}

std::string Describe(const pb::ShmemObject& o) {
  switch (o.kind()) {
    case pb::SHMEM_MEMFD:
      return "memfd " + o.name();
    case pb::SHMEM_SYSV:
      return "SysV shared memory segment " + std::to_string(o.ino());
    default:
      return "shared anonymous memory";
  }
}

}  // namespace

Status ShmemCollector::Write(const std::string& dir, const img::PageStoreOptions& opts,
                             MemoryStats& stats) {
  pb::ShmemTable table;
  std::vector<SysvShm> segments;
  for (Object& o : objects_) {
    if (o.meta.kind() == pb::SHMEM_SYSV && segments.empty()) {
      LZ_ASSIGN_OR_RETURN(std::string text, ReadFileToString("/proc/sysvipc/shm"));
      LZ_ASSIGN_OR_RETURN(segments, ParseSysvShm(text));
    }
    std::string what = Describe(o.meta);
    LZ_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(o.source, O_RDONLY));
    struct stat st;
    struct statfs sfs;
    if (::fstat(fd.get(), &st) != 0 || ::fstatfs(fd.get(), &sfs) != 0) {
      return FailErrno("stat", what);
    }
    if (sfs.f_type == HUGETLBFS_MAGIC) {
      return Invalid(what + " is on hugetlbfs, which is not supported yet");
    }
    o.meta.set_size(st.st_size);
    if (o.meta.kind() == pb::SHMEM_SYSV) {
      LZ_TRY(DescribeSysv(segments, o.meta, o.sysv_attached, st.st_size));
    }
    if (o.meta.kind() == pb::SHMEM_MEMFD) {
      o.meta.set_mode(st.st_mode & 07777);
      int seals = ::fcntl(fd.get(), F_GET_SEALS);
      if (seals < 0) {
        return FailErrno("F_GET_SEALS", what);
      }
      o.meta.set_seals(static_cast<uint32_t>(seals));
    }
    img::PagemapFile pm;
    pm.pages_file = img::ShmemPagesName(o.meta.id());
    pm.chunk_pages = opts.chunk_pages;
    LZ_ASSIGN_OR_RETURN(auto store, img::PageStoreWriter::Create(dir + "/" + pm.pages_file, opts));
    LZ_TRY_CTX(SaveContent(fd.get(), st.st_size, *store, pm.pagemap, stats), "dump " + what);
    LZ_ASSIGN_OR_RETURN(img::PageStoreStats ps, store->Finish());
    stats.bytes_in += ps.bytes_in;
    stats.bytes_out += ps.bytes_out;
    o.meta.set_pagemap_file(img::ShmemPagemapName(o.meta.id()));
    LZ_TRY(img::WritePagemap(dir + "/" + o.meta.pagemap_file(), pm));
    *table.add_objects() = o.meta;
  }
  return img::WriteSingleMessage(dir + "/" + img::kShmemFile, img::ImageKind::kShmem, table);
}

}  // namespace lz
