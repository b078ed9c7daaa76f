// Real programs, as a user runs them: redis-server with data, python3 -m http.server.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>

#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

class RealPrograms : public ::testing::TestWithParam<Mode> {
 protected:
  // Dumps `w`, reaps it, restores in the test's mode; the restored root is adopted.
  Proc DumpAndRestore(Proc& w) {
    pid_t pid = w.pid();
    RunResult d = Dump(pid, dir_.File("img"));
    EXPECT_EQ(d.status, 0) << d.output;
    EXPECT_TRUE(w.ReapIfDead(5000));
    // Lazy restores here fill on the event loop (the other tests use the default threads).
    RunResult r = Restore(GetParam(), dir_.File("img"), &daemon_, dir_.File("lazy.log"), {},
                          {"--fill-threads", "0"});
    EXPECT_EQ(r.status, 0) << r.output;
    return Proc(pid);
  }

  void ExpectDaemonDone() {
    if (GetParam() == Mode::kLazy) {
      int status = daemon_.Wait(30000);
      EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "lazy-pages daemon status " << status;
    }
  }

  TempDir dir_;
  Proc daemon_;
};

TEST_P(RealPrograms, RedisKeepsItsKeysAndAnswers) {
  int port = FreePort();
  Proc w = StartRedis(port, 200000, dir_);
  ASSERT_GT(w.pid(), 0);
  Proc restored = DumpAndRestore(w);
  // The first request is answered while memory may still be arriving.
  EXPECT_NE(Talk(port, Resp({"GET", "lazarus"}), "alive", 5000).find("$5\r\nalive"),
            std::string::npos);
  EXPECT_NE(Talk(port, Resp({"DBSIZE"}), "\r\n", 5000).find(":200001"), std::string::npos);
  EXPECT_NE(Talk(port, Resp({"GET", "key:123456"}), "\r\n", 5000).find("value:123456"),
            std::string::npos);
  EXPECT_NE(Talk(port, Resp({"SET", "after", "restore"}), "+OK", 5000).find("+OK"),
            std::string::npos);
  ExpectDaemonDone();
}

TEST_P(RealPrograms, PythonHttpServerServesTheSamePage) {
  RequireBinary("/usr/bin/python3");
  std::string page = "lazarus e2e page\n";
  for (int i = 0; i < 200; i++) {
    page += "line " + std::to_string(i) + " of a page that python serves\n";
  }
  {
    std::ofstream f(dir_.File("index.txt"));
    f << page;
  }
  int port = FreePort();
  Proc w = Start({"/usr/bin/python3", "-m", "http.server", std::to_string(port), "--bind",
                  "127.0.0.1", "--directory", dir_.path()},
                 dir_.File("http.log"));
  std::string get = "GET /index.txt HTTP/1.0\r\nHost: localhost\r\n\r\n";
  ASSERT_TRUE(WaitForService(port, get, "of a page that python serves", 10000));
  Proc restored = DumpAndRestore(w);
  std::string reply = Talk(port, get, "line 199 of a page", 5000);
  EXPECT_NE(reply.find("200 OK"), std::string::npos) << reply.substr(0, 200);
  EXPECT_NE(reply.find(page), std::string::npos) << "the page differs after restore";
  ExpectDaemonDone();
}

// Whether `path` holds `text` within `timeout_ms`.
bool WaitForText(const std::string& path, const std::string& text, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    std::ifstream f(path);
    std::string content((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (content.find(text) != std::string::npos) {
      return true;
    }
    usleep(20000);
  }
  return false;
}

// tail -f follows its file through an inotify watch and sleeps on it: a line appended after
// the restore reaches its output only if the watch came back as tail knows it.
TEST_P(RealPrograms, TailFollowsItsFileThroughInotify) {
  RequireBinary("/usr/bin/tail");
  std::string followed = dir_.File("followed.log");
  {
    std::ofstream f(followed);
    f << "written before the dump\n";
  }
  Proc w = Start({"/usr/bin/tail", "-n", "+1", "-f", followed}, dir_.File("tail.out"));
  ASSERT_TRUE(WaitForText(dir_.File("tail.out"), "before the dump", 10000));
  bool watches = false;
  for (int fd = 0; fd < 16; fd++) {
    char link[64] = {0};
    std::string at = "/proc/" + std::to_string(w.pid()) + "/fd/" + std::to_string(fd);
    watches |= readlink(at.c_str(), link, sizeof link - 1) > 0 &&
               std::string(link) == "anon_inode:inotify";
  }
  ASSERT_TRUE(watches) << "this tail does not follow through inotify: the test would test nothing";
  Proc restored = DumpAndRestore(w);
  {
    std::ofstream f(followed, std::ios::app);
    f << "appended after the restore\n";
  }
  EXPECT_TRUE(WaitForText(dir_.File("tail.out"), "appended after the restore", 10000));
  ExpectDaemonDone();
}

INSTANTIATE_TEST_SUITE_P(Modes, RealPrograms, ::testing::Values(Mode::kEager, Mode::kLazy),
                         [](const auto& info) { return std::string(ModeName(info.param)); });

}  // namespace
}  // namespace lz::e2e
