// Shared memory objects (anonymous shared mappings, memfds and SysV segments): made once by the
// front-end, before any task forks, and reached by every task that maps them or holds them open.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

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
  /// Puts back the memfds' seals, and removes the SysV segments that had been removed while
  /// attached (they go when their last task detaches, as before).
  [[nodiscard]] Status Seal(const img::Dump& dump);
  /// The restore succeeded: the SysV segments made stay (until then a failed restore, which
  /// kills the tasks, removes them as well).
  void Keep() { sysv_.ids.clear(); }

 private:
  // SysV segments made by this restore, removed when this goes unless kept, and the
  // front-end's attachments of them.
  struct SysvSegments {
    SysvSegments() = default;
    SysvSegments(SysvSegments&& o) noexcept
        : ids(std::exchange(o.ids, {})), held(std::exchange(o.held, {})) {}
    SysvSegments& operator=(SysvSegments&&) = delete;
    ~SysvSegments();
    void Detach();
    std::vector<int> ids;
    std::vector<void*> held;
  };
  // Checks that every SysV segment can be made again, removes the dumped tree's leftovers,
  // then makes and fills each.
  [[nodiscard]] Status CreateSysv(const img::Dump& dump);

  pid_t owner_ = 0;
  std::map<uint32_t, UniqueFd> fds_;
  SysvSegments sysv_;
};

}  // namespace lz
