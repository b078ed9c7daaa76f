#include "images/pagemap.h"

#include <gtest/gtest.h>
#include <stdlib.h>

namespace lz::img {
namespace {

constexpr uint64_t P = kPageSize;

TEST(Pagemap, AppendMergesContinuingRuns) {
  Pagemap pm;
  pm.Append({0x10000, 2, kPagePresent, 0});
  pm.Append({0x10000 + 2 * P, 3, kPagePresent, 2});
  pm.Append({0x10000 + 5 * P, 1, kPageZero, 0});
  pm.Append({0x20000, 1, kPagePresent, 5});
  ASSERT_EQ(pm.runs().size(), 3u);
  EXPECT_EQ(pm.runs()[0].nr_pages, 5u);
  EXPECT_EQ(pm.stored_pages(), 6u);
  EXPECT_EQ(pm.total_pages(), 7u);
  EXPECT_TRUE(pm.Validate("t", 6));
}

TEST(Pagemap, FindIsExact) {
  Pagemap pm;
  pm.Append({0x10000, 2, kPagePresent, 0});
  pm.Append({0x40000, 1, kPageZero, 0});
  EXPECT_EQ(pm.Find(0x10000)->vaddr, 0x10000u);
  EXPECT_EQ(pm.Find(0x10000 + 2 * P - 1)->vaddr, 0x10000u);
  EXPECT_EQ(pm.Find(0x10000 + 2 * P), nullptr);
  EXPECT_EQ(pm.Find(0xffff), nullptr);
  EXPECT_EQ(pm.Find(0x40000)->flags, kPageZero);
  EXPECT_EQ(pm.Find(0x41000), nullptr);
}

TEST(Pagemap, StoredIndexOfOnlyForStoredPages) {
  Pagemap pm;
  pm.Append({0x10000, 2, kPagePresent, 0});
  pm.Append({0x10000 + 2 * P, 3, kPageZero, 0});
  pm.Append({0x20000, 4, kPagePresent, 2});
  EXPECT_EQ(pm.StoredIndexOf(0x10000 + P + 7), 1u);
  EXPECT_EQ(pm.StoredIndexOf(0x20000 + 3 * P), 5u);
  EXPECT_EQ(pm.StoredIndexOf(0x10000 + 2 * P), std::nullopt);  // a zero run
  EXPECT_EQ(pm.StoredIndexOf(0x20000 + 4 * P), std::nullopt);  // past every run
}

TEST(Pagemap, FirstPresentRunFromIndex) {
  Pagemap pm;
  pm.Append({0x10000, 4, kPagePresent, 0});
  pm.Append({0x20000, 1, kPageZero, 0});
  pm.Append({0x30000, 4, kPagePresent, 4});
  EXPECT_EQ(pm.FirstPresentRunFromIndex(0), 0u);
  EXPECT_EQ(pm.FirstPresentRunFromIndex(3), 0u);
  EXPECT_EQ(pm.FirstPresentRunFromIndex(4), 2u);
  EXPECT_EQ(pm.FirstPresentRunFromIndex(8), 3u);
}

TEST(Pagemap, ValidateRejectsBadRuns) {
  Pagemap out_of_store;
  out_of_store.Append({0x10000, 4, kPagePresent, 0});
  EXPECT_FALSE(out_of_store.Validate("t", 3));
  Pagemap unaligned;
  unaligned.Append({0x10001, 1, kPageZero, 0});
  EXPECT_FALSE(unaligned.Validate("t", 0));
  Pagemap bad_flags;
  bad_flags.Append({0x10000, 1, kPagePresent | kPageZero, 0});
  EXPECT_FALSE(bad_flags.Validate("t", 1));
  Pagemap in_parent;
  in_parent.Append({0x10000, 1, kPageInParent, 0});
  EXPECT_FALSE(in_parent.Validate("t", 0)) << "must not restore as zeros";
  EXPECT_FALSE(IsPlainFileName("../etc/passwd"));
  EXPECT_FALSE(IsPlainFileName("a/b"));
  EXPECT_TRUE(IsPlainFileName("pages-1.img"));
}

TEST(Pagemap, FileRoundTripAndCorruption) {
  char dir[] = "/tmp/lz-pm-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/pagemap-1.img";
  PagemapFile pm;
  pm.pages_file = "pages-1.img";
  pm.chunk_pages = 16;
  for (uint64_t i = 0; i < 100; i++) {
    pm.pagemap.Append({0x100000 + i * 4 * P, 2, kPagePresent | kPageLazy, i * 2});
  }
  ASSERT_TRUE(WritePagemap(path, pm));
  auto back = ReadPagemap(path);
  ASSERT_TRUE(back) << back.error().Message();
  EXPECT_EQ(back->pagemap.runs().size(), 100u);
  EXPECT_EQ(back->pagemap.stored_pages(), 200u);
  EXPECT_EQ(back->pages_file, "pages-1.img");
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace lz::img
