#include "base/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/file_util.h"

namespace lz {
namespace {

bool IsVmaHeader(std::string_view line) {
  auto dash = line.find('-');
  if (dash == 0 || dash == std::string_view::npos || dash > 16) {
    return false;
  }
  for (size_t i = 0; i < dash; i++) {
    if (!isxdigit(static_cast<unsigned char>(line[i]))) {
      return false;
    }
  }
  return true;
}

// "start-end perms offset major:minor inode   path"
Result<ProcVma> ParseVmaHeader(std::string_view line) {
  ProcVma v;
  std::vector<std::string_view> f;
  size_t i = 0;
  while (f.size() < 5 && i < line.size()) {
    size_t j = line.find(' ', i);
    if (j == std::string_view::npos) {
      j = line.size();
    }
    f.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  if (f.size() < 5) {
    return Invalid("parse maps", "short line '" + std::string(line) + "'");
  }
  auto dash = f[0].find('-');
  auto colon = f[3].find(':');
  uint64_t maj, min;
  if (dash == std::string_view::npos || colon == std::string_view::npos ||
      !ParseU64(f[0].substr(0, dash), &v.start, 16) ||
      !ParseU64(f[0].substr(dash + 1), &v.end, 16) || !ParseU64(f[2], &v.pgoff, 16) ||
      !ParseU64(f[3].substr(0, colon), &maj, 16) || !ParseU64(f[3].substr(colon + 1), &min, 16) ||
      !ParseU64(f[4], &v.ino) || f[1].size() != 4 || v.start >= v.end) {
    return Invalid("parse maps", "bad line '" + std::string(line) + "'");
  }
  v.dev_major = static_cast<uint32_t>(maj);
  v.dev_minor = static_cast<uint32_t>(min);
  v.prot = (f[1][0] == 'r' ? PROT_READ : 0) | (f[1][1] == 'w' ? PROT_WRITE : 0) |
           (f[1][2] == 'x' ? PROT_EXEC : 0);
  v.shared = f[1][3] == 's';
  if (i < line.size()) {
    v.path = std::string(TrimSpace(line.substr(i)));
  }
  return v;
}

// The words of a line, between spaces and tabs (the fields after "Key:" in /proc/PID/status,
// of an fdinfo "lock:" line).
std::vector<std::string_view> Fields(std::string_view rest) {
  std::vector<std::string_view> out;
  for (std::string_view p : SplitString(rest, '\t')) {
    for (std::string_view q : SplitString(p, ' ')) {
      if (!q.empty()) {
        out.push_back(q);
      }
    }
  }
  return out;
}

}  // namespace

bool ProcVma::HasFlag(std::string_view f) const {
  return std::find(vm_flags.begin(), vm_flags.end(), f) != vm_flags.end();
}

Result<std::vector<ProcVma>> ParseSmaps(std::string_view text) {
  std::vector<ProcVma> out;
  for (std::string_view line : SplitString(text, '\n')) {
    if (line.empty()) {
      continue;
    }
    if (IsVmaHeader(line)) {
      LZ_ASSIGN_OR_RETURN(ProcVma v, ParseVmaHeader(line));
      if (!out.empty() && v.start < out.back().end) {
        return Invalid("parse maps", "overlapping or unsorted VMAs");
      }
      out.push_back(std::move(v));
    } else if (line.rfind("VmFlags:", 0) == 0) {
      if (out.empty()) {
        return Invalid("parse smaps", "VmFlags before any VMA");
      }
      for (std::string_view fl : Fields(line.substr(8))) {
        out.back().vm_flags.emplace_back(fl);
      }
    }
  }
  return out;
}

Result<ProcStat> ParseStat(std::string_view text) {
  ProcStat s;
  auto open = text.find('(');
  auto close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open ||
      close + 2 > text.size()) {
    return Invalid("parse stat", "no (comm)");
  }
  int64_t pid;
  if (!ParseI64(TrimSpace(text.substr(0, open)), &pid)) {
    return Invalid("parse stat", "bad pid");
  }
  s.pid = static_cast<pid_t>(pid);
  s.comm = std::string(text.substr(open + 1, close - open - 1));
  std::vector<std::string_view> f = Fields(TrimSpace(text.substr(close + 1)));
  // f[0] is field 3 (state) of proc(5); field N is f[N - 3].
  if (f.size() < 49) {
    return Invalid("parse stat", "only " + std::to_string(f.size() + 2) + " fields");
  }
  auto num = [&](int field, uint64_t* out) { return ParseU64(f[field - 3], out); };
  uint64_t ppid, pgrp, sid, exit_sig;
  s.state = f[0].empty() ? '?' : f[0][0];
  if (!num(4, &ppid) || !num(5, &pgrp) || !num(6, &sid) || !num(9, &s.flags) ||
      !num(26, &s.start_code) || !num(27, &s.end_code) || !num(28, &s.start_stack) ||
      !num(38, &exit_sig) || !num(45, &s.start_data) || !num(46, &s.end_data) ||
      !num(47, &s.start_brk) || !num(48, &s.arg_start) || !num(49, &s.arg_end) ||
      !num(50, &s.env_start) || !num(51, &s.env_end)) {
    return Invalid("parse stat", "non-numeric field");
  }
  s.ppid = static_cast<pid_t>(ppid);
  s.pgrp = static_cast<pid_t>(pgrp);
  s.session = static_cast<pid_t>(sid);
  s.exit_signal = static_cast<int>(exit_sig);
  uint64_t code = 0;
  if (f.size() >= 50 && ParseU64(f[52 - 3], &code)) {
    s.exit_code = static_cast<int>(code);
  }
  return s;
}

Result<ProcStatus> ParseStatus(std::string_view text) {
  ProcStatus s;
  int seen = 0;
  for (std::string_view line : SplitString(text, '\n')) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      continue;
    }
    std::string_view key = line.substr(0, colon);
    std::vector<std::string_view> f = Fields(line.substr(colon + 1));
    auto ids = [&](uint32_t* out) -> bool {
      if (f.size() != 4) {
        return false;
      }
      for (int i = 0; i < 4; i++) {
        uint64_t v;
        if (!ParseU64(f[i], &v)) {
          return false;
        }
        out[i] = static_cast<uint32_t>(v);
      }
      seen++;
      return true;
    };
    auto hex = [&](uint64_t* out) { return f.size() == 1 && ParseU64(f[0], out, 16); };
    uint64_t v = 0;
    bool ok = true;
    if (key == "Uid") {
      ok = ids(s.uid);
    } else if (key == "Gid") {
      ok = ids(s.gid);
    } else if (key == "Groups") {
      for (std::string_view g : f) {
        ok = ok && ParseU64(g, &v);
        s.groups.push_back(static_cast<uint32_t>(v));
      }
    } else if (key == "CapInh") {
      ok = hex(&s.cap_inh);
    } else if (key == "CapPrm") {
      ok = hex(&s.cap_prm);
    } else if (key == "CapEff") {
      ok = hex(&s.cap_eff);
    } else if (key == "CapBnd") {
      ok = hex(&s.cap_bnd);
    } else if (key == "CapAmb") {
      ok = hex(&s.cap_amb);
    } else if (key == "Umask") {
      ok = f.size() == 1 && ParseU64(f[0], &v, 8);
      s.umask = static_cast<uint32_t>(v);
    } else if (key == "NoNewPrivs") {
      ok = f.size() == 1 && ParseU64(f[0], &v);
      s.no_new_privs = v != 0;
    } else if (key == "Seccomp") {
      ok = f.size() == 1 && ParseU64(f[0], &v);
      s.seccomp = static_cast<int>(v);
    } else if (key == "TracerPid") {
      ok = f.size() == 1 && ParseU64(f[0], &v);
      s.tracer_pid = static_cast<pid_t>(v);
    } else if (key == "Threads") {
      ok = f.size() == 1 && ParseU64(f[0], &v);
      s.threads = static_cast<int>(v);
    } else if (key == "SigPnd") {
      ok = hex(&s.sig_pending);
    } else if (key == "ShdPnd") {
      ok = hex(&s.shared_pending);
    }
    if (!ok) {
      return Invalid("parse status", "bad " + std::string(key) + " line");
    }
  }
  if (seen != 2) {
    return Invalid("parse status", "missing Uid or Gid");
  }
  return s;
}

Result<std::vector<ProcLimit>> ParseLimits(std::string_view text) {
  // Rows in the kernel's order, which is the RLIMIT_* numbering.
  static const char* kNames[] = {
      "Max cpu time",       "Max file size",     "Max data size",         "Max stack size",
      "Max core file size", "Max resident set",  "Max processes",         "Max open files",
      "Max locked memory",  "Max address space", "Max file locks",        "Max pending signals",
      "Max msgqueue size",  "Max nice priority", "Max realtime priority", "Max realtime timeout"};
  std::vector<ProcLimit> out;
  for (std::string_view line : SplitString(text, '\n')) {
    for (int r = 0; r < 16; r++) {
      size_t n = std::strlen(kNames[r]);
      if (line.substr(0, n) != kNames[r] || (line.size() > n && line[n] != ' ')) {
        continue;
      }
      std::vector<std::string_view> f = Fields(line.substr(n));
      if (f.size() < 2) {
        return Invalid("parse limits", "bad line '" + std::string(line) + "'");
      }
      ProcLimit l{r, 0, 0};
      for (int k = 0; k < 2; k++) {
        uint64_t& dst = k == 0 ? l.cur : l.max;
        if (f[k] == "unlimited") {
          dst = RLIM_INFINITY;
        } else if (!ParseU64(f[k], &dst)) {
          return Invalid("parse limits", "bad value in '" + std::string(line) + "'");
        }
      }
      out.push_back(l);
    }
  }
  if (out.size() != 16) {
    return Invalid("parse limits", "found " + std::to_string(out.size()) + " of 16 limits");
  }
  return out;
}

Result<ProcFdinfo> ParseFdinfo(std::string_view text) {
  ProcFdinfo fi;
  bool pos = false, flags = false;
  for (std::string_view line : SplitString(text, '\n')) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      continue;
    }
    std::string_view key = line.substr(0, colon);
    std::string_view val = TrimSpace(line.substr(colon + 1));
    uint64_t v;
    if (key == "pos") {
      pos = ParseU64(val, &fi.pos);
    } else if (key == "flags") {
      flags = ParseU64(val, &v, 8);
      fi.flags = static_cast<uint32_t>(v);
    } else if (key == "mnt_id" && ParseU64(val, &v)) {
      fi.mnt_id = static_cast<int>(v);
    }
  }
  if (!pos || !flags) {
    return Invalid("parse fdinfo", "missing pos or flags");
  }
  return fi;
}

std::string ProcPath(pid_t pid, const std::string& rest) {
  return "/proc/" + std::to_string(pid) + "/" + rest;
}

Result<ProcStat> ReadProcStat(pid_t pid) {
  LZ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(ProcPath(pid, "stat")));
  return ParseStat(text);
}

Result<std::vector<int>> ListNumericDir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) {
    return FailErrno("opendir", path);
  }
  std::vector<int> out;
  while (dirent* e = ::readdir(d)) {
    int64_t v;
    if (ParseI64(e->d_name, &v)) {
      out.push_back(static_cast<int>(v));
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace lz

namespace lz {

Result<std::vector<EpollEntry>> ParseEpollFdinfo(std::string_view text) {
  std::vector<EpollEntry> out;
  for (std::string_view line : SplitString(text, '\n')) {
    if (line.rfind("tfd:", 0) != 0) {
      continue;
    }
    // "tfd:        5 events:       19 data:                5  pos:0 ino:... sdev:..."
    std::vector<std::string_view> f;
    for (std::string_view w : SplitString(line, ' ')) {
      if (!w.empty()) {
        f.push_back(w);
      }
    }
    EpollEntry e;
    uint64_t v;
    if (f.size() < 6 || f[0] != "tfd:" || f[2] != "events:" || f[4] != "data:" ||
        !ParseU64(f[1], &v)) {
      return Invalid("parse epoll fdinfo", "bad line '" + std::string(line) + "'");
    }
    e.tfd = static_cast<int>(v);
    if (!ParseU64(f[3], &v, 16)) {
      return Invalid("parse epoll fdinfo", "bad events in '" + std::string(line) + "'");
    }
    e.events = static_cast<uint32_t>(v);
    if (!ParseU64(f[5], &e.data, 16)) {
      return Invalid("parse epoll fdinfo", "bad data in '" + std::string(line) + "'");
    }
    out.push_back(e);
  }
  return out;
}

// "lock:\t1: FLOCK  ADVISORY  WRITE 15539 fe:00:10953070 0 EOF"; a waiter has "->" after the
// number.
Result<std::vector<FdLock>> ParseFdLocks(std::string_view text) {
  std::vector<FdLock> out;
  for (std::string_view line : SplitString(text, '\n')) {
    if (line.rfind("lock:", 0) != 0) {
      continue;
    }
    std::vector<std::string_view> f = Fields(line.substr(5));
    if (f.size() > 1 && f[1] == "->") {
      continue;
    }
    FdLock l;
    uint64_t start = 0, end = 0;
    if (f.size() != 8 || f[0].empty() || f[0].back() != ':' || !ParseU64(f[6], &start) ||
        (f[7] != "EOF" && !ParseU64(f[7], &end)) || (f[7] != "EOF" && end < start)) {
      return Invalid("parse fdinfo", "bad lock line '" + std::string(line) + "'");
    }
    l.kind = std::string(f[1]);
    l.mode = std::string(f[2]);
    l.access = std::string(f[3]);
    l.start = start;
    l.end = f[7] == "EOF" ? UINT64_MAX : end;
    out.push_back(std::move(l));
  }
  return out;
}

// A header line, then "key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime
// ctime rss swap" per segment: key, shmid and the counts in decimal, perms in octal.
Result<std::vector<SysvShm>> ParseSysvShm(std::string_view text) {
  std::vector<SysvShm> out;
  bool header = true;
  for (std::string_view line : SplitString(text, '\n')) {
    if (header || line.empty()) {
      header = false;
      continue;
    }
    std::vector<std::string_view> f = Fields(line);
    int64_t key = 0, shmid = 0;
    uint64_t perms = 0, size = 0, nattch = 0, uid = 0, gid = 0, cuid = 0, cgid = 0;
    if (f.size() < 11 || !ParseI64(f[0], &key) || !ParseI64(f[1], &shmid) ||
        !ParseU64(f[2], &perms, 8) || !ParseU64(f[3], &size) || !ParseU64(f[6], &nattch) ||
        !ParseU64(f[7], &uid) || !ParseU64(f[8], &gid) || !ParseU64(f[9], &cuid) ||
        !ParseU64(f[10], &cgid) || key < INT32_MIN || key > INT32_MAX || shmid < 0 ||
        shmid > INT32_MAX || perms > 07777 || uid > UINT32_MAX || gid > UINT32_MAX ||
        cuid > UINT32_MAX || cgid > UINT32_MAX || nattch > UINT32_MAX) {
      return Invalid("parse /proc/sysvipc/shm", "bad line '" + std::string(line) + "'");
    }
    out.push_back({static_cast<int32_t>(key), static_cast<int32_t>(shmid),
                   static_cast<uint32_t>(perms), size, static_cast<uint32_t>(nattch),
                   static_cast<uint32_t>(uid), static_cast<uint32_t>(gid),
                   static_cast<uint32_t>(cuid), static_cast<uint32_t>(cgid)});
  }
  return out;
}

// "inotify wd:3 ino:2dd sdev:fe00000 mask:4000004 ignored_mask:0 fhandle-bytes:8
// fhandle-type:1 f_handle:dd02000000000000", every number in hex.
Result<std::vector<InotifyEntry>> ParseInotifyFdinfo(std::string_view text) {
  std::vector<InotifyEntry> out;
  for (std::string_view line : SplitString(text, '\n')) {
    if (line.rfind("inotify ", 0) != 0) {
      continue;
    }
    auto bad = [&](const char* what) {
      return Invalid("parse inotify fdinfo", std::string(what) + " in '" + std::string(line) + "'");
    };
    InotifyEntry e;
    uint64_t wd = 0, sdev = 0, mask = 0, handle_bytes = 0, handle_type = 0;
    unsigned seen = 0;
    for (std::string_view w : SplitString(line.substr(8), ' ')) {
      auto colon = w.find(':');
      if (colon == std::string_view::npos) {
        continue;
      }
      std::string_view key = w.substr(0, colon), val = w.substr(colon + 1);
      bool ok = true;
      if (key == "wd") {
        ok = ParseU64(val, &wd, 16) && wd > 0 && wd <= INT32_MAX;
        seen |= 1;
      } else if (key == "ino") {
        ok = ParseU64(val, &e.ino, 16);
        seen |= 2;
      } else if (key == "sdev") {
        ok = ParseU64(val, &sdev, 16);
        seen |= 4;
      } else if (key == "mask") {
        ok = ParseU64(val, &mask, 16) && mask <= UINT32_MAX;
        seen |= 8;
      } else if (key == "fhandle-bytes") {
        ok = ParseU64(val, &handle_bytes, 16) && handle_bytes <= 128;
      } else if (key == "fhandle-type") {
        ok = ParseU64(val, &handle_type, 16) && handle_type <= INT32_MAX;
      } else if (key == "f_handle") {
        ok = val.size() % 2 == 0;
        for (size_t i = 0; ok && i < val.size(); i += 2) {
          uint64_t byte = 0;
          ok = ParseU64(val.substr(i, 2), &byte, 16);
          e.handle.push_back(static_cast<char>(byte));
        }
      }
      if (!ok) {
        return bad("bad value");
      }
    }
    if (seen != 15) {
      return bad("a field missing");
    }
    if (e.handle.size() != handle_bytes) {
      return bad("a handle of the wrong size");
    }
    e.wd = static_cast<int>(wd);
    // The kernel's dev_t: 12 bits of major above 20 bits of minor.
    e.fs_dev = makedev(static_cast<unsigned>(sdev >> 20), static_cast<unsigned>(sdev & 0xfffff));
    e.mask = static_cast<uint32_t>(mask);
    e.handle_type = static_cast<int>(handle_type);
    out.push_back(std::move(e));
  }
  return out;
}

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string UnescapeOctal(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    uint64_t v;
    if (s[i] == '\\' && i + 3 < s.size() && ParseU64(s.substr(i + 1, 3), &v, 8) && v < 256) {
      out.push_back(static_cast<char>(v));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

// "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
Result<std::vector<MountEntry>> ParseMountinfo(std::string_view text) {
  std::vector<MountEntry> out;
  for (std::string_view line : SplitString(text, '\n')) {
    if (line.empty()) {
      continue;
    }
    std::vector<std::string_view> f = SplitString(line, ' ');
    MountEntry m;
    uint64_t maj, min;
    size_t colon = f.size() > 2 ? f[2].find(':') : std::string_view::npos;
    if (f.size() < 5 || colon == std::string_view::npos || !ParseU64(f[2].substr(0, colon), &maj) ||
        !ParseU64(f[2].substr(colon + 1), &min) || maj > UINT32_MAX || min > UINT32_MAX) {
      return Invalid("parse mountinfo", "bad line '" + std::string(line) + "'");
    }
    m.dev_major = static_cast<uint32_t>(maj);
    m.dev_minor = static_cast<uint32_t>(min);
    m.root = UnescapeOctal(f[3]);
    m.mount_point = UnescapeOctal(f[4]);
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::vector<ProcVma>> ReadSmaps(pid_t pid) {
  LZ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(ProcPath(pid, "smaps")));
  return ParseSmaps(text);
}

char StateIn(const std::string& stat_path) {
  auto text = ReadFileToString(stat_path);
  size_t paren = text ? text->rfind(')') : std::string::npos;  // the command may hold ')'
  return paren != std::string::npos && paren + 2 < text->size() ? (*text)[paren + 2] : '?';
}

std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> out;
  auto tids = ListNumericDir("/proc/" + std::to_string(pid) + "/task");
  if (!tids) {
    return out;
  }
  for (int tid : *tids) {
    auto text = ReadFileToString("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) +
                                 "/children");
    if (!text) {
      continue;
    }
    for (std::string_view s : SplitString(TrimSpace(*text), ' ')) {
      int64_t c;
      if (ParseI64(s, &c)) {
        out.push_back(static_cast<pid_t>(c));
      }
    }
  }
  return out;
}

std::vector<pid_t> DescendantsOf(std::span<const pid_t> roots) {
  std::vector<pid_t> out;
  std::vector<pid_t> todo(roots.begin(), roots.end());
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    for (pid_t c : ChildrenOf(p)) {
      if (std::find(out.begin(), out.end(), c) == out.end() &&
          std::find(roots.begin(), roots.end(), c) == roots.end()) {
        out.push_back(c);
        todo.push_back(c);
      }
    }
  }
  return out;
}

Result<UniqueFd> OpenByHandle(const std::string& proc_dir, uint64_t fs_dev, int handle_type,
                              std::string_view handle) {
  if (handle.empty()) {
    return Fail(EOPNOTSUPP, "open by handle", "its filesystem gives no file handles");
  }
  LZ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(proc_dir + "/mountinfo"));
  LZ_ASSIGN_OR_RETURN(std::vector<MountEntry> mounts, ParseMountinfo(text));
  // A mount of the whole filesystem first: a handle may name a file outside a bind mount's
  // directory.
  std::stable_partition(mounts.begin(), mounts.end(),
                        [](const MountEntry& m) { return m.root == "/"; });
  std::vector<unsigned char> buf(sizeof(file_handle) + handle.size());
  auto* fh = reinterpret_cast<file_handle*>(buf.data());
  fh->handle_bytes = static_cast<unsigned>(handle.size());
  fh->handle_type = handle_type;
  std::memcpy(fh->f_handle, handle.data(), handle.size());
  int last_errno = ENODEV;
  for (const MountEntry& m : mounts) {
    if (makedev(m.dev_major, m.dev_minor) != fs_dev) {
      continue;
    }
    int mfd = ::open((proc_dir + "/root" + m.mount_point).c_str(),
                     O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // not O_PATH: refused there
    if (mfd < 0) {
      last_errno = errno;
      continue;
    }
    int fd = ::open_by_handle_at(mfd, fh, O_PATH | O_CLOEXEC);
    last_errno = errno;
    ::close(mfd);
    if (fd >= 0) {
      return UniqueFd(fd);
    }
  }
  return Fail(last_errno, "open_by_handle_at",
              "device " + std::to_string(major(fs_dev)) + ":" + std::to_string(minor(fs_dev)));
}

// Four lines per timer: "ID: 0", "signal: 36/0000000000001234", "notify: signal/pid.25710"
// (or none/..., or .../tid.N for SIGEV_THREAD_ID), "ClockID: 1".
Result<std::vector<ProcPosixTimer>> ParsePosixTimers(std::string_view text) {
  std::vector<ProcPosixTimer> out;
  auto bad = [](std::string_view line) {
    return Invalid("parse /proc/PID/timers", "bad line '" + std::string(line) + "'");
  };
  for (std::string_view line : SplitString(text, '\n')) {
    auto colon = line.find(':');
    if (line.empty()) {
      continue;
    }
    if (colon == std::string_view::npos) {
      return bad(line);
    }
    std::string_view key = line.substr(0, colon);
    std::string_view value = TrimSpace(line.substr(colon + 1));
    uint64_t v = 0;
    if (key == "ID") {
      if (!ParseU64(value, &v) || v > INT32_MAX) {
        return bad(line);
      }
      out.emplace_back().id = static_cast<int>(v);
      continue;
    }
    if (out.empty()) {
      return bad(line);
    }
    ProcPosixTimer& t = out.back();
    auto slash = value.find('/');
    if (key == "signal") {
      if (slash == std::string_view::npos || !ParseU64(value.substr(0, slash), &v) || v > 64 ||
          !ParseU64(value.substr(slash + 1), &t.sigval, 16)) {
        return bad(line);
      }
      t.signo = static_cast<int>(v);
    } else if (key == "notify") {
      auto dot = value.find('.');
      if (slash == std::string_view::npos || dot == std::string_view::npos || dot < slash ||
          !ParseU64(value.substr(dot + 1), &v) || v > INT32_MAX) {
        return bad(line);
      }
      std::string_view kind = value.substr(0, slash);
      std::string_view who = value.substr(slash + 1, dot - slash - 1);
      if (kind == "signal") {
        t.notify = SIGEV_SIGNAL;
      } else if (kind == "none") {
        t.notify = SIGEV_NONE;
      } else {
        return bad(line);
      }
      if (who == "tid") {
        t.notify |= SIGEV_THREAD_ID;
      } else if (who != "pid") {
        return bad(line);
      }
      t.notify_pid = static_cast<pid_t>(v);
    } else if (key == "ClockID") {
      if (!ParseU64(value, &v) || v > INT32_MAX) {
        return bad(line);
      }
      t.clockid = static_cast<int>(v);
    } else {
      return bad(line);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseFdinfoKeys(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  for (std::string_view line : SplitString(text, '\n')) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      continue;
    }
    out.emplace_back(std::string(TrimSpace(line.substr(0, colon))),
                     std::string(TrimSpace(line.substr(colon + 1))));
  }
  return out;
}

bool ParseTimespecPair(std::string_view text, uint64_t* ns) {
  text = TrimSpace(text);
  if (text.size() < 5 || text.front() != '(' || text.back() != ')') {
    return false;
  }
  auto comma = text.find(',');
  if (comma == std::string_view::npos) {
    return false;
  }
  uint64_t sec, nsec;
  if (!ParseU64(TrimSpace(text.substr(1, comma - 1)), &sec) ||
      !ParseU64(TrimSpace(text.substr(comma + 1, text.size() - comma - 2)), &nsec)) {
    return false;
  }
  *ns = sec * 1000000000ull + nsec;
  return true;
}

}  // namespace lz
