#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace lz {

/// CRC-32C (Castagnoli) of `data`, continuing from `crc` (0 to start). Uses the SSE4.2
/// instruction when the CPU has it, a table otherwise; both give the same value.
uint32_t Crc32c(std::span<const std::byte> data, uint32_t crc = 0);
uint32_t Crc32c(const void* data, size_t len, uint32_t crc = 0);

}  // namespace lz
