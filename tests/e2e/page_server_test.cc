// Pages on another host: a lazy restore reading them from a page server (on loopback and
// across two network namespaces joined by a veth pair), a dump sending them to one, the
// post-copy migration of redis-server, and a page server that dies mid-way.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

bool HasPagesFile(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("pages-", 0) == 0) {
      return true;
    }
  }
  return false;
}

// Runs a command inside a network namespace ("" runs it here).
std::vector<std::string> In(const std::string& netns, std::vector<std::string> argv) {
  if (netns.empty()) {
    return argv;
  }
  argv.insert(argv.begin(), {"/usr/sbin/ip", "netns", "exec", netns});
  return argv;
}

class PageServer : public ::testing::Test {
 protected:
  // Starts mt_counter with `mb` MiB and dumps it into src/.
  pid_t DumpWorkload(int mb) {
    Proc w = Start(
        {WorkloadBinary("mt_counter"), dir_.File("ready"), dir_.File("result"), std::to_string(mb)},
        dir_.File("workload.log"));
    EXPECT_NE(WaitForFile(dir_.File("ready"), 10000), "");
    pid_t pid = w.pid();
    RunResult d = Dump(pid, Src());
    EXPECT_EQ(d.status, 0) << d.output;
    EXPECT_TRUE(w.ReapIfDead(5000));
    return pid;
  }

  std::string Src() { return dir_.File("src"); }
  std::string Dst() { return dir_.File("dst"); }

  // `lazarus page-server` on address:port serving (or receiving into) `dir`.
  Proc StartServer(const std::string& netns, const std::string& dir, const std::string& address,
                   std::vector<std::string> extra = {}) {
    std::string pidfile = dir_.File("server.pid");
    ::unlink(pidfile.c_str());
    std::vector<std::string> argv =
        In(netns, {LazarusBinary(), "page-server", "-D", dir, "--address", address, "--port",
                   std::to_string(port_), "--pidfile", pidfile, "-v4"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    Proc p = Start(argv, dir_.File("server.log"));
    EXPECT_NE(WaitForFile(pidfile, 10000), "") << "page server did not start";
    return p;
  }

  // `lazarus lazy-pages --page-server` on Dst(); returns once it listens for the restore.
  Proc StartDaemon(const std::string& netns, const std::string& address,
                   std::vector<std::string> extra = {}) {
    std::vector<std::string> argv =
        In(netns, {LazarusBinary(), "lazy-pages", "-D", Dst(), "--page-server", "--address",
                   address, "--port", std::to_string(port_), "--display-stats", "-v4"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    Proc p = Start(argv, dir_.File("lazy.log"));
    EXPECT_TRUE(WaitForPath(Dst() + "/lazy-pages.socket", 20000))
        << ReadLog("lazy.log") << "\npage server: " << ReadLog("server.log");
    return p;
  }

  std::string ReadLog(const std::string& name) {
    std::ifstream in(dir_.File(name));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  std::string Verdict(pid_t pid) {
    ::unlink(dir_.File("result").c_str());
    kill(pid, SIGUSR1);
    return WaitForFile(dir_.File("result"), 20000);
  }

  static void ExpectExitedZero(Proc& p, const char* what) {
    int status = p.Wait(30000);
    EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << what << " status " << status;
  }

  // A lazy restore from Src()'s page stores, served by a page server in `server_ns`, with the
  // daemon and the restored task in `client_ns`.
  void RemoteLazyRestore(const std::string& server_ns, const std::string& server_addr,
                         const std::string& client_ns) {
    pid_t pid = DumpWorkload(256);
    { std::ofstream(dir_.File("token")) << "not-a-guessable-secret\n"; }
    Proc server =
        StartServer(server_ns, Src(), server_addr, {"--auth-token-file", dir_.File("token")});
    CopyImagesButPages(Src(), Dst());
    // Without the secret the server turns the daemon away, with a message that says why.
    RunResult refused =
        RunCmd(In(client_ns, {LazarusBinary(), "lazy-pages", "-D", Dst(), "--page-server",
                              "--address", server_addr, "--port", std::to_string(port_)}),
               20000);
    EXPECT_NE(refused.status, 0);
    EXPECT_NE(refused.output.find("refused our token"), std::string::npos) << refused.output;
    Proc daemon = StartDaemon(client_ns, server_addr, {"--auth-token-file", dir_.File("token")});
    RunResult r =
        RunCmd(In(client_ns, {LazarusBinary(), "restore", "-D", Dst(), "-d", "--lazy-pages"}));
    ASSERT_EQ(r.status, 0) << r.output;
    Proc restored(pid);
    std::string v = Verdict(pid);
    EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
    ExpectExitedZero(daemon, "lazy-pages");
    ExpectExitedZero(server, "page-server (told the client is done)");
    EXPECT_FALSE(HasPagesFile(Dst())) << "the daemon's partial page stores are left behind";
    std::string log = ReadLog("lazy.log");
    EXPECT_NE(log.find("Pages by background fill"), std::string::npos) << log;
  }

  TempDir dir_;
  int port_ = FreePort();
};

TEST_F(PageServer, LazyRestoreReadsPagesFromAPageServer) { RemoteLazyRestore("", "127.0.0.1", ""); }

// Two network namespaces joined by a veth pair: the page server on one side, the daemon and
// the restored task on the other.
class NetnsPair {
 public:
  NetnsPair() {
    std::string tag = std::to_string(getpid());
    a_ = "lzA" + tag;
    b_ = "lzB" + tag;
    std::string va = "lzva" + tag, vb = "lzvb" + tag;
    for (const auto& cmd : std::vector<std::vector<std::string>>{
             {"/usr/sbin/ip", "netns", "add", a_},
             {"/usr/sbin/ip", "netns", "add", b_},
             {"/usr/sbin/ip", "link", "add", va, "type", "veth", "peer", "name", vb},
             {"/usr/sbin/ip", "link", "set", va, "netns", a_},
             {"/usr/sbin/ip", "link", "set", vb, "netns", b_},
             {"/usr/sbin/ip", "-n", a_, "addr", "add", "10.213.7.1/30", "dev", va},
             {"/usr/sbin/ip", "-n", b_, "addr", "add", "10.213.7.2/30", "dev", vb},
             {"/usr/sbin/ip", "-n", a_, "link", "set", va, "up"},
             {"/usr/sbin/ip", "-n", b_, "link", "set", vb, "up"},
             {"/usr/sbin/ip", "-n", a_, "link", "set", "lo", "up"},
             {"/usr/sbin/ip", "-n", b_, "link", "set", "lo", "up"}}) {
      RunResult r = RunCmd(cmd, 10000);
      if (r.status != 0) {
        error_ = "network namespaces: " + r.output;
        return;
      }
    }
  }
  ~NetnsPair() {
    RunCmd({"/usr/sbin/ip", "netns", "del", a_}, 10000);  // takes its end of the veth pair along
    RunCmd({"/usr/sbin/ip", "netns", "del", b_}, 10000);
  }
  const std::string& a() const { return a_; }
  const std::string& b() const { return b_; }
  const std::string& error() const { return error_; }

 private:
  std::string a_, b_, error_;
};

TEST_F(PageServer, LazyRestoreAcrossNetworkNamespaces) {
  NetnsPair ns;
  ASSERT_EQ(ns.error(), "") << "this test needs network namespaces and veth";
  RemoteLazyRestore(ns.a(), "10.213.7.1", ns.b());
}

TEST_F(PageServer, DumpSendsItsPagesToThePageServer) {
  Proc w = Start({WorkloadBinary("mt_counter"), dir_.File("ready"), dir_.File("result"), "64"},
                 dir_.File("workload.log"));
  ASSERT_NE(WaitForFile(dir_.File("ready"), 10000), "");
  pid_t pid = w.pid();
  std::filesystem::create_directories(Dst());
  Proc server = StartServer("", Dst(), "127.0.0.1");
  RunResult d = Dump(pid, Src(),
                     {"--page-server", "--address", "127.0.0.1", "--port", std::to_string(port_)});
  ASSERT_EQ(d.status, 0) << d.output;
  ASSERT_TRUE(w.ReapIfDead(5000));
  ExpectExitedZero(server, "page-server (told the dump is done)");
  EXPECT_FALSE(HasPagesFile(Src())) << "pages were written locally";
  EXPECT_TRUE(HasPagesFile(Dst())) << "the page server did not receive the pages";
  CopyImagesButPages(Src(), Dst());
  RunResult r = RunCmd({LazarusBinary(), "restore", "-D", Dst(), "-d"});
  ASSERT_EQ(r.status, 0) << r.output;
  Proc restored(pid);
  std::string v = Verdict(pid);
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << v;
}

TEST_F(PageServer, AMissingPageServerFailsTheDumpAndTheTaskRunsOn) {
  Proc w = Start({WorkloadBinary("mt_counter"), dir_.File("ready"), dir_.File("result"), "16"},
                 dir_.File("workload.log"));
  ASSERT_NE(WaitForFile(dir_.File("ready"), 10000), "");
  RunResult d = Dump(w.pid(), Src(),
                     {"--page-server", "--address", "127.0.0.1", "--port", std::to_string(port_)});
  EXPECT_NE(d.status, 0);
  EXPECT_NE(d.output.find("page server 127.0.0.1"), std::string::npos) << d.output;
  std::string v = Verdict(w.pid());
  EXPECT_EQ(v.rfind("PASS", 0), 0u) << "the task must run on untouched: " << v;
}

// The page server dies while the restored task still needs pages: after a bounded retry the
// daemon kills the task rather than let it run on with memory that never came.
TEST_F(PageServer, APageServerThatDiesKillsTheRestoredTask) {
  pid_t pid = DumpWorkload(64);
  Proc server = StartServer("", Src(), "127.0.0.1");
  CopyImagesButPages(Src(), Dst());
  Proc daemon = StartDaemon("", "127.0.0.1", {"--fill-delay", "600000"});
  RunResult r = RunCmd({LazarusBinary(), "restore", "-D", Dst(), "-d", "--lazy-pages"});
  ASSERT_EQ(r.status, 0) << r.output;
  Proc restored(pid);
  server.Kill();
  kill(pid, SIGUSR1);  // it reads all its memory now
  int status = restored.Wait(30000);
  EXPECT_NE(status, -1) << "the restored task is still running without its memory";
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_EQ(access(dir_.File("result").c_str(), F_OK), -1) << "the task got to check itself";
  int ds = daemon.Wait(30000);
  EXPECT_TRUE(ds != -1 && WIFEXITED(ds) && WEXITSTATUS(ds) != 0) << ds;
  std::string log = ReadLog("lazy.log");
  EXPECT_NE(log.find("page server lost"), std::string::npos) << log;
}

// CRIU's post-copy migration: `dump --lazy-pages` keeps the pages on the source and serves
// them; the restored copy answers before its memory has arrived.
TEST_F(PageServer, PostCopyMigrationOfRedis) {
  int redis_port = FreePort();
  Proc w = StartRedis(redis_port, 200000, dir_);
  ASSERT_GT(w.pid(), 0);
  pid_t pid = w.pid();
  Proc dumper = Start({LazarusBinary(), "dump", "-t", std::to_string(pid), "-D", Src(),
                       "--lazy-pages", "--address", "127.0.0.1", "--port", std::to_string(port_)},
                      dir_.File("dump.log"));
  ASSERT_TRUE(w.ReapIfDead(30000)) << "the dump did not finish: " << ReadLog("dump.log");
  CopyImagesButPages(Src(), Dst());
  Proc daemon = StartDaemon("", "127.0.0.1", {"--fill-delay", "200"});
  RunResult r = RunCmd({LazarusBinary(), "restore", "-D", Dst(), "-d", "--lazy-pages"});
  ASSERT_EQ(r.status, 0) << r.output;
  Proc restored(pid);
  EXPECT_NE(Talk(redis_port, Resp({"GET", "lazarus"}), "alive", 5000).find("$5\r\nalive"),
            std::string::npos);
  EXPECT_NE(Talk(redis_port, Resp({"DBSIZE"}), "\r\n", 5000).find(":200001"), std::string::npos);
  EXPECT_NE(Talk(redis_port, Resp({"GET", "key:123456"}), "\r\n", 5000).find("value:123456"),
            std::string::npos);
  ExpectExitedZero(daemon, "lazy-pages");
  ExpectExitedZero(dumper, "dump --lazy-pages (every page taken)");
}

}  // namespace
}  // namespace lz::e2e
