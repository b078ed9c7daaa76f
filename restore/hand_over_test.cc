// LazyHandOver against a scripted daemon on a real socket: acks read as they come (hundreds of
// tasks never fill the socket), a refusal named by its pid, a daemon that goes away.
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "base/scm.h"
#include "restore/restore_internal.h"

namespace lz {
namespace {

class FakeDaemon {
 public:
  FakeDaemon() {
    char tmpl[] = "/tmp/lz-ho-XXXXXX";
    EXPECT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    listen_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = dir_ + "/" + kLazySocketName;
    std::strcpy(addr.sun_path, path.c_str());
    EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_, 1), 0);
  }
  ~FakeDaemon() {
    if (thread_.joinable()) {
      thread_.join();
    }
    ::close(listen_);
    ::unlink((dir_ + "/" + kLazySocketName).c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& dir() const { return dir_; }

  // Accepts the restore and answers every message with the reply type `answer` gives (none:
  // close), on a thread of its own. As the real daemon does, it never blocks on a reply: those
  // that do not fit wait in a queue until the socket has room.
  void Serve(std::function<std::optional<uint32_t>(const LazyMsg& m)> answer) {
    thread_ = std::thread([this, answer] {
      int conn = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      std::deque<LazyMsg> out;
      for (bool open = true; open;) {
        pollfd p{conn, static_cast<short>(POLLIN | (out.empty() ? 0 : POLLOUT)), 0};
        if (::poll(&p, 1, 10000) <= 0) {
          break;
        }
        for (;;) {
          LazyMsg m{};
          int fd = -1;
          ssize_t n = RecvWithFd(conn, &m, sizeof m, &fd, MSG_DONTWAIT);
          if (fd >= 0) {
            ::close(fd);
          }
          if (n < 0 && errno == EAGAIN) {
            break;
          }
          std::optional<uint32_t> type = n == sizeof m ? answer(m) : std::nullopt;
          if (!type) {
            open = false;
            break;
          }
          out.push_back(LazyMsg{kLazyMagic, kLazyVersion, *type, m.pid});
        }
        while (open && !out.empty() &&
               ::send(conn, &out.front(), sizeof(LazyMsg), MSG_NOSIGNAL | MSG_DONTWAIT) ==
                   static_cast<ssize_t>(sizeof(LazyMsg))) {
          out.pop_front();
        }
      }
      ::close(conn);
    });
  }

 private:
  std::string dir_;
  int listen_ = -1;
  std::thread thread_;
};

// Sends `n` tasks (pids 1000...) through `h`; stops at the first failure.
Status SendTasks(LazyHandOver& h, int n) {
  for (int i = 0; i < n; i++) {
    RestoredTask t;
    t.pid = 1000 + i;
    t.uffd.reset(::eventfd(0, EFD_CLOEXEC));  // any descriptor travels as a uffd would
    LZ_TRY(h.Send(t));
    EXPECT_FALSE(t.uffd.valid()) << "our copy must be closed once sent";
  }
  return Ok();
}

// A whole hand-over of `n` tasks to the daemon listening in `dir`, as a restore does it.
Status HandOver(const std::string& dir, int n) {
  LZ_ASSIGN_OR_RETURN(LazyHandOver h, LazyHandOver::Connect(dir));
  LZ_TRY(SendTasks(h, n));
  return h.Finish();
}

TEST(LazyHandOver, HundredsOfTasksAckedAsTheyComeThenTheEnd) {
  FakeDaemon d;
  // 600 acks do not fit in the socket's buffer (~270 do): the daemon, as the real one does,
  // queues the rest, and every one must arrive, in order.
  d.Serve([](const LazyMsg&) { return kLazyAck; });
  Status st = HandOver(d.dir(), 600);
  EXPECT_TRUE(st) << st.error().Message();
}

TEST(LazyHandOver, ARefusedTaskIsNamed) {
  FakeDaemon d;
  d.Serve([](const LazyMsg& m) -> std::optional<uint32_t> {
    return m.type == kLazyTask && m.pid == 1002 ? kLazyError : kLazyAck;
  });
  Status st = HandOver(d.dir(), 5);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().Message().find("refused pid 1002"), std::string::npos)
      << st.error().Message();
}

TEST(LazyHandOver, ADaemonThatGoesAwayFailsTheHandOver) {
  FakeDaemon d;
  d.Serve([](const LazyMsg& m) -> std::optional<uint32_t> {
    if (m.pid == 1001) {
      return std::nullopt;  // closes without answering
    }
    return kLazyAck;
  });
  Status st = HandOver(d.dir(), 3);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().Message().find("lazy-pages daemon"), std::string::npos)
      << st.error().Message();
}

TEST(LazyHandOver, NoDaemonIsAClearError) {
  char tmpl[] = "/tmp/lz-ho-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  auto h = LazyHandOver::Connect(tmpl);
  ::rmdir(tmpl);
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().Message().find("cannot reach the lazy-pages daemon"), std::string::npos)
      << h.error().Message();
}

}  // namespace
}  // namespace lz
