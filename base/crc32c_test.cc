#include "base/crc32c.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lz {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 B.4 test vectors.
  std::vector<uint8_t> zeros(32, 0);
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  std::vector<uint8_t> ones(32, 0xff);
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  std::string s = "123456789";
  EXPECT_EQ(Crc32c(s.data(), s.size()), 0xE3069283u);
}

TEST(Crc32c, IncrementalEqualsWhole) {
  std::string s = "The quick brown fox jumps over the lazy dog, several times over.";
  uint32_t whole = Crc32c(s.data(), s.size());
  uint32_t part = Crc32c(s.data(), 10);
  part = Crc32c(s.data() + 10, s.size() - 10, part);
  EXPECT_EQ(whole, part);
}

}  // namespace
}  // namespace lz
