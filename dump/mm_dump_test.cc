#include <gtest/gtest.h>

#include <cstring>

#include "dump/task_dump.h"

namespace lz {
namespace {

constexpr uint64_t P = 4096;

void AddThread(pb::TaskCore* core, uint64_t rsp, uint64_t fs_base, uint64_t rseq) {
  Regs regs{};
  regs.rsp = rsp;
  regs.fs_base = fs_base;
  pb::ThreadCore* t = core->add_threads();
  t->set_gpregs(std::string(reinterpret_cast<const char*>(&regs), sizeof regs));
  t->set_rseq_addr(rseq);
}

TEST(HotPages, StackTlsAndRseqOfEveryThreadSortedOnce) {
  pb::TaskCore core;
  AddThread(&core, 0x7ffd0000'1238, 0x7f00'0000'2740, 0x7f00'0000'2fe0);
  AddThread(&core, 0x7e00'0010'0ff8, 0x7e00'0020'0640, 0);
  std::vector<uint64_t> hot = HotPagesOf(core);
  std::vector<uint64_t> want = {
      0x7e00'0010'0000 - P, 0x7e00'0010'0000, 0x7e00'0010'0000 + P,  // thread 2's stack
      0x7e00'0020'0000 - P, 0x7e00'0020'0000, 0x7e00'0020'0000 + P,  // thread 2's TLS
      0x7f00'0000'1000,     0x7f00'0000'2000, 0x7f00'0000'3000,      // thread 1's TLS, rseq
      0x7ffd'0000'0000,     0x7ffd'0000'1000, 0x7ffd'0000'2000,      // thread 1's stack
  };
  EXPECT_EQ(hot, want);
}

TEST(HotPages, ThreadWithoutRegistersGivesNothingButItsRseq) {
  pb::TaskCore core;
  core.add_threads()->set_rseq_addr(0x5000'0123);
  EXPECT_EQ(HotPagesOf(core), std::vector<uint64_t>{0x5000'0000});
}

}  // namespace
}  // namespace lz
