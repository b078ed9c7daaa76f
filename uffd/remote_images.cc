#include "uffd/remote_images.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/file_util.h"
#include "base/log.h"
#include "images/format.h"
#include "images/image_dir.h"
#include "images/pagemap.h"

namespace lz {
namespace {

// Bytes of a remote store already fetched: its header, footer and index.
struct FetchedRange {
  uint64_t offset;
  std::vector<std::byte> bytes;
};

Status CopyRange(PageServerClient& c, pid_t pid, int fd, uint64_t off, uint64_t len) {
  std::vector<std::byte> buf(len);
  LZ_TRY(c.ReadAt(pid, off, buf));
  return PwriteAll(fd, buf, off, "partial page store");
}

// Same size and layout as the remote store; only the header, the index and the footer (as
// fetched to open the store) and the eager chunks are filled in (the rest is a hole the
// restore never reads).
Status WritePartialStore(PageServerClient& c, pid_t pid, const img::PageStoreReader& store,
                         const std::vector<FetchedRange>& fetched, const img::PagemapFile& pm,
                         const std::string& path) {
  std::string tmp = path + ".tmp";
  LZ_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600));
  if (::ftruncate(fd.get(), static_cast<off_t>(store.file_size())) != 0) {
    return FailErrno("ftruncate", tmp);
  }
  for (const FetchedRange& r : fetched) {
    LZ_TRY(PwriteAll(fd.get(), r.bytes, r.offset, "partial page store"));
  }
  for (uint64_t k : img::EagerChunks(pm)) {
    if (k >= store.chunk_count()) {
      return Invalid(path, "pagemap refers to chunk " + std::to_string(k) + " beyond the store");
    }
    const img::ChunkIndexEntry& e = store.chunk(k);
    LZ_TRY(CopyRange(c, pid, fd.get(), e.offset, e.stored_size));
  }
  LZ_TRY(std::move(fd).Close());
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return FailErrno("rename", tmp);
  }
  return Ok();
}

}  // namespace

Result<RemoteImages> FetchRemoteImages(PageServerClient& client, const std::string& dir) {
  LZ_ASSIGN_OR_RETURN(pb::Inventory inventory, img::ReadInventory(dir));
  RemoteImages out;
  for (int32_t pid : inventory.pids()) {
    std::string pagemap_path = img::PagemapPath(dir, pid);
    if (::access(pagemap_path.c_str(), F_OK) != 0) {
      continue;  // a zombie: no memory
    }
    LZ_ASSIGN_OR_RETURN(img::PagemapFile pm, img::ReadPagemap(pagemap_path));
    LZ_ASSIGN_OR_RETURN(uint64_t size, client.Stat(pid));
    std::string name = client.where() + ":" + pm.pages_file;
    std::vector<FetchedRange> fetched;
    auto read_at = [&](uint64_t off, void* buf, size_t len) -> Status {
      auto out = std::span(static_cast<std::byte*>(buf), len);
      LZ_TRY(client.ReadAt(pid, off, out));
      fetched.push_back({off, std::vector<std::byte>(out.begin(), out.end())});
      return Ok();
    };
    LZ_ASSIGN_OR_RETURN(auto store, img::PageStoreReader::OpenRemote(name, size, read_at));
    std::string local = dir + "/" + pm.pages_file;
    if (::access(local.c_str(), F_OK) != 0) {
      LZ_TRY(WritePartialStore(client, pid, *store, fetched, pm, local));
      out.partial_files.push_back(local);
    } else {
      // The restore reads its eager pages from the local file without checking its whole
      // index (PageStoreReader::OpenChunks): it must be the store the server has.
      LZ_ASSIGN_OR_RETURN(auto mine, img::PageStoreReader::Open(local));
      if (mine->index_crc() != store->index_crc() || mine->chunk_count() != store->chunk_count() ||
          mine->total_pages() != store->total_pages()) {
        return Invalid(local + " differs from the page server's " + pm.pages_file);
      }
    }
    LZ_INFO("lazy-pages: pid %d: %lu chunks on %s", pid, store->chunk_count(),
            client.where().c_str());
    out.stores[pid] = std::move(store);
  }
  return out;
}

}  // namespace lz
