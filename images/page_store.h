// The page store: a task's dumped pages in chunks of N pages, each chunk an independent zstd
// frame (or raw pages), with an index so that one fault reads and decodes one chunk.
#pragma once

#include <zstd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/mapping.h"
#include "base/populated_allocator.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "images/format.h"
#include "images/pagemap.h"

namespace lz::img {

/// A zstd decoder, freed with its owner; each thread that decodes keeps its own.
struct DCtxFree {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};
using DCtxPtr = std::unique_ptr<ZSTD_DCtx, DCtxFree>;
inline DCtxPtr NewDCtx() { return DCtxPtr(ZSTD_createDCtx()); }

/// A store's chunk index: tens of thousands of entries, read at once.
using ChunkIndex = std::vector<ChunkIndexEntry, PopulatedAllocator<ChunkIndexEntry>>;

struct PageStoreOptions {
  uint32_t chunk_pages = kDefaultChunkPages;
  Compression compression = Compression::kZstd;
  int level = 3;
  int threads = 2;  // compression threads
};

/// Parses "zstd", "zstd:LEVEL" or "none" (the --compress option).
[[nodiscard]] Result<PageStoreOptions> ParseCompression(const std::string& spec,
                                                        PageStoreOptions base);

struct PageStoreStats {
  uint64_t pages = 0;
  uint64_t chunks = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;  // chunk bytes on disk
};

/// Where a page store's bytes go, in order: a local file, or a page server.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  [[nodiscard]] virtual Status Write(std::span<const std::byte> bytes) = 0;
  /// Writes `parts` one after the other (a sink may do it in one call).
  [[nodiscard]] virtual Status WriteParts(std::span<const std::span<const std::byte>> parts) {
    for (std::span<const std::byte> p : parts) {
      LZ_TRY(Write(p));
    }
    return Ok();
  }
  /// Every byte is written: make them the store (rename into place, tell the server).
  [[nodiscard]] virtual Status Commit() = 0;
};

/// Streams pages into a new page store with bounded memory: pages are buffered up to one batch
/// of chunks, compressed on `threads` threads, and written in order by a writer thread while
/// the next batch is filled and compressed (two batches in memory). Not thread-safe itself.
class PageStoreWriter {
 public:
  /// A local file at `path` (written as path.tmp, renamed by Finish).
  [[nodiscard]] static Result<std::unique_ptr<PageStoreWriter>> Create(
      const std::string& path, const PageStoreOptions& opts);
  /// Into `sink`; `name` is for messages.
  [[nodiscard]] static Result<std::unique_ptr<PageStoreWriter>> CreateWith(
      std::unique_ptr<ByteSink> sink, const std::string& name, const PageStoreOptions& opts);
  ~PageStoreWriter();

  /// Appends whole pages (size a multiple of kPageSize); they get the next page indexes.
  [[nodiscard]] Status Append(std::span<const std::byte> pages);
  uint64_t pages_appended() const { return pages_appended_; }
  /// Writes the last chunk, the index and the footer, and renames the file into place.
  [[nodiscard]] Result<PageStoreStats> Finish();

 private:
  PageStoreWriter(std::string path, std::unique_ptr<ByteSink> sink, const PageStoreOptions& opts);
  // One batch of chunks: its raw pages, then what compressing them made, then what it writes.
  struct Batch {
    std::vector<std::byte> raw;               // pages waiting for compression
    std::vector<std::vector<std::byte>> out;  // compressed chunk buffers
    std::vector<size_t> out_len;              // bytes of out[k] used; 0: chunk k is stored raw
    std::vector<uint32_t> crc;                // CRC32C of each chunk's stored bytes
    std::vector<std::span<const std::byte>> parts;  // what the batch writes, in order
  };
  Status FlushBatch();
  Status CompressBatch(size_t nr_chunks);
  // Waits for the batch being written; its error, if the write failed.
  Status WaitForWrite();

  std::string path_;
  std::unique_ptr<ByteSink> sink_;
  PageStoreOptions opts_;
  Batch cur_;      // being filled and compressed
  Batch writing_;  // handed to writer_
  std::thread writer_;
  Status write_status_ = Ok();
  std::vector<ZSTD_CCtx*> cctx_;
  std::vector<ChunkIndexEntry> index_;
  uint64_t file_off_ = 0;
  uint64_t pages_appended_ = 0;
  PageStoreStats stats_;
};

/// Random access to the chunks of a page store. Thread-safe for concurrent reads as long as
/// each thread brings its own decoder (ZSTD_DCtx) and buffers.
class PageStoreReader {
 public:
  /// A local store, its index checked whole; the index stays mapped, so the file must not be
  /// truncated while the reader lives (SIGBUS).
  [[nodiscard]] static Result<std::unique_ptr<PageStoreReader>> Open(const std::string& path);
  /// A store read elsewhere (a page server): its header, footer and index come through
  /// `read_at`; chunks are read by the caller, which then calls DecodeChunk. ReadChunk and
  /// fd() are not available.
  using ReadAt = std::function<Status(uint64_t off, void* buf, size_t len)>;
  [[nodiscard]] static Result<std::unique_ptr<PageStoreReader>> OpenRemote(const std::string& name,
                                                                           uint64_t file_size,
                                                                           const ReadAt& read_at);
  /// Only the index entries of `chunks` (sorted, unique), each checked as Open checks every
  /// entry; the index checksum is not (that needs all of it). For a reader of a few chunks of
  /// a large store whose whole index someone else checks (a lazy restore's eager pages: the
  /// daemon opens the store whole). Any other chunk reads as an error.
  [[nodiscard]] static Result<std::unique_ptr<PageStoreReader>> OpenChunks(
      const std::string& path, std::span<const uint64_t> chunks);

  uint32_t chunk_pages() const { return footer_.chunk_pages; }
  uint64_t chunk_count() const { return footer_.chunk_count; }
  uint64_t total_pages() const { return footer_.total_pages; }
  Compression compression() const { return static_cast<Compression>(footer_.compression); }
  int level() const { return footer_.level; }
  uint64_t file_size() const { return file_size_; }
  /// Entry `k` (< chunk_count()), checked against the footer; an empty one for a chunk
  /// OpenChunks did not load, or one that no longer checks.
  ChunkIndexEntry chunk(uint64_t k) const;
  uint32_t index_crc() const { return footer_.index_crc; }
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  /// Largest stored chunk, to size read buffers.
  uint32_t max_stored_size() const { return max_stored_; }

  /// Reads chunk `k` into `scratch` (>= max_stored_size()) and decodes it into `out`
  /// (>= chunk(k).nr_pages pages). Checks the CRC before decoding. `pages`, if given, gets
  /// the number of pages decoded: the index entry used, which a later chunk(k) need not match
  /// if the file changed meanwhile.
  [[nodiscard]] Status ReadChunk(uint64_t k, std::span<std::byte> scratch, std::span<std::byte> out,
                                 ZSTD_DCtx* dctx, uint32_t* pages = nullptr) const;
  /// Decodes chunk `k` from its stored bytes (read by the caller, e.g. through io_uring).
  [[nodiscard]] Status DecodeChunk(uint64_t k, std::span<const std::byte> stored,
                                   std::span<std::byte> out, ZSTD_DCtx* dctx) const;
  /// Checks the CRC of chunk `k`, stored raw, from its stored bytes: they are its pages.
  [[nodiscard]] Status CheckRawChunk(uint64_t k, std::span<const std::byte> stored) const;

 private:
  PageStoreReader() = default;
  // A reader with its file open and nothing parsed; `read_at` reads the file whole or fails.
  static Result<std::unique_ptr<PageStoreReader>> OpenLocal(const std::string& path,
                                                            ReadAt* read_at);
  // Entry `k`, copied out and checked (a mapped index is the file's: read once, then used),
  // or an error naming it when it is past the end, was not loaded or does not check.
  Result<ChunkIndexEntry> Entry(uint64_t k) const;
  // Chunk `k`'s stored bytes against its entry `e` (size, CRC); then decoded into `out`.
  Status CheckStored(uint64_t k, const ChunkIndexEntry& e, std::span<const std::byte> stored) const;
  Status Decode(uint64_t k, const ChunkIndexEntry& e, std::span<const std::byte> stored,
                std::span<std::byte> out, ZSTD_DCtx* dctx) const;
  std::string path_;
  UniqueFd fd_;
  PageStoreFooter footer_{};
  Mapping index_map_;  // Open: the file's index, mapped
  ChunkIndex index_;   // read (OpenRemote, or Open where mmap fails); OpenChunks: loaded_'s
  const std::byte* entries_ = nullptr;  // every entry (Open, OpenRemote), at any alignment
  std::vector<uint64_t> loaded_;        // OpenChunks: the chunks loaded, sorted
  bool partial_ = false;
  uint64_t file_size_ = 0;
  uint32_t max_stored_ = 0;
};

/// Opens the page store `pm` names (in `dir`) and checks that the two describe the same pages;
/// with `only`, just those chunks' index entries (PageStoreReader::OpenChunks).
[[nodiscard]] Result<std::unique_ptr<PageStoreReader>> OpenStoreOf(
    const std::string& dir, const PagemapFile& pm, const std::vector<uint64_t>* only = nullptr);

/// Decodes the stored pages of the present runs that `want` accepts, in order and each chunk
/// once, handing every stretch of consecutive pages to `put(address, bytes)`.
[[nodiscard]] Status ReadPresentRuns(
    const PageStoreReader& store, std::span<const PageRun> runs,
    const std::function<bool(const PageRun&)>& want,
    const std::function<Status(uint64_t addr, std::span<const std::byte>)>& put);

/// Validates a page store held in memory (header, footer, index, every chunk). For the fuzzer
/// and `lazarus show`.
[[nodiscard]] Status ValidatePageStoreBytes(const std::string& name, std::string_view bytes);

}  // namespace lz::img
