// The page-server wire protocol (docs/page-server.md): a versioned hello, then fixed-size
// requests and replies over one TCP connection. Byte ranges of one task's page store
// (pages-PID.img) are read by offset and length, or the whole store is written (a dump
// sending its pages). Chunks travel as stored: compressed, with the CRC the index holds.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lz::ps {

constexpr uint32_t kMagic = 0x53505a4c;  // "LZPS"
constexpr uint16_t kVersion = 1;
constexpr uint32_t kMaxTokenLen = 4096;
constexpr uint32_t kMaxRead = 4 << 20;  // bytes one read may ask for
constexpr uint32_t kMaxPut = 4 << 20;   // bytes one write frame may carry

enum Role : uint16_t {
  kRoleRead = 1,   // a lazy-pages daemon
  kRoleWrite = 2,  // a dump sending its page stores
};

/// Client -> server, first on the connection; `token_len` bytes of the shared secret follow.
struct Hello {
  uint32_t magic;
  uint16_t version;
  uint16_t role;
  uint32_t token_len;
};
static_assert(sizeof(Hello) == 12);

enum HelloStatus : uint16_t {
  kHelloOk = 0,
  kHelloBadVersion = 1,
  kHelloAuthFailed = 2,
  kHelloBusy = 3,  // another client is being served
};

struct HelloReply {
  uint32_t magic;
  uint16_t version;
  uint16_t status;  // HelloStatus
};
static_assert(sizeof(HelloReply) == 8);

enum Type : uint16_t {
  kStat = 1,      // size of pages-PID.img; reply payload: u64
  kRead = 2,      // `len` bytes at `offset` of pages-PID.img; reply payload: the bytes
  kPutBegin = 3,  // start writing pages-PID.img (to a temporary file); no reply
  kPutData = 4,   // `len` bytes follow the request, appended; no reply
  kPutEnd = 5,    // the store is complete: put it in place; reply: status
  kBye = 6,       // the client is done; reply: status, then the server exits
};

enum Flags : uint16_t {
  kUrgent = 1,  // a fault waits for this read: served before background reads
};

struct Request {
  uint16_t type;
  uint16_t flags;
  uint32_t id;  // echoed in the reply
  int32_t pid;
  uint32_t len;
  uint64_t offset;
};
static_assert(sizeof(Request) == 24);

struct Reply {
  uint32_t id;
  int32_t status;  // 0, or a positive errno
  uint64_t len;    // payload bytes that follow
};
static_assert(sizeof(Reply) == 16);

/// Checks a request read from the network: a known type and flags, a positive pid, a length
/// within the protocol's bounds. (Offsets are checked by the server against the file.)
[[nodiscard]] Status CheckRequest(const Request& r);
/// Checks a hello: magic, version (kHelloBadVersion otherwise), role and token length.
[[nodiscard]] Result<HelloStatus> CheckHello(const Hello& h);
/// Receives exactly `len` bytes, retrying interrupted calls (with a receive timeout set the
/// kernel does not restart them, e.g. when io_uring task work arrives). False on EOF or error.
bool RecvExactly(int fd, void* buf, size_t len);

/// Sends every byte of `iov[0..n)` (no SIGPIPE), retrying interrupted and partial sends.
/// False when the peer is gone.
bool SendExactly(int fd, const iovec* iov, int n);
/// The same for one buffer.
bool SendExactly(int fd, std::span<const std::byte> bytes);

/// A TCP socket for address:port (numeric port; the address may be a name), not yet bound
/// or connected; `*addr`/`*len` get the address to bind or connect to.
[[nodiscard]] Result<UniqueFd> SocketFor(const std::string& address, int port,
                                         sockaddr_storage* addr, socklen_t* len);

/// Where the bytes of a task's page store live in the server's directory.
std::string PagesFileName(pid_t pid);

}  // namespace lz::ps
