#include "base/file_util.h"

#include <gtest/gtest.h>
#include <stdlib.h>

namespace lz {
namespace {

TEST(FileUtil, ParseNumbers) {
  uint64_t u;
  EXPECT_TRUE(ParseU64("1234", &u));
  EXPECT_EQ(u, 1234u);
  EXPECT_TRUE(ParseU64("7f00ab", &u, 16));
  EXPECT_EQ(u, 0x7f00abu);
  EXPECT_FALSE(ParseU64("12x", &u));
  EXPECT_FALSE(ParseU64("", &u));
  int64_t i;
  EXPECT_TRUE(ParseI64("-5", &i));
  EXPECT_EQ(i, -5);
}

TEST(FileUtil, SplitAndTrim) {
  auto parts = SplitString("a b  c", ' ');
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_EQ(parts[3], "c");
  EXPECT_EQ(TrimSpace("  x y \n"), "x y");
}

TEST(FileUtil, AtomicWriteThenRead) {
  char dir[] = "/tmp/lz-fu-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/f";
  ASSERT_TRUE(WriteFileAtomically(path, "hello"));
  auto s = ReadFileToString(path);
  ASSERT_TRUE(s);
  EXPECT_EQ(*s, "hello");
  auto missing = ReadFileToString(std::string(dir) + "/none");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ENOENT);
  unlink(path.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace lz
