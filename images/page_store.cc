#include "images/page_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <functional>
#include <thread>

#include "base/crc32c.h"
#include "base/file_util.h"
#include "images/image_file.h"

namespace lz::img {
namespace {

// Chunks compressed per batch and thread: 32 chunks of 16 pages is 2 MiB of input per thread,
// large enough that thread start-up is noise, small enough to bound the writer's memory.
constexpr size_t kBatchChunksPerThread = 32;
// Chunk data starts on a page boundary, so with --compress none every chunk is page-aligned.
constexpr uint64_t kDataStart = kPageSize;

using ReadAt = PageStoreReader::ReadAt;

// The store's bytes go to path.tmp; Commit renames it into place.
class LocalFileSink : public ByteSink {
 public:
  LocalFileSink(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  Status Write(std::span<const std::byte> bytes) override {
    LZ_TRY_CTX(WriteAll(fd_.get(), bytes), path_);
    return Ok();
  }
  // A batch of chunks in one writev: a write per 64 KiB chunk cost 0.2 s per GiB on this VM.
  Status WriteParts(std::span<const std::span<const std::byte>> parts) override {
    std::vector<iovec> iov;
    iov.reserve(parts.size());
    for (std::span<const std::byte> p : parts) {
      iov.push_back({const_cast<std::byte*>(p.data()), p.size()});
    }
    size_t at = 0;
    while (at < iov.size()) {
      int n = static_cast<int>(std::min<size_t>(iov.size() - at, IOV_MAX));
      ssize_t w = ::writev(fd_.get(), iov.data() + at, n);
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w <= 0) {
        return Fail(w < 0 ? errno : EIO, "writev", path_);
      }
      // Skip what was written; a partial iovec is trimmed and written again.
      auto left = static_cast<size_t>(w);
      while (at < iov.size() && left >= iov[at].iov_len) {
        left -= iov[at].iov_len;
        at++;
      }
      if (left > 0) {
        iov[at].iov_base = static_cast<char*>(iov[at].iov_base) + left;
        iov[at].iov_len -= left;
      }
    }
    return Ok();
  }
  Status Commit() override {
    LZ_TRY_CTX(std::move(fd_).Close(), path_);
    std::string tmp = path_ + ".tmp";
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
      return FailErrno("rename", tmp);
    }
    return Ok();
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

struct Layout {
  PageStoreFooter footer{};
  ChunkIndex index;
  uint32_t max_stored = 0;
};

Status CheckEntry(const std::string& name, const PageStoreFooter& f, const ChunkIndexEntry& e,
                  uint64_t k) {
  // Made only for a message: a store has tens of thousands of entries to check.
  auto where = [&] { return name + ": chunk " + std::to_string(k); };
  bool last = k + 1 == f.chunk_count;
  uint64_t raw_bytes = uint64_t{e.nr_pages} * kPageSize;
  if (e.nr_pages == 0 || e.nr_pages > f.chunk_pages || (!last && e.nr_pages != f.chunk_pages)) {
    return Invalid(where() + ": bad page count " + std::to_string(e.nr_pages));
  }
  if (e.offset < kDataStart || e.offset > f.index_offset ||
      e.stored_size > f.index_offset - e.offset) {
    return Invalid(where() + ": bytes outside the data area (offset " + std::to_string(e.offset) +
                   ")");
  }
  bool raw = (e.flags & kChunkRaw) != 0;
  if ((e.flags & ~kChunkRaw) != 0 || (raw && e.stored_size != raw_bytes) ||
      (!raw && (f.compression != static_cast<uint32_t>(Compression::kZstd) ||
                e.stored_size > ZSTD_compressBound(raw_bytes)))) {
    return Invalid(where() + ": bad stored size or flags");
  }
  return Ok();
}

// The whole index against the footer: its checksum and every entry. Returns the largest
// stored chunk.
// `raw`: the index's bytes, at any alignment.
Result<uint32_t> CheckIndex(const std::string& name, const PageStoreFooter& f,
                            const std::byte* raw) {
  if (Crc32c(raw, uint64_t{f.chunk_count} * sizeof(ChunkIndexEntry)) != f.index_crc) {
    return Invalid(name + ": chunk index checksum mismatch at offset " +
                   std::to_string(f.index_offset));
  }
  uint64_t pages = 0;
  uint32_t max_stored = 0;
  for (uint64_t k = 0; k < f.chunk_count; k++) {
    ChunkIndexEntry e;
    std::memcpy(&e, raw + k * sizeof e, sizeof e);
    LZ_TRY(CheckEntry(name, f, e, k));
    pages += e.nr_pages;
    max_stored = std::max(max_stored, e.stored_size);
  }
  if (pages != f.total_pages) {
    return Invalid(name + ": index holds " + std::to_string(pages) + " pages, footer says " +
                   std::to_string(f.total_pages));
  }
  return max_stored;
}

// The header and footer, checked.
Result<PageStoreFooter> ParseFooter(const std::string& name, uint64_t file_size,
                                    const ReadAt& read_at) {
  if (file_size < kDataStart + sizeof(PageStoreFooter)) {
    return Invalid(name + ": truncated page store (" + std::to_string(file_size) + " bytes)");
  }
  FileHeader h;
  LZ_TRY(read_at(0, &h, sizeof h));
  LZ_TRY(CheckHeader(h, name, ImageKind::kPages));
  PageStoreFooter f;
  uint64_t footer_off = file_size - sizeof f;
  LZ_TRY(read_at(footer_off, &f, sizeof f));
  if (f.magic != kFooterMagic ||
      f.footer_crc != Crc32c(&f, offsetof(PageStoreFooter, footer_crc))) {
    return Invalid(name + ": corrupt or truncated page store footer at offset " +
                   std::to_string(footer_off));
  }
  if (f.chunk_pages == 0 || f.chunk_pages > kMaxChunkPages || f.compression > 1 ||
      f.index_offset < kDataStart || f.index_offset > footer_off ||
      footer_off - f.index_offset != uint64_t{f.chunk_count} * sizeof(ChunkIndexEntry)) {
    return Invalid(name + ": inconsistent page store footer at offset " +
                   std::to_string(footer_off));
  }
  return f;
}

Result<Layout> ParseLayout(const std::string& name, uint64_t file_size, const ReadAt& read_at) {
  Layout l;
  LZ_ASSIGN_OR_RETURN(l.footer, ParseFooter(name, file_size, read_at));
  const PageStoreFooter& f = l.footer;
  l.index.resize(f.chunk_count);
  LZ_TRY(read_at(f.index_offset, l.index.data(), l.index.size() * sizeof(ChunkIndexEntry)));
  LZ_ASSIGN_OR_RETURN(l.max_stored,
                      CheckIndex(name, f, reinterpret_cast<const std::byte*>(l.index.data())));
  return l;
}

}  // namespace

Result<PageStoreOptions> ParseCompression(const std::string& spec, PageStoreOptions base) {
  if (spec == "none") {
    base.compression = Compression::kNone;
    return base;
  }
  if (spec == "zstd") {
    base.compression = Compression::kZstd;
    return base;
  }
  if (spec.rfind("zstd:", 0) == 0) {
    int64_t level;
    if (!ParseI64(spec.substr(5), &level) || level < -7 || level > ZSTD_maxCLevel()) {
      return Invalid("--compress", "level must be -7.." + std::to_string(ZSTD_maxCLevel()) +
                                       ", got '" + spec.substr(5) + "'");
    }
    base.compression = Compression::kZstd;
    base.level = static_cast<int>(level);
    return base;
  }
  return Invalid("--compress", "expected zstd, zstd:LEVEL or none, got '" + spec + "'");
}

PageStoreWriter::PageStoreWriter(std::string path, std::unique_ptr<ByteSink> sink,
                                 const PageStoreOptions& opts)
    : path_(std::move(path)), sink_(std::move(sink)), opts_(opts) {
  opts_.threads = std::max(1, opts_.threads);
  for (int i = 0; i < opts_.threads; i++) {
    cctx_.push_back(ZSTD_createCCtx());
  }
  cur_.raw.reserve(kBatchChunksPerThread * opts_.threads * opts_.chunk_pages * kPageSize);
  writing_.raw.reserve(cur_.raw.capacity());  // filled next, after the first swap
}

PageStoreWriter::~PageStoreWriter() {
  (void)WaitForWrite();
  for (ZSTD_CCtx* c : cctx_) {
    ZSTD_freeCCtx(c);
  }
}

Result<std::unique_ptr<PageStoreWriter>> PageStoreWriter::Create(const std::string& path,
                                                                 const PageStoreOptions& opts) {
  LZ_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path + ".tmp", O_WRONLY | O_CREAT | O_TRUNC));
  return CreateWith(std::make_unique<LocalFileSink>(path, std::move(fd)), path, opts);
}

Result<std::unique_ptr<PageStoreWriter>> PageStoreWriter::CreateWith(std::unique_ptr<ByteSink> sink,
                                                                     const std::string& name,
                                                                     const PageStoreOptions& opts) {
  if (opts.chunk_pages == 0 || opts.chunk_pages > kMaxChunkPages) {
    return Invalid("--chunk-pages", "must be 1.." + std::to_string(kMaxChunkPages));
  }
  std::vector<std::byte> head(kDataStart);
  FileHeader h = MakeHeader(ImageKind::kPages);
  std::memcpy(head.data(), &h, sizeof h);
  LZ_TRY(sink->Write(head));
  auto w = std::unique_ptr<PageStoreWriter>(new PageStoreWriter(name, std::move(sink), opts));
  w->file_off_ = kDataStart;
  return w;
}

Status PageStoreWriter::Append(std::span<const std::byte> pages) {
  if (pages.size() % kPageSize != 0) {
    return Invalid("page store append", "size is not whole pages");
  }
  const size_t batch_bytes = kBatchChunksPerThread * opts_.threads * opts_.chunk_pages * kPageSize;
  while (!pages.empty()) {
    size_t take = std::min(pages.size(), batch_bytes - cur_.raw.size());
    cur_.raw.insert(cur_.raw.end(), pages.begin(), pages.begin() + take);
    pages = pages.subspan(take);
    pages_appended_ += take / kPageSize;
    if (cur_.raw.size() == batch_bytes) {
      LZ_TRY(FlushBatch());
    }
  }
  return Ok();
}

Status PageStoreWriter::CompressBatch(size_t nr_chunks) {
  const size_t chunk_bytes = size_t{opts_.chunk_pages} * kPageSize;
  Batch& b = cur_;
  b.out.resize(nr_chunks);
  b.out_len.resize(nr_chunks);
  b.crc.resize(nr_chunks);
  // Each thread compresses and checksums its chunks: the CRC on the writing thread alone was a
  // fifth of a dump's time.
  auto work = [&](size_t t) {
    for (size_t k = t; k < nr_chunks; k += cctx_.size()) {
      size_t len = std::min(chunk_bytes, b.raw.size() - k * chunk_bytes);
      const std::byte* src = b.raw.data() + k * chunk_bytes;
      std::vector<std::byte>& dst = b.out[k];
      b.out_len[k] = 0;  // stored raw: written straight from the batch
      if (opts_.compression == Compression::kZstd) {
        size_t bound = ZSTD_compressBound(len);
        if (dst.size() < bound) {
          dst.resize(bound);  // once: the buffer keeps its size from batch to batch
        }
        size_t n = ZSTD_compressCCtx(cctx_[t], dst.data(), dst.size(), src, len, opts_.level);
        if (!ZSTD_isError(n) && n < len) {
          b.out_len[k] = n;
        }
      }
      b.crc[k] = b.out_len[k] != 0 ? Crc32c(dst.data(), b.out_len[k]) : Crc32c(src, len);
    }
  };
  std::vector<std::thread> helpers;
  size_t nthreads = std::min(cctx_.size(), nr_chunks);
  for (size_t t = 1; t < nthreads; t++) {
    helpers.emplace_back(work, t);
  }
  work(0);
  for (std::thread& th : helpers) {
    th.join();
  }
  return Ok();
}

Status PageStoreWriter::FlushBatch() {
  const size_t chunk_bytes = size_t{opts_.chunk_pages} * kPageSize;
  // A batch is whole chunks except the last one of the store: each flush takes all of it.
  size_t nr_chunks = (cur_.raw.size() + chunk_bytes - 1) / chunk_bytes;
  if (nr_chunks == 0) {
    return Ok();
  }
  LZ_TRY(CompressBatch(nr_chunks));
  Batch& b = cur_;
  b.parts.clear();
  for (size_t k = 0; k < nr_chunks; k++) {
    size_t len = std::min(chunk_bytes, b.raw.size() - k * chunk_bytes);
    bool raw = b.out_len[k] == 0;
    std::span<const std::byte> bytes =
        raw ? std::span<const std::byte>(b.raw.data() + k * chunk_bytes, len)
            : std::span<const std::byte>(b.out[k].data(), b.out_len[k]);
    ChunkIndexEntry e{file_off_, static_cast<uint32_t>(bytes.size()), b.crc[k],
                      static_cast<uint32_t>(len / kPageSize), raw ? kChunkRaw : 0};
    b.parts.push_back(bytes);
    index_.push_back(e);
    file_off_ += bytes.size();
    stats_.chunks++;
    stats_.pages += e.nr_pages;
    stats_.bytes_in += len;
    stats_.bytes_out += bytes.size();
  }
  // The batch before this one is written while the next is read and compressed: the
  // writes into the page cache were a fifth of a dump's CPU time, done in series.
  LZ_TRY(WaitForWrite());
  std::swap(cur_, writing_);  // the spans in parts point into the vectors' buffers: they move
  cur_.raw.clear();
  writer_ = std::thread([this] { write_status_ = sink_->WriteParts(writing_.parts); });
  return Ok();
}

Status PageStoreWriter::WaitForWrite() {
  if (writer_.joinable()) {
    writer_.join();
  }
  return write_status_;
}

Result<PageStoreStats> PageStoreWriter::Finish() {
  LZ_TRY(FlushBatch());
  LZ_TRY(WaitForWrite());
  PageStoreFooter f{};
  f.index_offset = file_off_;
  f.total_pages = stats_.pages;
  f.chunk_count = static_cast<uint32_t>(index_.size());
  f.chunk_pages = opts_.chunk_pages;
  f.compression = static_cast<uint32_t>(opts_.compression);
  f.level = opts_.level;
  f.index_crc = Crc32c(index_.data(), index_.size() * sizeof(ChunkIndexEntry));
  f.magic = kFooterMagic;
  f.footer_crc = Crc32c(&f, offsetof(PageStoreFooter, footer_crc));
  LZ_TRY(sink_->Write(std::as_bytes(std::span(index_))));
  LZ_TRY(sink_->Write(std::as_bytes(std::span(&f, 1))));
  LZ_TRY(sink_->Commit());
  return stats_;
}

Result<std::unique_ptr<PageStoreReader>> PageStoreReader::OpenLocal(const std::string& path,
                                                                    ReadAt* read_at) {
  auto r = std::unique_ptr<PageStoreReader>(new PageStoreReader());
  r->path_ = path;
  LZ_ASSIGN_OR_RETURN(r->fd_, OpenFile(path, O_RDONLY));
  struct stat st;
  if (fstat(r->fd_.get(), &st) != 0) {
    return FailErrno("fstat", path);
  }
  r->file_size_ = st.st_size;
  *read_at = [fd = r->fd_.get(), path](uint64_t off, void* buf, size_t len) -> Status {
    auto n = PreadFull(fd, std::span(static_cast<std::byte*>(buf), len), off);
    if (!n) {
      return Unexpected{n.error().Wrap(path)};
    }
    if (*n != len) {
      return Invalid(path + ": truncated at offset " + std::to_string(off + *n));
    }
    return Ok();
  };
  return r;
}

Result<std::unique_ptr<PageStoreReader>> PageStoreReader::Open(const std::string& path) {
  ReadAt read_at;
  LZ_ASSIGN_OR_RETURN(auto r, OpenLocal(path, &read_at));
  uint64_t size = r->file_size_;
  LZ_ASSIGN_OR_RETURN(r->footer_, ParseFooter(path, size, read_at));
  // The index is used where the page cache holds it: read into fresh memory instead, a store
  // of 8 GiB (2.4 MB of index) took 10 ms to open here, mapped 1.2 ms (each first touch of a
  // new anonymous page is dear on this VM). Where mapping fails, it is read.
  const PageStoreFooter& f = r->footer_;
  uint64_t at = f.index_offset / kPageSize * kPageSize;
  size_t len = size - at;
  void* p = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, r->fd_.get(),
                   static_cast<off_t>(at));
  if (p == MAP_FAILED) {
    LZ_ASSIGN_OR_RETURN(Layout l, ParseLayout(path, size, read_at));
    r->index_ = std::move(l.index);
    r->entries_ = reinterpret_cast<const std::byte*>(r->index_.data());
    r->max_stored_ = l.max_stored;
    return r;
  }
  r->index_map_ = Mapping(p, len);
  r->entries_ = r->index_map_.data() + (f.index_offset - at);
  LZ_ASSIGN_OR_RETURN(r->max_stored_, CheckIndex(path, f, r->entries_));
  return r;
}

Result<std::unique_ptr<PageStoreReader>> PageStoreReader::OpenChunks(
    const std::string& path, std::span<const uint64_t> chunks) {
  ReadAt read_at;
  LZ_ASSIGN_OR_RETURN(auto r, OpenLocal(path, &read_at));
  uint64_t size = r->file_size_;
  LZ_ASSIGN_OR_RETURN(r->footer_, ParseFooter(path, size, read_at));
  r->partial_ = true;
  for (uint64_t k : chunks) {
    if (k >= r->footer_.chunk_count || (!r->loaded_.empty() && k <= r->loaded_.back())) {
      return Invalid(path + ": chunk " + std::to_string(k) + " asked for out of order or range");
    }
    ChunkIndexEntry e;
    LZ_TRY(read_at(r->footer_.index_offset + k * sizeof e, &e, sizeof e));
    LZ_TRY(CheckEntry(path, r->footer_, e, k));
    r->index_.push_back(e);
    r->loaded_.push_back(k);
    r->max_stored_ = std::max(r->max_stored_, e.stored_size);
  }
  return r;
}

Result<ChunkIndexEntry> PageStoreReader::Entry(uint64_t k) const {
  if (partial_) {
    auto it = std::lower_bound(loaded_.begin(), loaded_.end(), k);
    if (it == loaded_.end() || *it != k) {
      return Invalid(path_ + ": chunk " + std::to_string(k) + " was not loaded");
    }
    return index_[static_cast<size_t>(it - loaded_.begin())];
  }
  if (k >= footer_.chunk_count) {
    return Invalid(path_ + ": chunk " + std::to_string(k) + " is past the last one");
  }
  ChunkIndexEntry e;
  std::memcpy(&e, entries_ + k * sizeof e, sizeof e);
  // Checked at open, but a mapped index is the file's own: what buffers were sized by must
  // still hold.
  LZ_TRY(CheckEntry(path_, footer_, e, k));
  if (e.stored_size > max_stored_) {
    return Invalid(path_ + ": chunk " + std::to_string(k) + " changed since the store was opened");
  }
  return e;
}

ChunkIndexEntry PageStoreReader::chunk(uint64_t k) const {
  auto e = Entry(k);
  return e ? *e : ChunkIndexEntry{};
}

Result<std::unique_ptr<PageStoreReader>> PageStoreReader::OpenRemote(const std::string& name,
                                                                     uint64_t file_size,
                                                                     const ReadAt& read_at) {
  auto r = std::unique_ptr<PageStoreReader>(new PageStoreReader());
  r->path_ = name;
  r->file_size_ = file_size;
  LZ_ASSIGN_OR_RETURN(Layout l, ParseLayout(name, file_size, read_at));
  r->footer_ = l.footer;
  r->index_ = std::move(l.index);
  r->entries_ = reinterpret_cast<const std::byte*>(r->index_.data());
  r->max_stored_ = l.max_stored;
  return r;
}

Status PageStoreReader::CheckStored(uint64_t k, const ChunkIndexEntry& e,
                                    std::span<const std::byte> stored) const {
  if (stored.size() != e.stored_size) {
    return Invalid(path_ + ": chunk " + std::to_string(k) + ": buffer size mismatch");
  }
  if (Crc32c(stored) != e.crc) {
    return Invalid(path_ + ": chunk " + std::to_string(k) + " checksum mismatch at offset " +
                   std::to_string(e.offset));
  }
  return Ok();
}

Status PageStoreReader::CheckRawChunk(uint64_t k, std::span<const std::byte> stored) const {
  LZ_ASSIGN_OR_RETURN(const ChunkIndexEntry e, Entry(k));
  if (!(e.flags & kChunkRaw)) {
    return Invalid(path_ + ": chunk " + std::to_string(k) + " is not stored raw");
  }
  return CheckStored(k, e, stored);
}

Status PageStoreReader::Decode(uint64_t k, const ChunkIndexEntry& e,
                               std::span<const std::byte> stored, std::span<std::byte> out,
                               ZSTD_DCtx* dctx) const {
  size_t raw_bytes = size_t{e.nr_pages} * kPageSize;
  if (out.size() < raw_bytes) {
    return Invalid(path_ + ": chunk " + std::to_string(k) + ": buffer size mismatch");
  }
  LZ_TRY(CheckStored(k, e, stored));
  if (e.flags & kChunkRaw) {
    std::memcpy(out.data(), stored.data(), raw_bytes);
    return Ok();
  }
  size_t n = ZSTD_decompressDCtx(dctx, out.data(), raw_bytes, stored.data(), stored.size());
  if (ZSTD_isError(n) || n != raw_bytes) {
    return Invalid(path_ + ": chunk " + std::to_string(k) + " does not decode at offset " +
                   std::to_string(e.offset) +
                   (ZSTD_isError(n) ? std::string(" (") + ZSTD_getErrorName(n) + ")" : ""));
  }
  return Ok();
}

Status PageStoreReader::DecodeChunk(uint64_t k, std::span<const std::byte> stored,
                                    std::span<std::byte> out, ZSTD_DCtx* dctx) const {
  LZ_ASSIGN_OR_RETURN(const ChunkIndexEntry e, Entry(k));
  return Decode(k, e, stored, out, dctx);
}

Status PageStoreReader::ReadChunk(uint64_t k, std::span<std::byte> scratch,
                                  std::span<std::byte> out, ZSTD_DCtx* dctx,
                                  uint32_t* pages) const {
  LZ_ASSIGN_OR_RETURN(const ChunkIndexEntry e, Entry(k));
  if (pages != nullptr) {
    *pages = e.nr_pages;
  }
  if (scratch.size() < e.stored_size) {
    return Invalid(path_ + ": scratch buffer too small");
  }
  LZ_ASSIGN_OR_RETURN(size_t n, PreadFull(fd_.get(), scratch.first(e.stored_size), e.offset));
  if (n != e.stored_size) {
    return Invalid(path_ + ": truncated at offset " + std::to_string(e.offset + n));
  }
  return Decode(k, e, scratch.first(e.stored_size), out, dctx);
}

Status ValidatePageStoreBytes(const std::string& name, std::string_view bytes) {
  auto read_at = [&](uint64_t off, void* buf, size_t len) -> Status {
    if (off > bytes.size() || len > bytes.size() - off) {
      return Invalid(name + ": truncated at offset " + std::to_string(off));
    }
    std::memcpy(buf, bytes.data() + off, len);
    return Ok();
  };
  LZ_ASSIGN_OR_RETURN(Layout l, ParseLayout(name, bytes.size(), read_at));
  DCtxPtr dctx = NewDCtx();
  std::vector<std::byte> out(size_t{l.footer.chunk_pages} * kPageSize);
  Status st = Ok();
  for (uint64_t k = 0; k < l.index.size() && st; k++) {
    const ChunkIndexEntry& e = l.index[k];
    auto stored = std::as_bytes(std::span(bytes.data() + e.offset, e.stored_size));
    if (Crc32c(stored) != e.crc) {
      st = Invalid(name + ": chunk " + std::to_string(k) + " checksum mismatch");
    } else if (!(e.flags & kChunkRaw)) {
      size_t n =
          ZSTD_decompressDCtx(dctx.get(), out.data(), out.size(), stored.data(), stored.size());
      if (ZSTD_isError(n) || n != size_t{e.nr_pages} * kPageSize) {
        st = Invalid(name + ": chunk " + std::to_string(k) + " does not decode");
      }
    }
  }
  return st;
}

Result<std::unique_ptr<PageStoreReader>> OpenStoreOf(const std::string& dir, const PagemapFile& pm,
                                                     const std::vector<uint64_t>* only) {
  LZ_ASSIGN_OR_RETURN(
      auto store, only == nullptr ? PageStoreReader::Open(dir + "/" + pm.pages_file)
                                  : PageStoreReader::OpenChunks(dir + "/" + pm.pages_file, *only));
  if (store->chunk_pages() != pm.chunk_pages) {
    return Invalid(pm.pages_file + " has chunks of " + std::to_string(store->chunk_pages()) +
                   " pages, its pagemap says " + std::to_string(pm.chunk_pages));
  }
  if (store->total_pages() != pm.pagemap.stored_pages()) {
    return Invalid(pm.pages_file + " holds " + std::to_string(store->total_pages()) +
                   " pages, the pagemap expects " + std::to_string(pm.pagemap.stored_pages()));
  }
  return store;
}

Status ReadPresentRuns(const PageStoreReader& store, std::span<const PageRun> runs,
                       const std::function<bool(const PageRun&)>& want,
                       const std::function<Status(uint64_t, std::span<const std::byte>)>& put) {
  // Made at the first wanted chunk, and left uninitialized: often no run is wanted, and on a
  // VM with shadow page tables each first touch of a fresh page costs several microseconds.
  std::unique_ptr<std::byte[]> scratch;
  std::unique_ptr<std::byte[]> chunk;
  size_t chunk_bytes = size_t{store.chunk_pages()} * kPageSize;
  DCtxPtr dctx;
  uint64_t have_chunk = UINT64_MAX;
  uint32_t have_pages = 0;  // decoded: the entry read once (the buffer is not zeroed)
  for (const PageRun& r : runs) {
    if (!r.present() || !want(r)) {
      continue;
    }
    for (uint64_t p = 0; p < r.nr_pages;) {
      uint64_t index = r.page_index + p;
      uint64_t k = index / store.chunk_pages();
      if (k >= store.chunk_count()) {
        return Invalid(store.path() + ": page " + std::to_string(index) +
                       " is past the last chunk");
      }
      if (k != have_chunk) {
        if (!chunk) {
          scratch.reset(new std::byte[store.max_stored_size()]);
          chunk.reset(new std::byte[chunk_bytes]);
          dctx = NewDCtx();
        }
        LZ_TRY(store.ReadChunk(k, std::span(scratch.get(), store.max_stored_size()),
                               std::span(chunk.get(), chunk_bytes), dctx.get(), &have_pages));
        have_chunk = k;
      }
      uint64_t in_chunk = index % store.chunk_pages();
      if (have_pages <= in_chunk) {
        return Invalid(store.path() + ": chunk " + std::to_string(k) + " is short");
      }
      uint64_t n = std::min<uint64_t>(r.nr_pages - p, have_pages - in_chunk);
      LZ_TRY(put(r.vaddr + p * kPageSize,
                 std::span(chunk.get() + in_chunk * kPageSize, n * kPageSize)));
      p += n;
    }
  }
  return Ok();
}

}  // namespace lz::img
