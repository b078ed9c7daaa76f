// Shared memory objects (anonymous shared mappings and memfds): made once by the front-end,
// before any task forks, and reached by every task that maps them or holds them open.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "images/image_dir.h"

namespace lz {

/// Holds one descriptor per object of the dump in the front-end. Tasks open an object through
/// PathOf (the front-end's /proc fd link), which gives them the same object, not a copy: what one
/// task writes, every other sees, as before the dump.
class SharedMemory {
 public:
  SharedMemory() = default;
  /// Creates every object of `dump` with its content; seals come later (Seal), once every task
  /// has mapped them, since a write seal refuses writable mappings made after it.
  [[nodiscard]] static Result<SharedMemory> Create(const img::Dump& dump);
  /// The path a task of the tree opens to reach object `id`.
  [[nodiscard]] Result<std::string> PathOf(uint32_t id) const;
  /// Puts back the memfds' seals.
  [[nodiscard]] Status Seal(const img::Dump& dump);

 private:
  pid_t owner_ = 0;
  std::map<uint32_t, UniqueFd> fds_;
};

}  // namespace lz
