#include "images/image_file.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/file_util.h"
#include "images/core.pb.h"

namespace lz::img {
namespace {

std::string MakeImage() {
  char dir[] = "/tmp/lz-if-XXXXXX";
  EXPECT_NE(mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/core-1.img";
  pb::TaskCore core;
  core.set_pid(1234);
  core.set_comm("worker");
  core.add_threads()->set_tid(1234);
  auto w = RecordWriter::Create(path, ImageKind::kCore);
  EXPECT_TRUE(w);
  EXPECT_TRUE(w->Append(core));
  EXPECT_TRUE(w->Finish());
  auto bytes = ReadFileToString(path);
  EXPECT_TRUE(bytes);
  unlink(path.c_str());
  rmdir(dir);
  return *bytes;
}

TEST(ImageFile, RoundTrip) {
  std::string bytes = MakeImage();
  auto r = RecordReader::FromBytes("core-1.img", bytes, ImageKind::kCore);
  ASSERT_TRUE(r) << r.error().Message();
  pb::TaskCore core;
  auto got = r->NextMessage(&core);
  ASSERT_TRUE(got && *got);
  EXPECT_EQ(core.pid(), 1234);
  EXPECT_EQ(core.comm(), "worker");
  auto end = r->NextMessage(&core);
  ASSERT_TRUE(end);
  EXPECT_FALSE(*end);
}

TEST(ImageFile, WrongKindIsNamed) {
  auto r = RecordReader::FromBytes("core-1.img", MakeImage(), ImageKind::kMm);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().Message(), "core-1.img: is a core image, expected mm");
}

// Every single-byte corruption is detected: header by its CRC, record framing by bounds and
// the record CRC. None may parse into a message silently.
TEST(ImageFile, EveryByteFlipIsDetected) {
  std::string good = MakeImage();
  for (size_t i = 0; i < good.size(); i++) {
    std::string bad = good;
    bad[i] ^= 0x5a;
    auto r = RecordReader::FromBytes("core-1.img", bad, ImageKind::kCore);
    if (!r) {
      EXPECT_NE(r.error().Message().find("core-1.img"), std::string::npos);
      continue;
    }
    pb::TaskCore core;
    auto got = r->NextMessage(&core);
    EXPECT_FALSE(got) << "flip at " << i << " went unnoticed";
    if (!got) {
      EXPECT_NE(got.error().Message().find("offset"), std::string::npos);
    }
  }
}

TEST(ImageFile, EveryTruncationIsDetected) {
  std::string good = MakeImage();
  for (size_t len = 0; len < good.size(); len++) {
    auto r = RecordReader::FromBytes("core-1.img", good.substr(0, len), ImageKind::kCore);
    if (!r) {
      continue;
    }
    pb::TaskCore core;
    auto got = r->NextMessage(&core);
    bool clean_empty = got && !*got && len == sizeof(FileHeader);
    EXPECT_TRUE(!got || clean_empty) << "truncation at " << len << " went unnoticed";
  }
}

TEST(ImageFile, HugeLengthIsRefusedBeforeAllocation) {
  std::string good = MakeImage();
  uint32_t huge = 0xfffffff0;
  std::memcpy(good.data() + sizeof(FileHeader), &huge, 4);
  auto r = RecordReader::FromBytes("x.img", good, ImageKind::kCore);
  ASSERT_TRUE(r);
  auto next = r->Next();
  ASSERT_FALSE(next);
  EXPECT_NE(next.error().Message().find("too large at offset 16"), std::string::npos);
}

}  // namespace
}  // namespace lz::img
