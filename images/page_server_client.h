// The client side of the page-server protocol: a lazy-pages daemon reading page stores, or a
// dump writing them (images/page_server_protocol.h).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "images/page_store.h"

namespace lz {

class PageServerClient {
 public:
  /// Connects (bounded by a few seconds) and says hello with `token` (may be empty).
  [[nodiscard]] static Result<std::unique_ptr<PageServerClient>> Connect(const std::string& address,
                                                                         int port, uint16_t role,
                                                                         const std::string& token);

  int fd() const { return fd_.get(); }
  const std::string& where() const { return where_; }

  // Blocking requests: only while no pipelined read is outstanding.
  [[nodiscard]] Result<uint64_t> Stat(pid_t pid);
  [[nodiscard]] Status ReadAt(pid_t pid, uint64_t offset, std::span<std::byte> out);

  // Pipelined reads, answered through Receive in any order. An urgent read is sent at once
  // (with any queued before it); others wait in a queue until Flush, so that a batch of
  // background reads costs one send.
  [[nodiscard]] Status SendRead(uint32_t id, pid_t pid, uint64_t offset, uint32_t len, bool urgent);
  [[nodiscard]] Status Flush();
  using Deliver = std::function<void(uint32_t id, int status, std::span<const std::byte> data)>;
  /// Takes what has arrived without blocking and hands over every complete reply. An error
  /// means the connection is lost.
  [[nodiscard]] Status Receive(const Deliver& deliver);

  // Writing one task's page store, then saying goodbye (both wait for the server's answer).
  [[nodiscard]] Status PutBegin(pid_t pid);
  [[nodiscard]] Status PutData(pid_t pid, std::span<const std::byte> data);
  [[nodiscard]] Status PutEnd(pid_t pid);
  [[nodiscard]] Status Bye();

 private:
  PageServerClient(UniqueFd fd, std::string where);
  Status Send(uint16_t type, uint16_t flags, uint32_t id, pid_t pid, uint32_t len, uint64_t offset,
              std::span<const std::byte> payload = {});
  // Waits for the reply to request `id`; its payload goes to `out` (must fit).
  Result<size_t> Await(uint32_t id, std::span<std::byte> out);
  Unexpected Lost(const std::string& what) const;

  UniqueFd fd_;
  std::string where_;
  std::vector<std::byte> in_;  // receive buffer; its first in_len_ bytes are a partial reply
  size_t in_len_ = 0;
  std::vector<std::byte> queued_;  // read requests not sent yet
};

/// A page store written through `client` (which must outlive it) as task `pid`'s.
std::unique_ptr<img::ByteSink> MakeRemoteSink(PageServerClient& client, pid_t pid);

}  // namespace lz
