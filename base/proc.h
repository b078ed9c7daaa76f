// Parsers for the /proc files the dumper reads. Pure functions over text so that they can be
// tested with real and malformed input.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace lz {

/// Bits of a /proc/PID/pagemap entry (one u64 per page).
constexpr uint64_t kPagemapPresent = 1ull << 63;
constexpr uint64_t kPagemapSwap = 1ull << 62;
constexpr uint64_t kPagemapFile = 1ull << 61;  // a file page, or shared anonymous memory

struct ProcVma {
  uint64_t start = 0;
  uint64_t end = 0;
  uint32_t prot = 0;  // PROT_*
  bool shared = false;
  uint64_t pgoff = 0;
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  uint64_t ino = 0;
  std::string path;                   // "" for anonymous, "[heap]", "/usr/lib/...", ...
  std::vector<std::string> vm_flags;  // smaps "VmFlags:" two-letter codes

  bool HasFlag(std::string_view f) const;
};

/// Parses /proc/PID/smaps (or maps, then vm_flags stay empty).
[[nodiscard]] Result<std::vector<ProcVma>> ParseSmaps(std::string_view text);

struct ProcStat {
  pid_t pid = 0;
  std::string comm;
  char state = '?';
  pid_t ppid = 0;
  pid_t pgrp = 0;
  pid_t session = 0;
  uint64_t flags = 0;
  int exit_signal = 0;
  int exit_code = 0;  // field 52: wait status of an exited task (0 when the kernel omits it)
  uint64_t start_code = 0, end_code = 0, start_stack = 0;
  uint64_t start_data = 0, end_data = 0, start_brk = 0;
  uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
};
[[nodiscard]] Result<ProcStat> ParseStat(std::string_view text);

struct ProcStatus {
  uint32_t uid[4] = {};  // real, effective, saved, fs
  uint32_t gid[4] = {};
  std::vector<uint32_t> groups;
  uint64_t cap_inh = 0, cap_prm = 0, cap_eff = 0, cap_bnd = 0, cap_amb = 0;
  uint32_t umask = 022;
  bool no_new_privs = false;
  int seccomp = 0;
  pid_t tracer_pid = 0;
  int threads = 0;
  uint64_t sig_pending = 0;     // SigPnd: the thread's own (bit N-1: signal N)
  uint64_t shared_pending = 0;  // ShdPnd: the process's
};
[[nodiscard]] Result<ProcStatus> ParseStatus(std::string_view text);

struct ProcLimit {
  int resource = 0;
  uint64_t cur = 0;
  uint64_t max = 0;
};
/// Parses /proc/PID/limits (readable for any process, unlike prlimit which needs
/// CAP_SYS_RESOURCE for another user's process).
[[nodiscard]] Result<std::vector<ProcLimit>> ParseLimits(std::string_view text);

struct ProcFdinfo {
  uint64_t pos = 0;
  uint32_t flags = 0;
  int mnt_id = -1;
};
[[nodiscard]] Result<ProcFdinfo> ParseFdinfo(std::string_view text);

/// One "lock:" line of an fd's fdinfo: a lock held through that open file. Processes waiting
/// for a lock ("->" lines) are not listed.
struct FdLock {
  std::string kind;    // FLOCK, POSIX, OFDLCK, LEASE, DELEG, ...
  std::string mode;    // ADVISORY, MANDATORY, ACTIVE, BREAKING, ...
  std::string access;  // READ, WRITE (UNLCK for a lease being broken)
  uint64_t start = 0;
  uint64_t end = 0;  // inclusive; UINT64_MAX for "EOF" (to the end of the file, and beyond)
};
[[nodiscard]] Result<std::vector<FdLock>> ParseFdLocks(std::string_view text);

/// One SysV shared memory segment of /proc/sysvipc/shm (the caller's IPC namespace).
struct SysvShm {
  int32_t key = 0;
  int32_t shmid = 0;
  uint32_t perms = 0;  // mode bits, with SHM_DEST (01000) once removed and still attached
  uint64_t size = 0;
  uint32_t nattch = 0;
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t cuid = 0;  // the creator's effective ids (shmget), which IPC_SET does not change
  uint32_t cgid = 0;
};
[[nodiscard]] Result<std::vector<SysvShm>> ParseSysvShm(std::string_view text);

/// "/proc/PID/REST".
std::string ProcPath(pid_t pid, const std::string& rest);
/// Reads and parses /proc/PID/stat.
[[nodiscard]] Result<ProcStat> ReadProcStat(pid_t pid);

/// Lists the numeric entries of a /proc directory (tasks, fds).
[[nodiscard]] Result<std::vector<int>> ListNumericDir(const std::string& path);

}  // namespace lz

namespace lz {

/// One "tfd:" line of an epoll fd's fdinfo.
struct EpollEntry {
  int tfd = 0;
  uint32_t events = 0;
  uint64_t data = 0;
};
[[nodiscard]] Result<std::vector<EpollEntry>> ParseEpollFdinfo(std::string_view text);

/// Key "name: value" lines of anon-inode fdinfo (eventfd-count, sigmask, clockid, ticks...),
/// values as written; missing keys are absent.
std::vector<std::pair<std::string, std::string>> ParseFdinfoKeys(std::string_view text);

/// One timer of /proc/PID/timers (timer_create). `notify` is the sigev_notify value:
/// SIGEV_SIGNAL, SIGEV_NONE, or SIGEV_THREAD_ID | SIGEV_SIGNAL with `notify_pid` the thread.
struct ProcPosixTimer {
  int id = 0;
  int signo = 0;
  uint64_t sigval = 0;
  int notify = 0;
  pid_t notify_pid = 0;
  int clockid = 0;
};
[[nodiscard]] Result<std::vector<ProcPosixTimer>> ParsePosixTimers(std::string_view text);

/// "(sec, nsec)" as in timerfd fdinfo, to nanoseconds.
bool ParseTimespecPair(std::string_view text, uint64_t* ns);

/// One "inotify wd:..." line of an inotify fd's fdinfo: a watch and the file it watches.
struct InotifyEntry {
  int wd = 0;
  uint64_t ino = 0;
  // The filesystem's device, as mountinfo lists it (the line has the kernel's encoding). Not
  // always what stat(2) gives for the file: btrfs subvolumes and overlayfs report their own.
  uint64_t fs_dev = 0;
  uint32_t mask = 0;  // events, IN_EXCL_UNLINK, IN_ONESHOT
  int handle_type = 0;
  std::string handle;  // the file handle's bytes (open_by_handle_at); empty when it has none
};
[[nodiscard]] Result<std::vector<InotifyEntry>> ParseInotifyFdinfo(std::string_view text);

/// One line of /proc/PID/mountinfo, the fields lazarus uses.
struct MountEntry {
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  std::string root;         // the directory of the filesystem mounted there
  std::string mount_point;  // octal escapes (\040) decoded
};
[[nodiscard]] Result<std::vector<MountEntry>> ParseMountinfo(std::string_view text);

/// /proc/PID/smaps, read and parsed.
[[nodiscard]] Result<std::vector<ProcVma>> ReadSmaps(pid_t pid);
/// The state letter ('R', 'S', 'D', 'Z', ...) in a /proc stat file, a process's or a thread's
/// (whose stat ParseStat does not take: its exit signal is -1); '?' if it cannot be read.
char StateIn(const std::string& stat_path);

/// The children of every thread of `pid`, from /proc (none if it is gone).
std::vector<pid_t> ChildrenOf(pid_t pid);
/// Every descendant of `roots` (children, their children, ...), without the roots.
std::vector<pid_t> DescendantsOf(std::span<const pid_t> roots);

/// Opens (O_PATH) the file that a file handle names, through a mount of its filesystem (`fs_dev`
/// as mountinfo lists it) in the mount table of `proc_dir` ("/proc/self", "/proc/PID": its
/// mountinfo, and its root for the mount points).
[[nodiscard]] Result<UniqueFd> OpenByHandle(const std::string& proc_dir, uint64_t fs_dev,
                                            int handle_type, std::string_view handle);

}  // namespace lz
