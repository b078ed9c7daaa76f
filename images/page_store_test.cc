#include "images/page_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <random>

#include "base/file_util.h"

namespace lz::img {
namespace {

class PageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lz-ps-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)!system(("rm -rf " + dir_).c_str()); }

  // Random bytes, or text-like data: words drawn at random from a small vocabulary.
  static std::vector<std::byte> Pages(size_t n, uint32_t seed, bool text) {
    static const char* kWords[] = {"lorem ", "ipsum ", "dolor ", "sit ",
                                   "amet ",  "key:",   "value\n"};
    std::vector<std::byte> v(n * kPageSize);
    std::mt19937 rng(seed);
    size_t i = 0;
    while (i < v.size()) {
      if (!text) {
        v[i++] = static_cast<std::byte>(rng());
        continue;
      }
      for (const char* w = kWords[rng() % 7]; *w != 0 && i < v.size(); w++) {
        v[i++] = static_cast<std::byte>(*w);
      }
    }
    return v;
  }

  std::vector<std::byte> ReadAll(const PageStoreReader& r) {
    std::vector<std::byte> all;
    std::vector<std::byte> scratch(r.max_stored_size());
    std::vector<std::byte> out(size_t{r.chunk_pages()} * kPageSize);
    ZSTD_DCtx* d = ZSTD_createDCtx();
    for (uint64_t k = 0; k < r.chunk_count(); k++) {
      auto st = r.ReadChunk(k, scratch, out, d);
      EXPECT_TRUE(st) << st.error().Message();
      all.insert(all.end(), out.begin(), out.begin() + r.chunk(k).nr_pages * kPageSize);
    }
    ZSTD_freeDCtx(d);
    return all;
  }

  // Writes `data` as dir_/pages.img, zstd:3 in chunks of 16 pages; returns its path.
  std::string WriteStore(std::span<const std::byte> data) {
    auto opts = ParseCompression("zstd:3", PageStoreOptions{});
    EXPECT_TRUE(opts);
    opts->chunk_pages = 16;
    std::string path = dir_ + "/pages.img";
    auto w = PageStoreWriter::Create(path, *opts);
    EXPECT_TRUE(w);
    EXPECT_TRUE((*w)->Append(data));
    EXPECT_TRUE((*w)->Finish());
    return path;
  }

  std::string dir_;
};

// A lazy restore loads only the index entries of the chunks it reads itself.
TEST_F(PageStoreTest, OpenChunksReadsThoseChunksAndRefusesTheOthers) {
  auto data = Pages(100, 3, true);  // 7 chunks, the last one short
  std::string path = WriteStore(data);
  std::vector<uint64_t> wanted = {1, 6};
  auto r = PageStoreReader::OpenChunks(path, wanted);
  ASSERT_TRUE(r) << r.error().Message();
  EXPECT_EQ((*r)->chunk_count(), 7u);
  EXPECT_EQ((*r)->total_pages(), 100u);
  std::vector<std::byte> scratch((*r)->max_stored_size());
  std::vector<std::byte> out(16 * kPageSize);
  ZSTD_DCtx* d = ZSTD_createDCtx();
  for (uint64_t k : wanted) {
    auto st = (*r)->ReadChunk(k, scratch, out, d);
    ASSERT_TRUE(st) << st.error().Message();
    size_t n = (*r)->chunk(k).nr_pages * kPageSize;
    EXPECT_EQ(n, (k == 6 ? 4 : 16) * kPageSize);
    EXPECT_EQ(std::memcmp(out.data(), data.data() + k * 16 * kPageSize, n), 0) << "chunk " << k;
  }
  auto other = (*r)->ReadChunk(2, scratch, out, d);
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().Message().find("chunk 2 was not loaded"), std::string::npos);
  EXPECT_EQ((*r)->chunk(2).nr_pages, 0u);
  ZSTD_freeDCtx(d);
  std::vector<uint64_t> backwards = {6, 1}, past = {7};
  EXPECT_FALSE(PageStoreReader::OpenChunks(path, backwards));
  EXPECT_FALSE(PageStoreReader::OpenChunks(path, past));
}

// Open checks the whole index (mapped); OpenChunks only the entries it loads: a damaged entry
// elsewhere is the daemon's to find, a damaged entry it loads is refused.
TEST_F(PageStoreTest, DamagedIndexEntryIsRefusedByOpenAndByOpenChunksWhenLoaded) {
  std::string path = WriteStore(Pages(100, 5, true));
  auto bytes = ReadFileToString(path);
  ASSERT_TRUE(bytes);
  // Entry 2's page count (index: 7 entries of 24 bytes, then the 48-byte footer).
  size_t entry2 = bytes->size() - 48 - 7 * 24 + 2 * 24 + 16;
  (*bytes)[entry2] = 99;
  ASSERT_TRUE(WriteFileAtomically(path, *bytes));
  auto whole = PageStoreReader::Open(path);
  ASSERT_FALSE(whole);
  EXPECT_NE(whole.error().Message().find("chunk index checksum mismatch"), std::string::npos)
      << whole.error().Message();
  std::vector<uint64_t> others = {1, 3};
  EXPECT_TRUE(PageStoreReader::OpenChunks(path, others));
  std::vector<uint64_t> damaged = {2};
  auto r = PageStoreReader::OpenChunks(path, damaged);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().Message().find("bad page count 99"), std::string::npos)
      << r.error().Message();
}

TEST_F(PageStoreTest, RoundTripAllModes) {
  for (const char* spec : {"zstd:1", "zstd:3", "none"}) {
    for (bool text : {false, true}) {
      auto opts = ParseCompression(spec, PageStoreOptions{});
      ASSERT_TRUE(opts);
      opts->chunk_pages = 16;
      std::string path = dir_ + "/pages.img";
      auto w = PageStoreWriter::Create(path, *opts);
      ASSERT_TRUE(w);
      // 2600 pages in uneven appends: three batches (of 1024 pages), so a batch is compressed
      // while the one before it is written; ends with a partial chunk.
      auto data = Pages(2600, 7, text);
      size_t off = 0;
      for (size_t step : {1, 7, 300, 1692, 600}) {
        ASSERT_TRUE((*w)->Append(std::span(data).subspan(off * kPageSize, step * kPageSize)));
        off += step;
      }
      auto stats = (*w)->Finish();
      ASSERT_TRUE(stats);
      EXPECT_EQ(stats->pages, 2600u);
      auto r = PageStoreReader::Open(path);
      ASSERT_TRUE(r) << r.error().Message();
      EXPECT_EQ((*r)->total_pages(), 2600u);
      EXPECT_EQ((*r)->chunk_count(), 163u);
      EXPECT_EQ(ReadAll(**r), data) << spec << " text=" << text;
      if (text && std::string(spec) != "none") {
        EXPECT_LT(stats->bytes_out * 3, stats->bytes_in) << "text should compress";
      }
    }
  }
}

// A sink that takes `room` bytes, then fails as a full disk would.
class FillingSink : public ByteSink {
 public:
  FillingSink(size_t room, bool* committed) : room_(room), committed_(committed) {}
  Status Write(std::span<const std::byte> bytes) override {
    if (bytes.size() > room_) {
      return Fail(ENOSPC, "write", "test sink");
    }
    room_ -= bytes.size();
    return Ok();
  }
  Status Commit() override {
    *committed_ = true;
    return Ok();
  }

 private:
  size_t room_;
  bool* committed_;
};

// Appends `batches` batches of random pages (4 MiB each, stored raw) and then `tail` pages
// into a sink with `room` bytes; the first error, from Append or Finish.
Status WriteIntoFullSink(size_t room, int batches, size_t tail, bool* committed) {
  auto w = PageStoreWriter::CreateWith(std::make_unique<FillingSink>(room, committed), "store",
                                       PageStoreOptions{});
  if (!w) {
    return Unexpected{w.error()};
  }
  std::vector<std::byte> batch(1024 * kPageSize);
  std::mt19937 rng(9);
  for (std::byte& b : batch) {
    b = static_cast<std::byte>(rng());
  }
  for (int i = 0; i < batches; i++) {
    LZ_TRY((*w)->Append(batch));
  }
  LZ_TRY((*w)->Append(std::span(batch).first(tail * kPageSize)));
  auto done = (*w)->Finish();
  if (!done) {
    return Unexpected{done.error()};
  }
  return Ok();
}

// Batches are written on a thread of their own: a write that fails there still fails the
// store, with the sink's message, and the store is never committed, whether the next Append
// sees the failure or only Finish does (the last batch).
TEST_F(PageStoreTest, FailedBackgroundWriteFailsTheStore) {
  constexpr size_t kBatch = 1024 * kPageSize;
  struct Case {
    const char* what;
    size_t room;
    int batches;
    size_t tail;
  } cases[] = {
      {"in the first batch, seen by an Append", 1 << 20, 4, 0},
      {"in the last batch, seen by Finish", kBatch + 8 * kPageSize, 1, 100},
  };
  for (const Case& c : cases) {
    bool committed = false;
    Status st = WriteIntoFullSink(c.room, c.batches, c.tail, &committed);
    ASSERT_FALSE(st) << c.what;
    EXPECT_NE(st.error().Message().find("test sink"), std::string::npos) << st.error().Message();
    EXPECT_FALSE(committed) << c.what;
  }
}

TEST_F(PageStoreTest, CorruptChunkIsNeverDecodedSilently) {
  std::string path = dir_ + "/pages.img";
  auto w = PageStoreWriter::Create(path, PageStoreOptions{});
  ASSERT_TRUE(w);
  auto data = Pages(64, 3, true);
  ASSERT_TRUE((*w)->Append(data));
  ASSERT_TRUE((*w)->Finish());
  auto good = ReadFileToString(path);
  ASSERT_TRUE(good);
  // Flip one byte at a time across the whole file: either Open refuses, or the damaged chunk
  // fails its checksum; the data read back is never different from what was written.
  ASSERT_TRUE(ValidatePageStoreBytes("pages.img", *good));
  // Flip one byte at a time across the file: every flip outside the header's padding must be
  // refused (chunk CRC, index CRC, footer CRC, header CRC).
  for (size_t i = 0; i < good->size(); i += 37) {
    if (i >= sizeof(FileHeader) && i < kPageSize) {
      continue;
    }
    std::string bad = *good;
    bad[i] ^= 0x01;
    EXPECT_FALSE(ValidatePageStoreBytes("pages.img", bad)) << "flip at " << i;
  }
}

// Keeps the stream of bytes a store is made of, in memory.
class MemorySink : public ByteSink {
 public:
  explicit MemorySink(std::vector<std::byte>* out) : out_(out) {}
  Status Write(std::span<const std::byte> bytes) override {
    out_->insert(out_->end(), bytes.begin(), bytes.end());
    return Ok();
  }
  Status Commit() override { return Ok(); }

 private:
  std::vector<std::byte>* out_;
};

// A local store's batches go out in writev calls from the writer thread: the file must hold
// exactly the bytes of the store's stream, whatever the chunk sizes and batch boundaries.
TEST_F(PageStoreTest, LocalFileHoldsExactlyTheStoreStream) {
  auto random = Pages(1500, 3, false);  // 6 MiB stored raw: more than one batch
  auto text = Pages(1100, 4, true);     // chunks of odd compressed sizes
  std::vector<std::byte> stream;
  auto mem = PageStoreWriter::CreateWith(std::make_unique<MemorySink>(&stream), "memory",
                                         PageStoreOptions{});
  ASSERT_TRUE(mem);
  std::string path = dir_ + "/pages.img";
  auto file = PageStoreWriter::Create(path, PageStoreOptions{});
  ASSERT_TRUE(file);
  for (auto* w : {mem->get(), file->get()}) {
    ASSERT_TRUE(w->Append(random));
    ASSERT_TRUE(w->Append(text));
    ASSERT_TRUE(w->Finish());
  }
  auto bytes = ReadFileToString(path);
  ASSERT_TRUE(bytes);
  ASSERT_EQ(bytes->size(), stream.size());
  EXPECT_EQ(std::memcmp(bytes->data(), stream.data(), stream.size()), 0);
}

TEST_F(PageStoreTest, TruncatedFileIsRefused) {
  std::string path = dir_ + "/pages.img";
  auto w = PageStoreWriter::Create(path, PageStoreOptions{});
  ASSERT_TRUE(w);
  ASSERT_TRUE((*w)->Append(Pages(40, 1, false)));
  ASSERT_TRUE((*w)->Finish());
  ASSERT_EQ(truncate(path.c_str(), 5000), 0);
  auto r = PageStoreReader::Open(path);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().Message().find("pages.img"), std::string::npos);
}

TEST(ParseCompression, Specs) {
  EXPECT_EQ(ParseCompression("none", {})->compression, Compression::kNone);
  EXPECT_EQ(ParseCompression("zstd:5", {})->level, 5);
  EXPECT_FALSE(ParseCompression("lz4", {}));
  EXPECT_FALSE(ParseCompression("zstd:99", {}));
}

}  // namespace
}  // namespace lz::img
