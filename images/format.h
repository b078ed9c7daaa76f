// On-disk constants shared by every image reader and writer. The layout is specified in
// docs/image-format.md; change both together and bump kFormatVersion.
#pragma once

#include <cstdint>

namespace lz::img {

constexpr uint32_t kFormatVersion = 2;
constexpr uint32_t kPageSize = 4096;

/// Every image file starts with this 16-byte header.
struct FileHeader {
  uint32_t magic;       // kFileMagic
  uint32_t kind;        // ImageKind
  uint32_t version;     // kFormatVersion
  uint32_t header_crc;  // CRC32C of the 12 bytes before it
};
static_assert(sizeof(FileHeader) == 16);

constexpr uint32_t kFileMagic = 0x5a52414c;  // "LARZ" little-endian

enum class ImageKind : uint32_t {
  kInventory = 1,
  kCore = 2,
  kMm = 3,
  kFds = 4,
  kPagemap = 5,
  kPages = 6,
  kStats = 7,
  kShmem = 8,
  kWorkingSet = 9,
};
const char* ImageKindName(ImageKind kind);

/// Record framing in record images: {u32 length, u32 crc32c(payload)} then payload.
struct RecordHeader {
  uint32_t length;
  uint32_t crc;
};
static_assert(sizeof(RecordHeader) == 8);
/// Readers refuse larger records before allocating.
constexpr uint32_t kMaxRecordBytes = 64u << 20;

// Page store (pages-PID.img): FileHeader, padding to kPageSize, chunk data, chunk index,
// PageStoreFooter at the very end.
struct ChunkIndexEntry {
  uint64_t offset;       // file offset of the chunk's bytes
  uint32_t stored_size;  // bytes on disk
  uint32_t crc;          // CRC32C of the bytes on disk
  uint32_t nr_pages;     // pages in the chunk (chunk_pages, fewer for the last)
  uint32_t flags;        // kChunkRaw
};
/// The chunk is stored as raw pages (compression off, or zstd did not make it smaller).
constexpr uint32_t kChunkRaw = 1;
static_assert(sizeof(ChunkIndexEntry) == 24);

enum class Compression : uint32_t { kNone = 0, kZstd = 1 };

struct PageStoreFooter {
  uint64_t index_offset;
  uint64_t total_pages;
  uint32_t chunk_count;
  uint32_t chunk_pages;
  uint32_t compression;  // Compression
  int32_t level;
  uint32_t index_crc;  // CRC32C of the whole chunk index
  uint32_t magic;      // kFooterMagic
  uint32_t reserved;
  uint32_t footer_crc;  // CRC32C of the footer bytes before it
};
static_assert(sizeof(PageStoreFooter) == 48);
constexpr uint32_t kFooterMagic = 0x544f4f46;  // "FOOT"
constexpr uint32_t kMaxChunkPages = 1024;
constexpr uint32_t kDefaultChunkPages = 16;

// The highest inotify watch number a dump keeps: the restore gives a watch its number back by
// taking and giving up every number below it.
constexpr int kMaxInotifyWd = 1 << 20;

/// Names of the files in an image directory.
constexpr const char* kInventoryFile = "inventory.img";
constexpr const char* kShmemFile = "shmem.img";
constexpr const char* kWorkingSetFile = "working-set.img";
constexpr const char* kWorkingSetPagesFile = "working-set.pages";
constexpr const char* kIncompleteMarker = "dump.incomplete";

}  // namespace lz::img
