#include "images/image_dir.h"

#include <unistd.h>

#include "base/file_util.h"
#include "images/image_file.h"

namespace lz::img {

std::string CorePath(const std::string& dir, pid_t pid) {
  return dir + "/core-" + std::to_string(pid) + ".img";
}
std::string MmPath(const std::string& dir, pid_t pid) {
  return dir + "/mm-" + std::to_string(pid) + ".img";
}
std::string FdsPath(const std::string& dir, pid_t pid) {
  return dir + "/fds-" + std::to_string(pid) + ".img";
}
std::string PagemapPath(const std::string& dir, pid_t pid) {
  return dir + "/pagemap-" + std::to_string(pid) + ".img";
}
std::string PagesName(pid_t pid) { return "pages-" + std::to_string(pid) + ".img"; }
std::string ShmemPagemapName(uint32_t id) { return "pagemap-shmem-" + std::to_string(id) + ".img"; }
std::string ShmemPagesName(uint32_t id) { return "pages-shmem-" + std::to_string(id) + ".img"; }

bool VmaIsLazy(const pb::Vma& v) {
  return v.kind() == pb::VMA_ANON_PRIVATE || v.kind() == pb::VMA_HEAP || v.kind() == pb::VMA_STACK;
}

const ShmemImages* Dump::FindShmem(uint32_t id) const {
  for (const ShmemImages& s : shmem) {
    if (s.meta.id() == id) {
      return &s;
    }
  }
  return nullptr;
}

int FirstFdOf(const pb::FdTable& table, uint32_t file_id) {
  for (const pb::Fd& fd : table.fds()) {
    if (fd.file_id() == file_id) {
      return fd.fd();
    }
  }
  return -1;
}

Result<pb::Inventory> ReadInventory(const std::string& dir) {
  if (::access((dir + "/" + kIncompleteMarker).c_str(), F_OK) == 0) {
    return Invalid(dir + ": the dump in this directory did not complete; refusing to use it");
  }
  pb::Inventory inv;
  std::string path = dir + "/" + kInventoryFile;
  if (::access(path.c_str(), F_OK) != 0) {
    return Fail(errno, "no dump in " + dir, "(" + std::string(kInventoryFile) + ")");
  }
  LZ_TRY(ReadSingleMessage(path, ImageKind::kInventory, &inv));
  if (inv.pids_size() == 0 || inv.pids(0) != inv.root_pid()) {
    return Invalid(path + ": task list does not start with the root pid");
  }
  return inv;
}

namespace {

Status CheckShmemRef(const Dump& d, const std::string& image, uint64_t id, pb::ShmemKind kind) {
  const ShmemImages* s = id > UINT32_MAX ? nullptr : d.FindShmem(static_cast<uint32_t>(id));
  if (s == nullptr || s->meta.kind() != kind) {
    return Invalid(image + ": refers to shared memory object " + std::to_string(id) + ", which " +
                   kShmemFile + " does not hold");
  }
  return Ok();
}

Status CheckTask(const Dump& d, pid_t pid, const TaskImages& t) {
  const std::string& dir = d.dir;
  std::string core = CorePath(dir, pid);
  if (t.core.pid() != pid) {
    return Invalid(core + ": holds pid " + std::to_string(t.core.pid()));
  }
  if (t.core.threads_size() == 0 || t.core.threads(0).tid() != pid) {
    return Invalid(core + ": main thread missing");
  }
  uint64_t prev_end = 0;
  for (const pb::Vma& v : t.mm.vmas()) {
    if (v.start() >= v.end() || v.start() % kPageSize || v.end() % kPageSize ||
        v.start() < prev_end) {
      return Invalid(MmPath(dir, pid) + ": VMAs unsorted, empty or overlapping at " +
                     std::to_string(v.start()));
    }
    prev_end = v.end();
    if (v.kind() == pb::VMA_ANON_SHARED || v.kind() == pb::VMA_MEMFD ||
        v.kind() == pb::VMA_SYSV_SHM) {
      LZ_TRY(CheckShmemRef(d, MmPath(dir, pid), v.shmid(),
                           v.kind() == pb::VMA_MEMFD      ? pb::SHMEM_MEMFD
                           : v.kind() == pb::VMA_SYSV_SHM ? pb::SHMEM_SYSV
                                                          : pb::SHMEM_ANON));
    }
  }
  // Every run lies inside one VMA: restore writes and the daemon copies exactly there.
  const auto& vmas = t.mm.vmas();
  int vi = 0;
  for (const PageRun& r : t.pagemap.pagemap.runs()) {
    while (vi < vmas.size() && vmas[vi].end() <= r.vaddr) {
      vi++;
    }
    if (vi == vmas.size() || r.vaddr < vmas[vi].start() || r.end() > vmas[vi].end()) {
      return Invalid(PagemapPath(dir, pid) + ": pages at " + std::to_string(r.vaddr) +
                     " lie outside the dumped VMAs");
    }
  }
  for (const pb::OpenFile& f : t.fds.files()) {
    if (!f.content_file().empty() && !IsPlainFileName(f.content_file())) {
      return Invalid(FdsPath(dir, pid) + ": content file '" + f.content_file() +
                     "' is not a plain file name");
    }
    if (f.type() == pb::FILE_MEMFD) {
      LZ_TRY(CheckShmemRef(d, FdsPath(dir, pid), f.shmem_id(), pb::SHMEM_MEMFD));
    }
  }
  return Ok();
}

// Shared memory objects: unique ids, content inside the object.
Result<std::vector<ShmemImages>> LoadShmem(const std::string& dir) {
  std::string path = dir + "/" + kShmemFile;
  pb::ShmemTable table;
  LZ_TRY(ReadSingleMessage(path, ImageKind::kShmem, &table));
  std::vector<ShmemImages> out;
  for (const pb::ShmemObject& o : table.objects()) {
    std::string what = path + ": object " + std::to_string(o.id());
    for (const ShmemImages& prev : out) {
      if (prev.meta.id() == o.id()) {
        return Invalid(what + " appears twice");
      }
    }
    bool anon = o.kind() == pb::SHMEM_ANON;
    bool sysv = o.kind() == pb::SHMEM_SYSV;
    if (o.id() == 0 || o.size() > (uint64_t{1} << 46) ||
        (anon && (o.size() == 0 || o.size() % kPageSize != 0)) ||
        (sysv && (o.size() == 0 || o.sysv_id() < 0 || o.mode() > 0777))) {
      return Invalid(what + " has a bad id, size or mode");
    }
    for (const ShmemImages& prev : out) {
      if (sysv && prev.meta.kind() == pb::SHMEM_SYSV && prev.meta.sysv_id() == o.sysv_id()) {
        return Invalid(what + ": SysV id " + std::to_string(o.sysv_id()) + " appears twice");
      }
    }
    if (!IsPlainFileName(o.pagemap_file())) {
      return Invalid(what + ": pagemap '" + o.pagemap_file() + "' is not a plain file name");
    }
    ShmemImages s;
    s.meta = o;
    LZ_ASSIGN_OR_RETURN(s.pagemap, ReadPagemap(dir + "/" + o.pagemap_file()));
    auto runs = s.pagemap.pagemap.runs();
    if (!runs.empty() && runs.back().end() > (o.size() + kPageSize - 1) / kPageSize * kPageSize) {
      return Invalid(what + ": content lies beyond its size");
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

Result<Dump> LoadDump(const std::string& dir) {
  Dump d;
  d.dir = dir;
  LZ_ASSIGN_OR_RETURN(d.inventory, ReadInventory(dir));
  LZ_ASSIGN_OR_RETURN(d.shmem, LoadShmem(dir));
  for (int32_t pid : d.inventory.pids()) {
    TaskImages t;
    LZ_TRY(ReadSingleMessage(CorePath(dir, pid), ImageKind::kCore, &t.core));
    if (t.core.zombie()) {
      if (t.core.pid() != pid || pid == d.inventory.root_pid()) {
        return Invalid(CorePath(dir, pid) + ": a zombie must be a child in the tree");
      }
      d.tasks.push_back(std::move(t));
      continue;
    }
    LZ_TRY(ReadSingleMessage(MmPath(dir, pid), ImageKind::kMm, &t.mm));
    LZ_TRY(ReadSingleMessage(FdsPath(dir, pid), ImageKind::kFds, &t.fds));
    LZ_ASSIGN_OR_RETURN(t.pagemap, ReadPagemap(PagemapPath(dir, pid)));
    LZ_TRY(CheckTask(d, pid, t));
    d.tasks.push_back(std::move(t));
  }
  return d;
}

Status MarkIncomplete(const std::string& dir) {
  return WriteFileAtomically(dir + "/" + kIncompleteMarker, "dump in progress or failed\n");
}

Status ClearIncomplete(const std::string& dir) {
  std::string path = dir + "/" + kIncompleteMarker;
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return FailErrno("unlink", path);
  }
  return Ok();
}

}  // namespace lz::img
