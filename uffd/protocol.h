// The lazy-pages socket: how `restore --lazy-pages` hands each task's userfaultfd to the
// `lazy-pages` daemon. A SOCK_SEQPACKET unix socket at DIR/lazy-pages.socket (CRIU's name).
//
//   restore -> daemon: LazyMsg{kLazyTask, pid} with the task's uffd in SCM_RIGHTS, per task
//   daemon -> restore: LazyMsg{kLazyAck, pid} once the daemon serves that uffd
//   restore -> daemon: LazyMsg{kLazyAllSent, n}; daemon -> restore: LazyMsg{kLazyAck, n}
#pragma once

#include <cstdint>

namespace lz {

constexpr const char* kLazySocketName = "lazy-pages.socket";
constexpr uint32_t kLazyMagic = 0x4c5a4c50;  // "PLZL"
constexpr uint32_t kLazyVersion = 1;

enum LazyMsgType : uint32_t {
  kLazyTask = 1,
  kLazyAck = 2,
  kLazyAllSent = 3,
  kLazyError = 4,
};

struct LazyMsg {
  uint32_t magic;
  uint32_t version;
  uint32_t type;  // LazyMsgType
  int32_t pid;    // kLazyTask/kLazyAck: the task; kLazyAllSent: number of tasks
};
static_assert(sizeof(LazyMsg) == 16);

}  // namespace lz
