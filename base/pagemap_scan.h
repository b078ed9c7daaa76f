// The PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7). Debian 12's headers lack it, so
// the ABI is spelled out here from include/uapi/linux/fs.h.
#pragma once

#include <linux/ioctl.h>

#include <cstdint>

namespace lz {

struct PageRegion {
  uint64_t start;
  uint64_t end;
  uint64_t categories;
};

struct PmScanArg {
  uint64_t size;
  uint64_t flags;
  uint64_t start;
  uint64_t end;
  uint64_t walk_end;
  uint64_t vec;
  uint64_t vec_len;
  uint64_t max_pages;
  uint64_t category_inverted;
  uint64_t category_mask;
  uint64_t category_anyof_mask;
  uint64_t return_mask;
};
static_assert(sizeof(PmScanArg) == 96);

constexpr unsigned long kPagemapScan = _IOWR('f', 16, PmScanArg);

// Page categories.
constexpr uint64_t kPageIsWpAllowed = 1 << 0;
constexpr uint64_t kPageIsWritten = 1 << 1;
constexpr uint64_t kPageIsFile = 1 << 2;
constexpr uint64_t kPageIsPresent = 1 << 3;
constexpr uint64_t kPageIsSwapped = 1 << 4;
constexpr uint64_t kPageIsPfnZero = 1 << 5;
constexpr uint64_t kPageIsHuge = 1 << 6;
constexpr uint64_t kPageIsSoftDirty = 1 << 7;

// Flags.
constexpr uint64_t kPmScanWpMatching = 1 << 0;
constexpr uint64_t kPmScanCheckWpasync = 1 << 1;

}  // namespace lz
