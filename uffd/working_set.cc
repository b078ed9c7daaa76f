#include "uffd/working_set.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/file_util.h"
#include "base/log.h"
#include "base/proc.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/pagemap.pb.h"

namespace lz {
namespace {

constexpr uint64_t P = img::kPageSize;

// The file's pages mapped from the page cache at once, no copy.
Result<Mapping> MapFile(size_t len, int fd) {
  void* p = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  if (p == MAP_FAILED) {
    return FailErrno("mmap", std::to_string(len) + " bytes");
  }
  return Mapping(p, len);
}

// Decodes the chunks of one task's page store, keeping the last one.
class ChunkCache {
 public:
  explicit ChunkCache(const TaskSource& src)
      : src_(src),
        stored_(src.store->max_stored_size()),
        decoded_(size_t{src.store->chunk_pages()} * P),
        dctx_(img::NewDCtx()) {}

  // The content of the page at dump-time `vaddr`, and which chunk holds it.
  Result<std::span<const std::byte>> Page(uint64_t vaddr, uint64_t* chunk) {
    std::optional<uint64_t> stored = src_.pagemap.pagemap.StoredIndexOf(vaddr);
    if (!stored) {
      return Invalid("working set", "page " + std::to_string(vaddr) + " of pid " +
                                        std::to_string(src_.pid) + " is not stored");
    }
    uint64_t index = *stored;
    *chunk = index / src_.store->chunk_pages();
    if (*chunk != have_) {
      LZ_TRY(src_.store->ReadChunk(*chunk, stored_, decoded_, dctx_.get()));
      have_ = *chunk;
    }
    return std::span<const std::byte>(decoded_).subspan((index % src_.store->chunk_pages()) * P, P);
  }

 private:
  const TaskSource& src_;
  std::vector<std::byte> stored_;
  std::vector<std::byte> decoded_;
  img::DCtxPtr dctx_;
  uint64_t have_ = UINT64_MAX;
};

}  // namespace

void WorkingSetRecorder::Note(pid_t pid, uint64_t vaddr, bool zero) {
  if (seen_.emplace(pid, vaddr).second) {
    order_.push_back({pid, vaddr, zero});
  }
}

Status WorkingSetRecorder::NoteMappedFiles(pid_t pid) {
  LZ_ASSIGN_OR_RETURN(std::string maps, ReadFileToString(ProcPath(pid, "maps")));
  LZ_ASSIGN_OR_RETURN(std::vector<ProcVma> vmas, ParseSmaps(maps));
  LZ_ASSIGN_OR_RETURN(UniqueFd pagemap, OpenFile(ProcPath(pid, "pagemap"), O_RDONLY));
  std::vector<uint64_t> entries;
  for (const ProcVma& v : vmas) {
    if (v.path.empty() || v.path.front() != '/' || v.path.ends_with(" (deleted)")) {
      continue;
    }
    entries.resize((v.end - v.start) / P);
    LZ_ASSIGN_OR_RETURN(
        size_t got,
        PreadFull(pagemap.get(), std::as_writable_bytes(std::span(entries)), v.start / P * 8));
    auto& ranges = files_[v.path];
    for (size_t i = 0; i < got / 8; i++) {
      // A private copy counts too: the restore wrote it over the file's page, which the kernel
      // read first.
      if ((entries[i] & kPagemapPresent) == 0) {
        continue;
      }
      uint64_t off = v.pgoff + i * P;
      if (!ranges.empty() && ranges.back().first + ranges.back().second == off) {
        ranges.back().second += P;
      } else {
        ranges.emplace_back(off, P);
      }
    }
  }
  return Ok();
}

Status WorkingSetRecorder::Write(const std::string& dir, uint64_t dumped_at, uint64_t recorded_ns,
                                 const std::function<const TaskSource*(pid_t)>& source_of) const {
  pb::WorkingSet ws;
  ws.set_dumped_at_unix_ns(dumped_at);
  ws.set_recorded_ns(recorded_ns);
  // An older working set goes first: until the new one is whole, none is there, never the old
  // description of new pages.
  std::string img_path = dir + "/" + img::kWorkingSetFile;
  if (::unlink(img_path.c_str()) != 0 && errno != ENOENT) {
    return FailErrno("unlink", img_path);
  }
  // Stored raw: a few MiB read at once cost less than decoding them (zstd here: ~300 MB/s,
  // 12 ms for a Python service's 964 pages, on the first answer's path), and the next restore
  // copies them in from where they lie in the file.
  img::PageStoreOptions raw;
  raw.compression = img::Compression::kNone;
  LZ_ASSIGN_OR_RETURN(auto out,
                      img::PageStoreWriter::Create(dir + "/" + img::kWorkingSetPagesFile, raw));
  std::map<pid_t, std::unique_ptr<ChunkCache>> caches;
  std::set<std::pair<pid_t, uint64_t>> sources;
  pb::WorkingSetRun* run = nullptr;
  for (const auto& [pid, vaddr, zero] : order_) {
    const TaskSource* src = source_of(pid);
    if (src == nullptr) {
      return Invalid("working set", "pid " + std::to_string(pid) + " is not in the dump");
    }
    // A page extends the last run if it follows it in the same task and of the same kind.
    if (run != nullptr && run->pid() == pid && run->zero() == zero &&
        run->vaddr() + uint64_t{run->nr_pages()} * P == vaddr) {
      run->set_nr_pages(run->nr_pages() + 1);
    } else {
      run = ws.add_runs();
      run->set_pid(pid);
      run->set_vaddr(vaddr);
      run->set_nr_pages(1);
      run->set_zero(zero);
      if (!zero) {
        run->set_first_page(out->pages_appended());
      }
    }
    if (zero) {
      continue;  // nothing stored
    }
    std::unique_ptr<ChunkCache>& cache = caches[pid];
    if (cache == nullptr) {
      cache = std::make_unique<ChunkCache>(*src);
    }
    uint64_t chunk = 0;
    LZ_ASSIGN_OR_RETURN(std::span<const std::byte> page, cache->Page(vaddr, &chunk));
    if (sources.emplace(pid, chunk).second) {
      pb::WorkingSetSource* s = ws.add_sources();
      s->set_pid(pid);
      s->set_chunk(chunk);
      s->set_crc(src->store->chunk(chunk).crc);
    }
    LZ_TRY(out->Append(page));
  }
  LZ_TRY(out->Finish());
  for (const auto& [path, ranges] : files_) {
    if (ranges.empty()) {
      continue;
    }
    pb::WorkingSetFile* f = ws.add_files();
    f->set_path(path);
    for (const auto& [off, len] : ranges) {
      f->add_ranges(off);
      f->add_ranges(len);
    }
  }
  // Written last: a working-set.img always describes the pages file beside it.
  return img::WriteSingleMessage(img_path, img::ImageKind::kWorkingSet, ws);
}

std::unique_ptr<WorkingSetPrefetch> WorkingSetPrefetch::Start(const std::string& dir,
                                                              uint64_t dumped_at, int done_fd) {
  if (::access((dir + "/" + img::kWorkingSetFile).c_str(), F_OK) != 0) {
    return nullptr;
  }
  auto p = std::unique_ptr<WorkingSetPrefetch>(new WorkingSetPrefetch());
  p->dir_ = dir;
  p->dumped_at_ = dumped_at;
  p->start_ns_ = MonotonicNs();
  p->thread_ = std::thread([raw = p.get(), done_fd] { raw->Work(done_fd); });
  return p;
}

WorkingSetPrefetch::~WorkingSetPrefetch() {
  if (thread_.joinable()) {
    thread_.join();
  }
}

void WorkingSetPrefetch::Work(int done_fd) {
  status_ = Check();
  LZ_DEBUG("lazy-pages: working set checked");
  if (status_ && usable_) {
    // On a thread of its own: readahead() waits for the file's block map, and the restore
    // reads those pages as soon as it builds the address spaces, before any fault. Detached,
    // and the list is its own: nothing waits for a hint (a daemon dropping a working set that
    // failed must not wait in its loop).
    std::thread([files = std::move(files_)] { ReadFilesAhead(files); }).detach();
    status_ = ReadAndDecode();
  }
  ready_ns_ = MonotonicNs() - start_ns_;
  ready_.store(true, std::memory_order_release);
  uint64_t one = 1;
  (void)!::write(done_fd, &one, sizeof one);
}

void WorkingSetPrefetch::ReadFilesAhead(const FileRanges& files) {
  for (const auto& [path, ranges] : files) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      continue;  // only a hint: the task maps what the restore checked
    }
    for (size_t i = 0; i + 1 < ranges.size(); i += 2) {
      ::readahead(fd, static_cast<off64_t>(ranges[i]), ranges[i + 1]);
    }
    ::close(fd);
  }
}

Status WorkingSetPrefetch::Check() {
  const std::string& dir = dir_;
  auto stale = [&](const std::string& why) {
    LZ_WARN("lazy-pages: the working set in %s is stale (%s): ignored", dir.c_str(), why.c_str());
    return Ok();
  };
  pb::WorkingSet ws;
  Status read =
      img::ReadSingleMessage(dir + "/" + img::kWorkingSetFile, img::ImageKind::kWorkingSet, &ws);
  if (!read) {
    return stale(read.error().Message());
  }
  if (ws.dumped_at_unix_ns() != dumped_at_) {
    return stale("recorded on another dump");
  }
  // Every chunk the pages came from must still have the CRC it had: a store dumped again
  // differs.
  std::map<pid_t, std::unique_ptr<img::PageStoreReader>> stores;
  for (const pb::WorkingSetSource& s : ws.sources()) {
    auto& store = stores[s.pid()];
    if (store == nullptr) {
      auto opened = img::PageStoreReader::Open(dir + "/" + img::PagesName(s.pid()));
      if (!opened) {
        return stale(opened.error().Message());
      }
      store = std::move(*opened);
    }
    if (s.chunk() >= store->chunk_count() || store->chunk(s.chunk()).crc != s.crc()) {
      return stale("chunk " + std::to_string(s.chunk()) + " of pid " + std::to_string(s.pid()) +
                   " changed");
    }
  }
  auto store = img::PageStoreReader::Open(dir + "/" + img::kWorkingSetPagesFile);
  if (!store) {
    return Unexpected{store.error()};
  }
  store_ = std::move(*store);
  file_size_ = store_->file_size();
  for (const pb::WorkingSetRun& r : ws.runs()) {
    uint64_t end = r.vaddr() + uint64_t{r.nr_pages()} * P;
    bool outside = !r.zero() && (r.first_page() > store_->total_pages() ||
                                 r.nr_pages() > store_->total_pages() - r.first_page());
    if (r.nr_pages() == 0 || r.nr_pages() > (1u << 20) || r.vaddr() % P != 0 || end < r.vaddr() ||
        outside) {
      return Invalid(dir + "/" + img::kWorkingSetFile,
                     "a run lies outside " + std::string(img::kWorkingSetPagesFile));
    }
    runs_[r.pid()].push_back({r.vaddr(), r.nr_pages(), r.first_page(), r.zero(), {}});
    pages_ += r.nr_pages();
  }
  for (const pb::WorkingSetFile& f : ws.files()) {
    files_.emplace_back(f.path(), std::vector<uint64_t>(f.ranges().begin(), f.ranges().end()));
  }
  usable_ = true;
  return Ok();
}

Status WorkingSetPrefetch::ReadAndDecode() {
  // One read for the whole working set (it was laid out in one piece for this): the mapping
  // is populated from the file at once.
  LZ_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(dir_ + "/" + img::kWorkingSetPagesFile, O_RDONLY));
  LZ_ASSIGN_OR_RETURN(file_, MapFile(file_size_, fd.get()));
  std::span<const std::byte> file(file_.data(), file_.size());
  const std::byte* pages = InPlace(file);
  if (pages != nullptr) {
    for (uint64_t k = 0; k < store_->chunk_count(); k++) {
      const img::ChunkIndexEntry& e = store_->chunk(k);
      LZ_TRY(store_->CheckRawChunk(k, file.subspan(e.offset, e.stored_size)));
    }
  } else {  // compressed (a working set recorded by an older lazarus): decoded into the arena
    LZ_ASSIGN_OR_RETURN(arena_,
                        Mapping::Populated(std::max<uint64_t>(store_->total_pages(), 1) * P));
    img::DCtxPtr dctx = img::NewDCtx();
    for (uint64_t k = 0; k < store_->chunk_count(); k++) {
      const img::ChunkIndexEntry& e = store_->chunk(k);
      LZ_TRY(store_->DecodeChunk(k, file.subspan(e.offset, e.stored_size),
                                 arena_.span().subspan(k * store_->chunk_pages() * P), dctx.get()));
    }
    file_ = Mapping();
    pages = arena_.data();
  }
  for (auto& [pid, runs] : runs_) {
    for (Run& r : runs) {
      if (!r.zero) {
        r.pages = std::span<const std::byte>(pages + r.first_page * P, r.nr_pages * P);
      }
    }
  }
  return Ok();
}

const std::byte* WorkingSetPrefetch::InPlace(std::span<const std::byte> file) const {
  if (store_->chunk_count() == 0) {
    return nullptr;
  }
  uint64_t first = store_->chunk(0).offset, next = first;
  for (uint64_t k = 0; k < store_->chunk_count(); k++) {
    const img::ChunkIndexEntry& e = store_->chunk(k);
    bool last = k + 1 == store_->chunk_count();
    if (!(e.flags & img::kChunkRaw) || e.offset != next ||
        (!last && e.nr_pages != store_->chunk_pages())) {
      return nullptr;
    }
    next += e.stored_size;
  }
  return next <= file.size() ? file.data() + first : nullptr;
}

std::span<const WorkingSetPrefetch::Run> WorkingSetPrefetch::Of(pid_t pid) const {
  auto it = runs_.find(pid);
  return it == runs_.end() ? std::span<const Run>() : std::span<const Run>(it->second);
}

}  // namespace lz
