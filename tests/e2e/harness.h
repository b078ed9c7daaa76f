// End-to-end test harness in ZDTM's manner: start a real workload, dump it with the lazarus
// binary, restore it (eagerly or lazily), and let the workload check its own state.
//
// The test process makes itself a child subreaper, so that every process it starts, and every
// restored tree whose restore front-end exits (-d), is its child: it kills and reaps exactly
// those pids, and a dumped pid is free again as soon as it is reaped.
#pragma once

#include <sys/types.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace lz::e2e {

/// Path of the lazarus binary under test and of a workload binary.
std::string LazarusBinary();
std::string WorkloadBinary(const std::string& name);

/// A fresh directory, removed with everything in it by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

/// A process this test started (or restored); SIGKILLed and reaped by pid when destroyed.
class Proc {
 public:
  Proc() = default;
  explicit Proc(pid_t pid) : pid_(pid) {}
  Proc(Proc&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
  Proc& operator=(Proc&& o) noexcept;
  ~Proc() { Kill(); }
  pid_t pid() const { return pid_; }
  /// Kills and reaps the process (no-op if already reaped).
  void Kill();
  /// Waits up to `timeout_ms` for the process to exit; returns its wait status or -1.
  int Wait(int timeout_ms);
  /// Reaps it if it already exited (after a dump killed it).
  bool ReapIfDead(int timeout_ms);
  /// Forgets the process without killing it (it was reaped elsewhere).
  void Release() { pid_ = -1; }

 private:
  pid_t pid_ = -1;
};

/// Starts argv in a new session with stdin from /dev/null and stdout+stderr to `log`.
Proc Start(const std::vector<std::string>& argv, const std::string& log);

struct RunResult {
  int status = -1;  // exit code, or 128+signal, or -1 on timeout
  std::string output;
};
/// Runs a command to completion (bounded by `timeout_ms`), capturing its output.
RunResult RunCmd(const std::vector<std::string>& argv, int timeout_ms = 60000);
/// `lazarus dump -t PID -D IMAGES EXTRA...`.
RunResult Dump(pid_t pid, const std::string& images, const std::vector<std::string>& extra = {});

/// Waits until `path` exists and is non-empty; returns its content ("" on timeout).
std::string WaitForFile(const std::string& path, int timeout_ms);

/// Makes this process a child subreaper (once).
void BecomeSubreaper();

enum class Mode { kEager, kLazy };
const char* ModeName(Mode m);

/// Restores `dir` detached in `mode`. For a lazy restore the lazy-pages daemon is started
/// first and returned in `*daemon` (it exits by itself once every page is home).
/// Returns the restore command's result.
RunResult Restore(Mode mode, const std::string& dir, Proc* daemon, const std::string& daemon_log,
                  const std::vector<std::string>& extra = {},
                  const std::vector<std::string>& daemon_extra = {});

/// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();
/// Connects to 127.0.0.1:port, sends `data`, and reads until `until` appears in the reply, the
/// peer closes, or `timeout_ms` passes. Returns what was read ("" if it could not connect).
std::string Talk(int port, const std::string& data, const std::string& until, int timeout_ms);
/// Repeats Talk until the reply contains `until` or `timeout_ms` passes.
bool WaitForService(int port, const std::string& data, const std::string& until, int timeout_ms);

/// Fails the test when a program the test needs is missing.
void RequireBinary(const char* path);

/// A redis protocol command.
std::string Resp(std::initializer_list<std::string> args);

/// Starts redis-server on 127.0.0.1:port holding `keys` keys ("key:N" -> "value:N") and
/// "lazarus" -> "alive". On failure the test fails and the Proc is empty.
Proc StartRedis(int port, int keys, const TempDir& dir);

/// Copies every image of `from` but the page stores into `to` (what a user copies to the
/// destination host when the pages stay on a page server).
void CopyImagesButPages(const std::string& from, const std::string& to);

/// Waits until `path` exists (any kind of file, even empty).
bool WaitForPath(const std::string& path, int timeout_ms);

}  // namespace lz::e2e
