#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lz {

/// The target of symbolic link `path`.
[[nodiscard]] Result<std::string> ReadLink(const std::string& path);
/// open(2) with O_CLOEXEC always added; `what` names the file in errors.
[[nodiscard]] Result<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode = 0644);
/// Reads a whole (small, e.g. /proc) file; fails beyond `limit` bytes.
[[nodiscard]] Result<std::string> ReadFileToString(const std::string& path,
                                                   size_t limit = 64 << 20);
/// Writes all of `data`, retrying short writes and EINTR.
[[nodiscard]] Status WriteAll(int fd, std::span<const std::byte> data);
[[nodiscard]] Status WriteAll(int fd, std::string_view data);
/// pread until `out` is full; returns the bytes read (short only at end of file).
[[nodiscard]] Result<size_t> PreadFull(int fd, std::span<std::byte> out, uint64_t offset);
/// pwrite until all of `data` is written at `offset`; `what` names the target in errors.
[[nodiscard]] Status PwriteAll(int fd, std::span<const std::byte> data, uint64_t offset,
                               const char* what);
/// Writes `data` to `path` through a temporary file and rename, so readers never see half.
[[nodiscard]] Status WriteFileAtomically(const std::string& path, std::string_view data);

std::vector<std::string_view> SplitString(std::string_view s, char sep);
std::string_view TrimSpace(std::string_view s);
/// Parses a whole decimal (or 0x hex with base 16) number; nullopt-like failure as false.
bool ParseU64(std::string_view s, uint64_t* out, int base = 10);
bool ParseI64(std::string_view s, int64_t* out);

}  // namespace lz
