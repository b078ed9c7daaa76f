#include "uffd/range_set.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

// Every allocation of this test binary is counted, to check the fault path's share of them.
static std::atomic<size_t> g_allocations{0};
void* operator new(size_t n) {
  g_allocations++;
  if (void* p = std::malloc(n == 0 ? 1 : n)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new(size_t n, std::align_val_t a) {
  g_allocations++;  // the memory resources' way in
  size_t align = static_cast<size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) {
    return p;
  }
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace lz {
namespace {

constexpr uint64_t P = 4096;

TEST(RangeSet, AddFindRemove) {
  RangeSet s;
  s.Add(10 * P, 20 * P);
  EXPECT_EQ(s.ImageOf(10 * P), 10 * P);
  EXPECT_EQ(s.ImageOf(19 * P + 5), 19 * P + 5);
  EXPECT_FALSE(s.ImageOf(20 * P));
  s.RemoveImage(12 * P, 14 * P);
  EXPECT_FALSE(s.ImageOf(12 * P));
  EXPECT_TRUE(s.ImageOf(11 * P));
  EXPECT_TRUE(s.ImageOf(14 * P));
  EXPECT_EQ(s.bytes(), 8 * P);
  std::vector<PendingRange> parts;
  s.Intersect(0, 100 * P, &parts);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].image_end, 12 * P);
  EXPECT_EQ(parts[1].image_start, 14 * P);
}

TEST(RangeSet, RemoveLiveDropsDontNeedPages) {
  RangeSet s;
  s.Add(0, 8 * P);
  s.RemoveLive(2 * P, 3 * P);
  EXPECT_FALSE(s.ImageOf(2 * P));
  EXPECT_EQ(s.bytes(), 7 * P);
}

TEST(RangeSet, RemapMovesLiveAddresses) {
  RangeSet s;
  s.Add(0x10000, 0x10000 + 4 * P);
  // mremap the middle two pages far away.
  s.Remap(0x10000 + P, 0x900000, 2 * P);
  EXPECT_FALSE(s.ImageOf(0x10000 + P));
  EXPECT_EQ(s.ImageOf(0x900000), 0x10000 + P);
  EXPECT_EQ(s.ImageOf(0x900000 + P + 7), 0x10000 + 2 * P + 7);
  EXPECT_EQ(s.ImageOf(0x10000), 0x10000u);
  std::vector<PendingRange> mid;
  s.Intersect(0x10000 + P, 0x10000 + 2 * P, &mid);
  ASSERT_EQ(mid.size(), 1u);
  EXPECT_EQ(mid[0].live_start(), 0x900000u);
  // After the move a live removal must find the moved piece.
  s.RemoveLive(0x900000, 0x900000 + P);
  EXPECT_FALSE(s.ImageOf(0x900000));
  EXPECT_EQ(s.bytes(), 3 * P);
}

TEST(RangeSet, ContainsImage) {
  RangeSet s;
  s.Add(10 * P, 12 * P);
  EXPECT_FALSE(s.ContainsImage(9 * P));
  EXPECT_TRUE(s.ContainsImage(10 * P));
  EXPECT_TRUE(s.ContainsImage(11 * P));
  EXPECT_FALSE(s.ContainsImage(12 * P));
  s.RemoveImage(10 * P, 11 * P);
  EXPECT_FALSE(s.ContainsImage(10 * P));
  EXPECT_TRUE(s.ContainsImage(11 * P));
}

TEST(RangeSet, NextFromWraps) {
  RangeSet s;
  s.Add(10 * P, 12 * P);
  s.Add(30 * P, 31 * P);
  EXPECT_EQ(s.NextFrom(0)->image_start, 10 * P);
  EXPECT_EQ(s.NextFrom(11 * P)->image_start, 11 * P);  // from there, to the piece's end
  EXPECT_EQ(s.NextFrom(11 * P)->image_end, 12 * P);
  EXPECT_EQ(s.NextFrom(12 * P)->image_start, 30 * P);
  EXPECT_EQ(s.NextFrom(40 * P)->image_start, 10 * P);
  s.RemoveImage(0, 100 * P);
  EXPECT_TRUE(s.empty());
  EXPECT_FALSE(s.NextFrom(0));
}

// What serving faults does to a set: look up the pieces of a chunk and drop the pages copied,
// splitting pieces. Once the set has been that fragmented before, it allocates nothing.
TEST(RangeSet, ServingFaultsAllocatesNothingOnceWarm) {
  RangeSet s;
  constexpr uint64_t kChunks = 512, kChunk = 16 * P;
  s.Add(0, kChunks * kChunk);
  std::vector<PendingRange> pieces;
  pieces.reserve(64);
  auto serve = [&](uint64_t page_in_chunk) {
    for (uint64_t k = 0; k < kChunks; k += 2) {
      pieces.clear();
      s.Intersect(k * kChunk, (k + 1) * kChunk, &pieces);
      // One page of the chunk faulted and came in: the piece splits around it.
      s.RemoveImage(k * kChunk + page_in_chunk * P, k * kChunk + (page_in_chunk + 1) * P);
    }
  };
  serve(3);                    // warm: the pool grows to this many pieces
  s.Add(0, kChunks * kChunk);  // every piece back in one: the nodes return to the pool
  size_t before = g_allocations.load();
  serve(5);
  EXPECT_EQ(g_allocations.load(), before);
  EXPECT_EQ(s.bytes(), kChunks * kChunk - kChunks / 2 * P);
  RangeSet copy = s;  // a forked child's copy: the same pieces, in a pool of its own
  EXPECT_EQ(copy.bytes(), s.bytes());
  EXPECT_EQ(copy.ImageOf(5 * P), std::nullopt);
  EXPECT_EQ(copy.ImageOf(6 * P), 6 * P);
}

}  // namespace
}  // namespace lz
