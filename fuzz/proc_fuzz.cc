// libFuzzer target for the /proc text parsers (the kernel's format, but parsed defensively).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/proc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 12) {
    case 0:
      (void)lz::ParseSmaps(text);
      break;
    case 1:
      (void)lz::ParseStat(text);
      break;
    case 2:
      (void)lz::ParseStatus(text);
      break;
    case 3:
      (void)lz::ParseLimits(text);
      break;
    case 4:
      (void)lz::ParseFdinfo(text);
      break;
    case 5:
      (void)lz::ParseEpollFdinfo(text);
      break;
    case 6: {
      uint64_t ns;
      (void)lz::ParseTimespecPair(text, &ns);
      break;
    }
    case 7:
      (void)lz::ParsePosixTimers(text);
      break;
    case 8:
      (void)lz::ParseInotifyFdinfo(text);
      break;
    case 9:
      (void)lz::ParseMountinfo(text);
      break;
    case 10:
      (void)lz::ParseFdLocks(text);
      break;
    case 11:
      (void)lz::ParseSysvShm(text);
      break;
  }
  return 0;
}
