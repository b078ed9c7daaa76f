#include "uffd/range_set.h"

#include <gtest/gtest.h>

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
  auto parts = s.Intersect(0, 100 * P);
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
  auto mid = s.Intersect(0x10000 + P, 0x10000 + 2 * P);
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

}  // namespace
}  // namespace lz
