// Real programs, as a user runs them: redis-server with data, python3 -m http.server, tail -f,
// nginx with workers, memcached, dbus-daemon, an sqlite transaction, a Node.js server.
#include <dirent.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <functional>
#include <vector>

#include "tests/e2e/harness.h"

namespace lz::e2e {
namespace {

class RealPrograms : public ::testing::TestWithParam<Mode> {
 protected:
  // Dumps `w` (and its `children`, which the dump kills with it), reaps them, restores in the
  // test's mode; the restored root is adopted.
  // `between` runs after the dump, before the restore.
  Proc DumpAndRestore(Proc& w, const std::vector<pid_t>& children = {},
                      const std::vector<std::string>& dump_args = {},
                      const std::function<void()>& between = nullptr) {
    pid_t pid = w.pid();
    RunResult d = Dump(pid, dir_.File("img"), dump_args);
    EXPECT_EQ(d.status, 0) << d.output;
    EXPECT_TRUE(w.ReapIfDead(5000));
    if (between) {
      between();
    }
    for (pid_t c : children) {  // they come to this test, a subreaper, once their parent dies
      bool gone = false;
      for (int i = 0; i < 250 && !gone; i++) {
        waitpid(c, nullptr, WNOHANG);
        gone = kill(c, 0) != 0 && errno == ESRCH;
        usleep(gone ? 0 : 20000);
      }
      EXPECT_TRUE(gone) << "pid " << c << " still there";
    }
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

// A watch follows its file, not its name: a watched file renamed between the dump and the
// restore gets its watch back through the file handle saved at the dump (the name leads
// nowhere now), and a change to the file reaches the restored program.
TEST_P(RealPrograms, InotifyWatchFollowsAFileRenamedBeforeTheRestore) {
  RequireBinary("/usr/bin/python3");
  std::string watched = dir_.File("watched.conf");
  {
    std::ofstream f(watched);
    f << "setting = 1\n";
  }
  // Holds no descriptor of the file: only the watch leads to it.
  const char* script = R"(
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
wd = libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x4)  # IN_ATTRIB
print("watching", wd, flush=True)
while True:
    w, mask, _, _ = struct.unpack_from("iIII", os.read(fd, 4096))
    print("event", w, hex(mask), flush=True)
)";
  Proc w = Start({"/usr/bin/python3", "-c", script, watched}, dir_.File("py.out"));
  ASSERT_TRUE(WaitForText(dir_.File("py.out"), "watching 1", 10000));
  std::string moved = dir_.File("moved.conf");
  Proc restored =
      DumpAndRestore(w, {}, {}, [&] { EXPECT_EQ(rename(watched.c_str(), moved.c_str()), 0); });
  ASSERT_EQ(chmod(moved.c_str(), 0600), 0);
  EXPECT_TRUE(WaitForText(dir_.File("py.out"), "event 1 0x4", 10000));
  ExpectDaemonDone();
}

// The processes whose parent is `pid`.
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  while (dirent* e = d ? readdir(d) : nullptr) {
    pid_t p = atoi(e->d_name);
    if (p <= 0) {
      continue;
    }
    std::ifstream f("/proc/" + std::string(e->d_name) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t close = stat.rfind(')');
    int ppid = 0;
    if (close != std::string::npos && sscanf(stat.c_str() + close + 1, " %*c %d", &ppid) == 1 &&
        ppid == pid) {
      out.push_back(p);
    }
  }
  if (d) {
    closedir(d);
  }
  return out;
}

// Kills a process group when it goes out of scope: a program that forks workers (its own
// session and group, from Start; the restore keeps them) leaves none behind, whatever fails.
struct GroupKiller {
  pid_t pgid;
  ~GroupKiller() { kill(-pgid, SIGKILL); }
};

// Kills `root` first: its children then come to this test (a subreaper), which reaps them.
void KillTree(Proc& root) {
  std::vector<pid_t> children = ChildrenOf(root.pid());
  root.Kill();
  for (pid_t p : children) {
    Proc(p).Kill();
  }
}

// nginx as it is run in production: a master and two pre-forked workers sharing its listening
// socket. After the restore the workers answer, and a reload (SIGHUP) has the master start
// new workers, which answer too.
TEST_P(RealPrograms, NginxMasterAndWorkersAnswerAndReload) {
  RequireBinary("/usr/sbin/nginx");
  int port = FreePort();
  chmod(dir_.path().c_str(), 0755);  // the workers run as nobody
  mkdir(dir_.File("html").c_str(), 0755);
  mkdir(dir_.File("logs").c_str(), 0755);
  {
    std::ofstream page(dir_.File("html/index.html"));
    page << "served by nginx\n";
    std::ofstream conf(dir_.File("nginx.conf"));
    conf << "daemon off; master_process on; worker_processes 2; pid " << dir_.File("nginx.pid")
         << "; error_log " << dir_.File("logs/error.log") << ";\n"
         << "events { worker_connections 64; }\n"
         << "http { access_log off; client_body_temp_path " << dir_.File("body")
         << "; proxy_temp_path " << dir_.File("proxy") << "; fastcgi_temp_path "
         << dir_.File("fcgi") << "; uwsgi_temp_path " << dir_.File("uwsgi") << "; scgi_temp_path "
         << dir_.File("scgi") << ";\n"
         << "  server { listen 127.0.0.1:" << port << "; root " << dir_.File("html") << "; } }\n";
  }
  BecomeSubreaper();
  Proc w = Start({"/usr/sbin/nginx", "-c", dir_.File("nginx.conf"), "-p", dir_.path()},
                 dir_.File("nginx.out"));
  // Its own session and group (Start), which the restore keeps: whatever happens, the workers
  // go with the test.
  GroupKiller group{w.pid()};
  std::string get = "GET / HTTP/1.0\r\n\r\n";
  ASSERT_TRUE(WaitForService(port, get, "served by nginx", 10000));
  for (int i = 0; i < 100 && ChildrenOf(w.pid()).size() < 2; i++) {
    usleep(20000);
  }
  ASSERT_EQ(ChildrenOf(w.pid()).size(), 2u);
  Proc restored = DumpAndRestore(w, ChildrenOf(w.pid()));
  std::vector<pid_t> workers = ChildrenOf(restored.pid());
  EXPECT_EQ(workers.size(), 2u);
  for (int i = 0; i < 4; i++) {
    EXPECT_NE(Talk(port, get, "served by nginx", 5000).find("served by nginx"), std::string::npos);
  }
  kill(restored.pid(), SIGHUP);
  std::vector<pid_t> now = workers;
  for (int i = 0; i < 250 && (now.size() != 2 || now == workers); i++) {
    usleep(20000);
    now = ChildrenOf(restored.pid());
    std::sort(now.begin(), now.end());
    std::sort(workers.begin(), workers.end());
  }
  EXPECT_TRUE(now.size() == 2 && now != workers) << "the reload started no new workers";
  EXPECT_NE(Talk(port, get, "served by nginx", 5000).find("served by nginx"), std::string::npos);
  std::ifstream log(dir_.File("logs/error.log"));
  std::string errors((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_EQ(errors.find("exited on signal"), std::string::npos) << errors;
  ExpectDaemonDone();
  KillTree(restored);
}

// PostgreSQL as a user runs it: a postmaster and its five helpers as the postgres user, a SysV
// segment (its interlock, whose id it keeps in postmaster.pid) and shared anonymous memory
// (its buffers). After the restore it answers with its rows over TCP and its unix socket,
// forks new backends that write, and a fast shutdown removes its segment by id: the one it
// holds must be the one restored.
TEST_P(RealPrograms, PostgresAnswersWritesAndShutsDownCleanly) {
  const std::string bin = "/usr/lib/postgresql/15/bin/";
  RequireBinary((bin + "postgres").c_str());
  RequireBinary("/usr/bin/psql");
  RequireBinary("/usr/bin/setpriv");
  int port = FreePort();
  ASSERT_EQ(chown(dir_.path().c_str(), 0, 0), 0);
  chmod(dir_.path().c_str(), 0777);  // postgres makes its data dir and socket here
  std::vector<std::string> as_postgres = {"/usr/bin/setpriv", "--reuid=postgres",
                                          "--regid=postgres", "--init-groups", "--"};
  auto with = [&](std::vector<std::string> cmd) {
    cmd.insert(cmd.begin(), as_postgres.begin(), as_postgres.end());
    return cmd;
  };
  RunResult init = RunCmd(with(
      {bin + "initdb", "-D", dir_.File("data"), "-A", "trust", "-U", "postgres", "--no-sync"}));
  ASSERT_EQ(init.status, 0) << init.output;
  BecomeSubreaper();
  // Whatever fails, the segment noted in postmaster.pid goes too (after the group is killed).
  struct SegmentRemover {
    std::string pidfile;
    ~SegmentRemover() {
      std::ifstream f(pidfile);
      std::string line;
      for (int i = 0; i < 7 && std::getline(f, line); i++) {
      }
      int key = 0, id = -1;
      shmid_ds ds{};
      if (sscanf(line.c_str(), "%d %d", &key, &id) == 2 && shmctl(id, IPC_STAT, &ds) == 0 &&
          ds.shm_perm.__key == key) {
        shmctl(id, IPC_RMID, nullptr);
      }
    }
  } remover{dir_.File("data/postmaster.pid")};
  Proc w = Start(with({bin + "postgres", "-D", dir_.File("data"), "-p", std::to_string(port), "-k",
                       dir_.path(), "-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=16MB",
                       "-c", "autovacuum=off"}),
                 dir_.File("pg.log"));
  GroupKiller group{w.pid()};
  auto sql = [&](const std::string& host, const std::string& query) {
    RunResult r = RunCmd({"/usr/bin/psql", "-h", host, "-p", std::to_string(port), "-U", "postgres",
                          "-Atq", "-c", query},
                         10000);
    return r.status == 0 ? r.output : "error: " + r.output;
  };
  std::string up;
  for (int i = 0; i < 100 && up != "1\n"; i++) {
    usleep(up.empty() ? 0 : 100000);
    up = sql("127.0.0.1", "select 1");
  }
  ASSERT_EQ(up, "1\n");
  ASSERT_EQ(sql("127.0.0.1",
                "create table t(id int primary key, v text); insert into t select g, md5(g::text) "
                "from generate_series(1, 20000) g; select count(*) from t"),
            "20000\n");
  // Each session's backend is gone once its client is: only the five helpers are dumped.
  for (int i = 0; i < 250 && ChildrenOf(w.pid()).size() != 5; i++) {
    usleep(20000);
  }
  ASSERT_EQ(ChildrenOf(w.pid()).size(), 5u);
  Proc restored = DumpAndRestore(w, ChildrenOf(w.pid()));
  EXPECT_EQ(sql("127.0.0.1", "select count(*), sum(length(v)) from t"), "20000|640000\n");
  EXPECT_EQ(sql(dir_.path(),
                "insert into t values (20001, 'after'); select v from t where id = "
                "20001"),
            "after\n");
  // The segment postgres noted, restored with its id and attached by the whole tree.
  std::ifstream pidfile(dir_.File("data/postmaster.pid"));
  std::string line, shm_line;
  for (int i = 0; i < 7 && std::getline(pidfile, line); i++) {
    shm_line = line;
  }
  int key = 0, id = -1;
  ASSERT_EQ(sscanf(shm_line.c_str(), "%d %d", &key, &id), 2) << shm_line;
  auto segment = [id]() -> std::string {
    std::ifstream f("/proc/sysvipc/shm");
    std::string row;
    while (std::getline(f, row)) {
      int k, i;
      if (sscanf(row.c_str(), "%d %d", &k, &i) == 2 && i == id) {
        return row;
      }
    }
    return "";
  };
  std::string row = segment();
  EXPECT_NE(row, "") << "segment " << id << " is not there";
  // Made by postgres, and by postgres again: its creator ids (cuid, cgid) as well as its owner.
  passwd* pg = getpwnam("postgres");
  ASSERT_NE(pg, nullptr);
  unsigned uid = 0, gid = 0, cuid = 0, cgid = 0;
  ASSERT_EQ(
      sscanf(row.c_str(), "%*d %*d %*o %*u %*d %*d %*u %u %u %u %u", &uid, &gid, &cuid, &cgid), 4)
      << row;
  EXPECT_EQ(uid, pg->pw_uid) << row;
  EXPECT_EQ(cuid, pg->pw_uid) << row;
  EXPECT_EQ(cgid, pg->pw_gid) << row;
  kill(restored.pid(), SIGINT);  // fast shutdown
  int status = restored.Wait(20000);
  EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::ifstream log(dir_.File("pg.log"));
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("database system is shut down"), std::string::npos) << text;
  EXPECT_EQ(segment(), "") << "postgres did not remove segment " << id;
  ExpectDaemonDone();
}

// The value of `"key":` in a one-line JSON reply, or "" (numbers and strings without quotes).
std::string JsonField(const std::string& reply, const std::string& key) {
  size_t at = reply.find("\"" + key + "\":");
  if (at == std::string::npos) {
    return "";
  }
  at += key.size() + 3;
  size_t end = reply.find_first_of(",}", at);
  std::string v = reply.substr(at, end == std::string::npos ? std::string::npos : end - at);
  v.erase(std::remove(v.begin(), v.end(), '"'), v.end());
  return v;
}

// Node.js: V8 and its platform threads, libuv's event loop and thread pool (each request reads
// a file and asks for random bytes through it), a timer that ticks every 10 ms, and 100000
// entries in a Map. The restored server goes on counting where it stopped, with the same data.
TEST_P(RealPrograms, NodeServerCountsOnWithTheSameData) {
  RequireBinary("/usr/bin/node");
  int port = FreePort();
  {
    std::ofstream app(dir_.File("server.js"));
    app << "const http = require('http'), fs = require('fs'), crypto = require('crypto');\n"
        << "const data = new Map();\n"
        << "for (let i = 0; i < 100000; i++) data.set('k' + i, 'v' + (i * 7919 % 100003));\n"
        << "let hits = 0, ticks = 0;\n"
        << "setInterval(() => ticks++, 10);\n"
        << "function digest() {\n"
        << "  const h = crypto.createHash('sha256');\n"
        << "  for (const [k, v] of data) h.update(k + '=' + v + ';');\n"
        << "  return h.digest('hex');\n"
        << "}\n"
        << "http.createServer(async (req, res) => {\n"
        << "  hits++;\n"
        << "  const self = await fs.promises.readFile(__filename, 'utf8');\n"
        << "  const rnd = await new Promise((ok, no) =>\n"
        << "      crypto.randomBytes(8, (e, b) => e ? no(e) : ok(b)));\n"
        << "  res.end(JSON.stringify({hits, ticks, digest: digest(), self: self.length,\n"
        << "                          rnd: rnd.length, threads: "
           "fs.readdirSync('/proc/self/task').length})\n"
        << "          + '\\n');\n"
        << "}).listen(" << port << ", '127.0.0.1');\n";
  }
  Proc w = Start({"/usr/bin/node", dir_.File("server.js")}, dir_.File("node.log"));
  std::string get = "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n";
  ASSERT_TRUE(WaitForService(port, get, "\"threads\"", 20000));
  std::string before = Talk(port, get, "\"threads\"", 5000);
  long hits = std::stol("0" + JsonField(before, "hits"));
  ASSERT_GE(hits, 2) << before;
  ASSERT_EQ(JsonField(before, "digest").size(), 64u) << before;
  ASSERT_NE(JsonField(before, "self"), "0") << before;
  long ticks_before = std::stol("0" + JsonField(before, "ticks"));
  Proc restored = DumpAndRestore(w);
  std::string after = Talk(port, get, "\"threads\"", 10000);
  EXPECT_EQ(JsonField(after, "hits"), std::to_string(hits + 1)) << after;
  EXPECT_EQ(JsonField(after, "digest"), JsonField(before, "digest")) << "the Map differs";
  EXPECT_EQ(JsonField(after, "self"), JsonField(before, "self")) << after;
  EXPECT_EQ(JsonField(after, "rnd"), "8") << after;
  EXPECT_EQ(JsonField(after, "threads"), JsonField(before, "threads")) << after;
  EXPECT_GE(std::stol("0" + JsonField(after, "ticks")), ticks_before) << after;
  // The timer still fires: ticks grow while the restored server waits.
  usleep(300000);
  std::string later = Talk(port, get, "\"threads\"", 10000);
  EXPECT_EQ(JsonField(later, "hits"), std::to_string(hits + 2)) << later;
  EXPECT_GT(std::stol("0" + JsonField(later, "ticks")), std::stol("0" + JsonField(after, "ticks")))
      << later;
  ExpectDaemonDone();
}

// memcached: four worker threads, libevent over epoll, eventfds and pipes between threads.
TEST_P(RealPrograms, MemcachedKeepsItsKeys) {
  RequireBinary("/usr/bin/memcached");
  int port = FreePort();
  Proc w = Start({"/usr/bin/memcached", "-u", "root", "-l", "127.0.0.1", "-p", std::to_string(port),
                  "-t", "4", "-m", "64"},
                 dir_.File("memcached.log"));
  ASSERT_TRUE(WaitForService(port, "version\r\n", "VERSION", 10000));
  std::string sets;
  for (int i = 0; i < 5000; i++) {
    std::string v = "value-" + std::to_string(i) + std::string(100, 'x');
    sets += "set key" + std::to_string(i) + " 0 0 " + std::to_string(v.size()) + " noreply\r\n" +
            v + "\r\n";
  }
  ASSERT_NE(Talk(port, sets + "get key4999\r\n", "END\r\n", 10000).find("value-4999"),
            std::string::npos);
  Proc restored = DumpAndRestore(w);
  EXPECT_NE(Talk(port, "get key1234\r\n", "END\r\n", 5000).find("value-1234x"), std::string::npos);
  EXPECT_NE(Talk(port, "get key0 key4999\r\n", "END\r\n", 5000).find("value-4999"),
            std::string::npos);
  EXPECT_NE(Talk(port, "set after 0 0 7\r\nrestore\r\nget after\r\n", "END\r\n", 5000)
                .find("VALUE after 0 7\r\nrestore"),
            std::string::npos);
  ExpectDaemonDone();
}

// A Python program in the middle of an sqlite write transaction: the database's POSIX locks
// (dumped with --file-locks) keep other writers out after the restore, and the transaction
// then commits with the row it wrote before the dump and one after.
TEST_P(RealPrograms, SqliteTransactionKeepsItsLocksAcrossTheRestore) {
  RequireBinary("/usr/bin/python3");
  std::string db = dir_.File("data.db");
  {
    std::ofstream app(dir_.File("app.py"));
    app << "import sqlite3, signal, time\n"
        << "db = sqlite3.connect('" << db << "', isolation_level=None)\n"
        << "db.execute('create table t(x)')\n"
        << "db.execute('begin immediate')\n"
        << "db.execute('insert into t values (42)')\n"
        << "def go(sig, frame):\n"
        << "    db.execute('insert into t values (43)')\n"
        << "    db.execute('commit')\n"
        << "    open('" << dir_.File("done") << "', 'w').write('committed')\n"
        << "signal.signal(signal.SIGUSR1, go)\n"
        << "open('" << dir_.File("ready") << "', 'w').write('ready')\n"
        << "while True:\n"
        << "    time.sleep(1)\n";
  }
  Proc w = Start({"/usr/bin/python3", dir_.File("app.py")}, dir_.File("app.log"));
  ASSERT_NE(WaitForFile(dir_.File("ready"), 10000), "");
  auto other_writer = [&] {
    return RunCmd({"/usr/bin/python3", "-c",
                   "import sqlite3\n"
                   "d = sqlite3.connect('" +
                       db +
                       "', timeout=0.1)\n"
                       "try:\n"
                       "    d.execute('begin immediate'); print('got the write lock')\n"
                       "except sqlite3.OperationalError as e:\n"
                       "    print('refused:', e)\n"},
                  10000)
        .output;
  };
  ASSERT_NE(other_writer().find("refused: database is locked"), std::string::npos);
  Proc restored = DumpAndRestore(w, {}, {"--file-locks"});
  EXPECT_NE(other_writer().find("refused: database is locked"), std::string::npos)
      << "the restored transaction lost its lock";
  kill(restored.pid(), SIGUSR1);
  EXPECT_EQ(WaitForFile(dir_.File("done"), 10000), "committed");
  RunResult rows = RunCmd({"/usr/bin/python3", "-c",
                           "import sqlite3\nprint(sqlite3.connect('" + db +
                               "').execute('select x from t').fetchall())"},
                          10000);
  EXPECT_NE(rows.output.find("[(42,), (43,)]"), std::string::npos) << rows.output;
  ExpectDaemonDone();
}

// Python's multiprocessing: a pool of two worker processes fed through pipes, a Queue, and a
// Lock, whose POSIX semaphores live in /dev/shm files unlinked once made (saved as memfds).
// After the restore the pool computes again, the lock is taken and the queue gives back what
// was put in before the dump.
TEST_P(RealPrograms, PythonMultiprocessingPoolWorksAfterRestore) {
  RequireBinary("/usr/bin/python3");
  {
    std::ofstream app(dir_.File("app.py"));
    app << "import multiprocessing as mp, signal, time\n"
        << "def square(x):\n"
        << "    return x * x\n"
        << "if __name__ == '__main__':\n"
        << "    pool = mp.Pool(2)\n"
        << "    queue = mp.Queue()\n"
        << "    lock = mp.Lock()\n"
        << "    pool.map(square, range(5))\n"
        << "    queue.put('put before the dump')\n"
        << "    def go(sig, frame):\n"
        << "        with lock:\n"
        << "            r = pool.map(square, range(10))\n"
        << "        open('" << dir_.File("done")
        << "', 'w').write('%d %s' % (sum(r), queue.get(timeout=5)))\n"
        << "    signal.signal(signal.SIGUSR1, go)\n"
        << "    time.sleep(0.5)\n"
        << "    open('" << dir_.File("ready") << "', 'w').write('ready')\n"
        << "    while True:\n"
        << "        time.sleep(1)\n";
  }
  BecomeSubreaper();
  Proc w = Start({"/usr/bin/python3", dir_.File("app.py")}, dir_.File("app.log"));
  GroupKiller group{w.pid()};
  ASSERT_NE(WaitForFile(dir_.File("ready"), 20000), "");
  std::vector<pid_t> children = ChildrenOf(w.pid());
  ASSERT_GE(children.size(), 2u);
  Proc restored = DumpAndRestore(w, children);
  kill(restored.pid(), SIGUSR1);
  EXPECT_EQ(WaitForFile(dir_.File("done"), 10000), "285 put before the dump");
  ExpectDaemonDone();
  KillTree(restored);
}

// A /dev/shm file unlinked while both mapped and open would come back as two objects (a memfd
// for the mapping, an unlinked file for the descriptor): refused, and the program runs on.
TEST(RealProgramFailures, ADeletedShmFileBothMappedAndOpenIsRefused) {
  RequireBinary("/usr/bin/python3");
  TempDir dir;
  std::string shm = "/dev/shm/lz-e2e-" + std::to_string(getpid());
  {
    std::ofstream app(dir.File("app.py"));
    app << "import mmap, os, time\n"
        << "fd = os.open('" << shm << "', os.O_CREAT | os.O_RDWR)\n"
        << "os.ftruncate(fd, 4096)\n"
        << "m = mmap.mmap(fd, 4096)\n"
        << "os.unlink('" << shm << "')\n"
        << "open('" << dir.File("ready") << "', 'w').write('ready')\n"
        << "while True:\n"
        << "    time.sleep(1)\n";
  }
  Proc w = Start({"/usr/bin/python3", dir.File("app.py")}, dir.File("app.log"));
  ASSERT_NE(WaitForFile(dir.File("ready"), 10000), "");
  RunResult d = Dump(w.pid(), dir.File("img"));
  EXPECT_NE(d.status, 0);
  EXPECT_NE(d.output.find("a deleted file both mapped and open is not supported"),
            std::string::npos)
      << d.output;
  EXPECT_EQ(kill(w.pid(), 0), 0) << "the refused dump did not leave the program running";
}

// Whether `pid` holds a netlink socket (asked of a copy of each of its sockets: an unbound one
// is not in /proc/net/netlink).
bool HoldsNetlinkSocket(pid_t pid) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  bool found = false;
  for (int fd = 0; fd < 64 && pidfd >= 0 && !found; fd++) {
    int copy = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
    int domain = 0;
    socklen_t len = sizeof domain;
    found = copy >= 0 && getsockopt(copy, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
            domain == AF_NETLINK;
    if (copy >= 0) {
      close(copy);
    }
  }
  if (pidfd >= 0) {
    close(pidfd);
  }
  return found;
}

// dbus-daemon: a unix listening socket, epoll, and the audit netlink socket it opens as root.
// A client lists the bus's names after the restore.
TEST_P(RealPrograms, DbusDaemonAnswersOnItsBus) {
  RequireBinary("/usr/bin/dbus-daemon");
  RequireBinary("/usr/bin/dbus-send");
  std::string address = "unix:path=" + dir_.File("bus");
  Proc w = Start({"/usr/bin/dbus-daemon", "--session", "--nofork", "--address=" + address},
                 dir_.File("dbus.log"));
  ASSERT_TRUE(WaitForPath(dir_.File("bus"), 10000));
  auto list_names = [&] {
    return RunCmd({"/usr/bin/env", "DBUS_SESSION_BUS_ADDRESS=" + address, "/usr/bin/dbus-send",
                   "--session", "--print-reply", "--dest=org.freedesktop.DBus",
                   "/org/freedesktop/DBus", "org.freedesktop.DBus.ListNames"},
                  10000);
  };
  ASSERT_NE(list_names().output.find("org.freedesktop.DBus"), std::string::npos);
  EXPECT_TRUE(HoldsNetlinkSocket(w.pid())) << "no netlink socket: that part goes untested";
  Proc restored = DumpAndRestore(w);
  RunResult r = list_names();
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("string \"org.freedesktop.DBus\""), std::string::npos) << r.output;
  ExpectDaemonDone();
}

INSTANTIATE_TEST_SUITE_P(Modes, RealPrograms, ::testing::Values(Mode::kEager, Mode::kLazy),
                         [](const auto& info) { return std::string(ModeName(info.param)); });

}  // namespace
}  // namespace lz::e2e
