// `lazarus page-server`: serves the page stores of an image directory to a lazy-pages daemon
// on another host, and receives the page stores of a dump. The protocol and the threat model
// are in docs/page-server.md.
#pragma once

#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lz {

struct PageServerOptions {
  std::string dir;
  std::string address;  // required: the server never listens on every interface by default
  int port = 0;
  std::string token;  // shared secret a client must present; empty: none asked
  bool daemonize = false;
  std::string pidfile;
  int status_fd = -1;  // written one byte once listening (CRIU's --status-fd)
};

/// Listens on address:port (the socket is returned so that a caller can report readiness).
[[nodiscard]] Result<UniqueFd> ListenPageServer(const std::string& address, int port);

/// Serves one client at a time (others are told "busy") until a client says goodbye.
[[nodiscard]] Status ServePages(int listen_fd, const std::string& dir, const std::string& token);

/// Serves one accepted connection (hello, then requests) until the client says goodbye (true)
/// or goes away (false). Used by the fuzzer on a socketpair.
[[nodiscard]] Result<bool> ServeConnection(UniqueFd conn, const std::string& dir,
                                           const std::string& token);

/// The whole command: listen, report, optionally daemonize, serve.
[[nodiscard]] Status RunPageServer(const PageServerOptions& opts);

/// Reads a token file (its first line, without surrounding blanks); an empty token is an error.
[[nodiscard]] Result<std::string> ReadTokenFile(const std::string& path);

}  // namespace lz
