#include "base/result.h"

#include <gtest/gtest.h>

#include <memory>

namespace lz {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) {
    return Invalid("half", std::to_string(x) + " is odd");
  }
  return x / 2;
}

Result<int> Quarter(int x) {
  LZ_ASSIGN_OR_RETURN(int h, Half(x));
  LZ_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  LZ_TRY_CTX(Half(x), "check");
  return Ok();
}

TEST(Result, ValueAndErrorPropagate) {
  ASSERT_TRUE(Quarter(8));
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().Message(), "half 3 is odd");
  auto s = CheckEven(3);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().Message(), "check: half 3 is odd");
}

TEST(Result, ErrnoIsRendered) {
  Error e{ENOENT, "open", "/nonexistent"};
  EXPECT_EQ(e.Message(), "open /nonexistent: No such file or directory");
}

TEST(Result, MoveOnlyValues) {
  auto make = []() -> Result<std::unique_ptr<int>> { return std::make_unique<int>(7); };
  auto r = make();
  ASSERT_TRUE(r);
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

}  // namespace
}  // namespace lz
