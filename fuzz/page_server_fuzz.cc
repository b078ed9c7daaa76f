// libFuzzer target for the page server: arbitrary bytes from a client (hello, requests, write
// frames) must get an error reply or a closed connection, never a crash or a read outside
// the served files. The input is fed through a socketpair to the real request loop, over a
// directory holding one small page store.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "images/page_server.h"
#include "images/page_store.h"

namespace {

std::string MakeDir() {
  static char tmpl[] = "/tmp/lz-ps-fuzz-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  // The fuzzer exits through exit(), so the scratch store goes with it.
  std::atexit([] {
    std::string store = std::string(tmpl) + "/pages-1.img";
    ::unlink(store.c_str());
    ::rmdir(tmpl);
  });
  auto w = lz::img::PageStoreWriter::Create(dir + "/pages-1.img", {});
  std::vector<std::byte> pages(3 * 4096, std::byte{0x5a});
  if (!w || !(*w)->Append(pages) || !(*w)->Finish()) {
    std::abort();
  }
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = MakeDir();
  if (size > 60000) {
    return 0;  // fits the socket buffer, so that writing it never blocks
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return 0;
  }
  lz::UniqueFd client(sv[0]);
  int big = 1 << 20;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  (void)!::write(sv[0], data, size);
  ::shutdown(sv[0], SHUT_WR);
  // Whatever the server answers is read and dropped, so that it never blocks on a full buffer.
  std::thread drain([fd = sv[0]] {
    char buf[65536];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
  });
  (void)lz::ServeConnection(lz::UniqueFd(sv[1]), dir, size % 2 ? "token" : "");
  drain.join();
  // A write session may have left stores behind: keep only the first one (whatever it holds
  // now, the server serves it as bytes).
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename() != "pages-1.img") {
      std::filesystem::remove(e.path());
    }
  }
  return 0;
}
