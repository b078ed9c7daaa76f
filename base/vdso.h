#pragma once

#include <cstdint>

#include "base/result.h"

namespace lz {

/// This process's [vdso]: the one every process on this kernel gets.
struct VdsoInfo {
  uint64_t start = 0;
  uint64_t size = 0;
  uint32_t crc = 0;          // CRC32C of its bytes
  uint64_t syscall_off = 0;  // offset of a `syscall` instruction inside it
};

[[nodiscard]] Result<VdsoInfo> OwnVdso();

}  // namespace lz
