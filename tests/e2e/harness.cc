#include "tests/e2e/harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace lz::e2e {

std::string LazarusBinary() { return LAZARUS_BINARY; }
std::string WorkloadBinary(const std::string& name) {
  return std::string(WORKLOAD_DIR) + "/" + name;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/lazarus-e2e-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::abort();
  }
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::string cmd = "rm -rf '" + path_ + "'";
  (void)!system(cmd.c_str());
}

Proc& Proc::operator=(Proc&& o) noexcept {
  if (this != &o) {
    Kill();
    pid_ = o.pid_;
    o.pid_ = -1;
  }
  return *this;
}

void Proc::Kill() {
  if (pid_ <= 0) {
    return;
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int Proc::Wait(int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (pid_ > 0) {
    int status;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return status;
    }
    if (r < 0 || std::chrono::steady_clock::now() > end) {
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return -1;
}

bool Proc::ReapIfDead(int timeout_ms) { return Wait(timeout_ms) != -1; }

void BecomeSubreaper() {
  static bool done = [] {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    return true;
  }();
  (void)done;
}

namespace {

[[noreturn]] void ExecChild(const std::vector<std::string>& argv, int out_fd) {
  setsid();
  int null_fd = open("/dev/null", O_RDONLY);
  dup2(null_fd, 0);
  dup2(out_fd, 1);
  dup2(out_fd, 2);
  for (int fd = 3; fd < 1024; fd++) {
    close(fd);
  }
  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

}  // namespace

Proc Start(const std::vector<std::string>& argv, const std::string& log) {
  BecomeSubreaper();
  int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_t pid = fork();
  if (pid == 0) {
    ExecChild(argv, out);
  }
  close(out);
  return Proc(pid);
}

RunResult RunCmd(const std::vector<std::string>& argv, int timeout_ms) {
  BecomeSubreaper();
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    return {};
  }
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> args;
    for (const std::string& a : argv) {
      args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    dup2(p[1], 1);
    dup2(p[1], 2);
    int null_fd = open("/dev/null", O_RDONLY);
    dup2(null_fd, 0);
    for (int fd = 3; fd < 1024; fd++) {
      close(fd);
    }
    execv(args[0], args.data());
    _exit(127);
  }
  close(p[1]);
  RunResult res;
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    pollfd pf{p[0], POLLIN, 0};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    end - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    if (poll(&pf, 1, left) <= 0) {
      continue;
    }
    char buf[4096];
    ssize_t n = read(p[0], buf, sizeof buf);
    if (n <= 0) {
      break;
    }
    res.output.append(buf, n);
  }
  close(p[0]);
  int status;
  waitpid(pid, &status, 0);
  if (std::chrono::steady_clock::now() > end) {
    res.status = -1;
  } else if (WIFEXITED(status)) {
    res.status = WEXITSTATUS(status);
  } else {
    res.status = 128 + WTERMSIG(status);
  }
  return res;
}

std::string WaitForFile(const std::string& path, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!ss.str().empty()) {
      return ss.str();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return "";
}

RunResult Dump(pid_t pid, const std::string& images, const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {LazarusBinary(),     "dump", "-t",
                                   std::to_string(pid), "-D",   images};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunCmd(argv);
}

const char* ModeName(Mode m) { return m == Mode::kEager ? "eager" : "lazy"; }

RunResult Restore(Mode mode, const std::string& dir, Proc* daemon, const std::string& daemon_log,
                  const std::vector<std::string>& extra,
                  const std::vector<std::string>& daemon_extra) {
  std::vector<std::string> argv = {LazarusBinary(), "restore", "-D", dir, "-d"};
  if (mode == Mode::kLazy) {
    // The first 300 ms are served by faults alone, so that tests exercise the fault path
    // (and forks, remaps, removals during it) rather than a fill that wins the race.
    std::vector<std::string> d = {LazarusBinary(),   "lazy-pages",   "-D", dir,
                                  "--display-stats", "--fill-delay", "300"};
    d.insert(d.end(), daemon_extra.begin(), daemon_extra.end());
    *daemon = Start(d, daemon_log);
    argv.push_back("--lazy-pages");
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunCmd(argv);
}

int FreePort() {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  close(s);
  return ntohs(a.sin_port);
}

std::string Talk(int port, const std::string& data, const std::string& until, int timeout_ms) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string out;
  if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(s);
    return out;
  }
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(s, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      break;
    }
    sent += n;
  }
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[65536];
  while (out.find(until) == std::string::npos && std::chrono::steady_clock::now() < end) {
    ssize_t n = recv(s, buf, sizeof buf, 0);
    if (n <= 0) {
      break;
    }
    out.append(buf, n);
  }
  close(s);
  return out;
}

bool WaitForService(int port, const std::string& data, const std::string& until, int timeout_ms) {
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < end) {
    if (Talk(port, data, until, 1000).find(until) != std::string::npos) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

void RequireBinary(const char* path) {
  ASSERT_EQ(access(path, X_OK), 0) << path << " is missing: run scripts/setup.sh";
}

std::string Resp(std::initializer_list<std::string> args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const std::string& a : args) {
    out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  }
  return out;
}

Proc StartRedis(int port, int keys, const TempDir& dir) {
  RequireBinary("/usr/bin/redis-server");
  Proc w = Start(
      {"/usr/bin/redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "",
       "--appendonly", "no", "--enable-debug-command", "yes", "--dir", dir.path()},
      dir.File("redis.log"));
  bool ok =
      WaitForService(port, Resp({"PING"}), "+PONG", 10000) &&
      Talk(port, Resp({"DEBUG", "POPULATE", std::to_string(keys), "key", "100"}), "+OK", 30000)
              .find("+OK") != std::string::npos &&
      Talk(port, Resp({"SET", "lazarus", "alive"}), "+OK", 5000).find("+OK") != std::string::npos;
  EXPECT_TRUE(ok) << "redis did not start with its keys";
  return ok ? std::move(w) : Proc();
}

void CopyImagesButPages(const std::string& from, const std::string& to) {
  std::filesystem::create_directories(to);
  for (const auto& e : std::filesystem::directory_iterator(from)) {
    std::string name = e.path().filename();
    if (name.rfind("pages-", 0) != 0 && e.is_regular_file()) {
      std::filesystem::copy_file(e.path(), to + "/" + name,
                                 std::filesystem::copy_options::overwrite_existing);
    }
  }
}

bool WaitForPath(const std::string& path, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    if (access(path.c_str(), F_OK) == 0) {
      return true;
    }
    usleep(10000);
  }
  return false;
}

}  // namespace lz::e2e
