// libFuzzer target for every image parser: the first byte picks the parser, the rest is the
// file. Built with scripts/fuzz.sh (clang, -fsanitize=fuzzer,address,undefined).
#include <cstddef>
#include <cstdint>
#include <string>

#include "images/core.pb.h"
#include "images/files.pb.h"
#include "images/image_file.h"
#include "images/inventory.pb.h"
#include "images/mm.pb.h"
#include "images/page_store.h"
#include "images/pagemap.h"
#include "images/pagemap.pb.h"

namespace {

void ParseRecords(std::string bytes, lz::img::ImageKind kind, google::protobuf::MessageLite* msg) {
  auto r = lz::img::RecordReader::FromBytes("fuzz.img", std::move(bytes), kind);
  if (!r) {
    return;
  }
  for (int i = 0; i < 64; i++) {
    auto got = r->NextMessage(msg);
    if (!got || !*got) {
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 8) {
    case 0: {
      lz::pb::Inventory m;
      ParseRecords(bytes, lz::img::ImageKind::kInventory, &m);
      break;
    }
    case 1: {
      lz::pb::TaskCore m;
      ParseRecords(bytes, lz::img::ImageKind::kCore, &m);
      break;
    }
    case 2: {
      lz::pb::Mm m;
      ParseRecords(bytes, lz::img::ImageKind::kMm, &m);
      break;
    }
    case 3: {
      lz::pb::FdTable m;
      ParseRecords(bytes, lz::img::ImageKind::kFds, &m);
      break;
    }
    case 4: {
      auto pm = lz::img::ParsePagemap("fuzz.img", bytes);
      if (pm) {
        // Lookups on whatever validated must stay in bounds.
        for (const auto& r : pm->pagemap.runs()) {
          (void)pm->pagemap.Find(r.vaddr);
          (void)pm->pagemap.FirstPresentRunFromIndex(r.page_index);
        }
      }
      break;
    }
    case 5:
      (void)lz::img::ValidatePageStoreBytes("fuzz.img", bytes);
      break;
    case 6: {
      lz::pb::ShmemTable m;
      ParseRecords(bytes, lz::img::ImageKind::kShmem, &m);
      break;
    }
    case 7: {
      lz::pb::WorkingSet m;
      ParseRecords(bytes, lz::img::ImageKind::kWorkingSet, &m);
      break;
    }
  }
  return 0;
}
