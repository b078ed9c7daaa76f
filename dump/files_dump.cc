// DumpFds: the descriptor table and what each descriptor refers to.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/file_util.h"
#include "base/proc.h"
#include "base/sys.h"
#include "dump/fd_kinds.h"
#include "dump/task_dump.h"

namespace lz {
namespace {

constexpr const char* kDeletedSuffix = " (deleted)";

bool IsTty(const struct stat& st) {
  unsigned maj = major(st.st_rdev);
  return maj == 136 || maj == 4 || maj == 5;  // /dev/pts/*, /dev/tty*, /dev/tty and console
}

// The kind of an fd that lazarus cannot restore yet, for the refusal message.
std::string Describe(const std::string& link, const struct stat& st) {
  if (link.rfind("anon_inode:", 0) == 0) {
    return link.substr(11);
  }
  if (S_ISSOCK(st.st_mode)) return "socket";
  if (S_ISFIFO(st.st_mode)) return link.rfind("pipe:", 0) == 0 ? "pipe" : "fifo";
  if (S_ISBLK(st.st_mode)) return "block device";
  return link;
}

Status SaveDeletedContent(pid_t pid, int fd, const std::string& dir, pb::OpenFile* f) {
  std::string name = "file-" + std::to_string(pid) + "-" + std::to_string(f->id()) + ".data";
  LZ_ASSIGN_OR_RETURN(UniqueFd in, OpenFile(ProcPath(pid, "fd/" + std::to_string(fd)), O_RDONLY));
  LZ_ASSIGN_OR_RETURN(UniqueFd out,
                      OpenFile(dir + "/" + name + ".tmp", O_WRONLY | O_CREAT | O_TRUNC, 0600));
  std::vector<std::byte> buf(1 << 20);
  for (uint64_t off = 0;;) {
    LZ_ASSIGN_OR_RETURN(size_t n, PreadFull(in.get(), buf, off));
    if (n == 0) {
      break;
    }
    LZ_TRY(WriteAll(out.get(), std::span(buf.data(), n)));
    off += n;
  }
  LZ_TRY(std::move(out).Close());
  if (::rename((dir + "/" + name + ".tmp").c_str(), (dir + "/" + name).c_str()) != 0) {
    return FailErrno("rename", name);
  }
  f->set_content_file(name);
  return Ok();
}

// The locks held through fd `fd` (fdinfo "lock:" lines), kept with its open file when the
// dump was asked to (--file-locks), refused otherwise: a restored task without its lock would
// go on as if it held it.
Status DumpLocks(pid_t pid, int fd, const std::string& link, const std::string& fdinfo,
                 bool file_locks, pb::OpenFile* f) {
  LZ_ASSIGN_OR_RETURN(std::vector<FdLock> locks, ParseFdLocks(fdinfo));
  if (locks.empty()) {
    return Ok();  // nearly every fd: no message to build
  }
  std::string where = "fd " + std::to_string(fd) + " of " + std::to_string(pid) + " (" + link + ")";
  for (const FdLock& l : locks) {
    pb::LockKind kind;
    if (l.kind == "FLOCK") {
      kind = pb::LOCK_FLOCK;
    } else if (l.kind == "POSIX") {
      kind = pb::LOCK_POSIX;
    } else if (l.kind == "OFDLCK") {
      kind = pb::LOCK_OFD;
    } else {
      return Invalid(where + ": a " + l.kind + " lock is not supported");
    }
    if (l.mode != "ADVISORY" || (l.access != "READ" && l.access != "WRITE")) {
      return Invalid(where + ": a " + l.mode + " " + l.access + " lock is not supported");
    }
    if (f->type() == pb::FILE_TTY) {
      return Invalid(where + ": a lock on a terminal is not supported");  // reopened, not kept
    }
    if (!file_locks) {
      return Invalid(where + " holds a " + l.kind + " lock: dump with --file-locks to keep it");
    }
    pb::FileLock* out = f->add_locks();
    out->set_kind(kind);
    out->set_write(l.access == "WRITE");
    out->set_start(l.start);
    out->set_end(l.end);
  }
  return Ok();
}

}  // namespace

Result<pb::FdTable> DumpFds(pid_t pid, const std::string& dir, bool file_locks) {
  pb::FdTable table;
  LZ_ASSIGN_OR_RETURN(UniqueFd pidfd, PidfdOpen(pid));
  LZ_ASSIGN_OR_RETURN(std::vector<int> fds, ListNumericDir(ProcPath(pid, "fd")));
  for (int fd : fds) {
    std::string fdpath = ProcPath(pid, "fd/" + std::to_string(fd));
    LZ_ASSIGN_OR_RETURN(std::string link, ReadLink(fdpath));
    struct stat st;
    if (::stat(fdpath.c_str(), &st) != 0) {
      return FailErrno("stat", fdpath);
    }
    LZ_ASSIGN_OR_RETURN(std::string info_text,
                        ReadFileToString(ProcPath(pid, "fdinfo/" + std::to_string(fd))));
    LZ_ASSIGN_OR_RETURN(ProcFdinfo info, ParseFdinfo(info_text));

    pb::Fd* out = table.add_fds();
    out->set_fd(fd);
    out->set_cloexec((info.flags & O_CLOEXEC) != 0);
    // dup'ed descriptors share one open file (offset and flags): record it once.
    bool shared = false;
    for (const pb::Fd& other : table.fds()) {
      if (&other == out) {
        break;
      }
      LZ_ASSIGN_OR_RETURN(bool same, SameOpenFile(pid, other.fd(), pid, fd));
      if (same) {
        out->set_file_id(other.file_id());
        shared = true;
        break;
      }
    }
    if (shared) {
      continue;
    }
    pb::OpenFile* f = table.add_files();
    f->set_id(static_cast<uint32_t>(table.files_size()));
    out->set_file_id(f->id());
    f->set_flags(info.flags & ~static_cast<uint32_t>(O_CLOEXEC));
    f->set_pos(info.pos);
    f->set_dev(st.st_dev);
    f->set_ino(st.st_ino);
    f->set_size(st.st_size);
    f->set_mtime_ns(st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec);
    f->set_mode(st.st_mode);
    f->set_rdev(st.st_rdev);
    f->set_path(link);
    bool deleted = link.size() > 10 && link.compare(link.size() - 10, 10, kDeletedSuffix) == 0;
    if (link.rfind("/memfd:", 0) == 0 && deleted && S_ISREG(st.st_mode) && st.st_nlink == 0) {
      f->set_type(pb::FILE_MEMFD);  // its content is saved once for the tree (shmem.img)
    } else if (S_ISREG(st.st_mode) && link.front() == '/') {
      f->set_type(pb::FILE_REG);
      if (deleted) {
        f->set_path(link.substr(0, link.size() - 10));
        f->set_deleted(true);
        LZ_TRY(SaveDeletedContent(pid, fd, dir, f));
      }
    } else if (S_ISDIR(st.st_mode) && link.front() == '/' && !deleted) {
      f->set_type(pb::FILE_DIR);
    } else if (S_ISCHR(st.st_mode) && link.front() == '/') {
      f->set_type(IsTty(st) ? pb::FILE_TTY : pb::FILE_CHR);
    } else if (S_ISFIFO(st.st_mode) &&
               (link.rfind("pipe:", 0) == 0 || (link.front() == '/' && !deleted))) {
      LZ_TRY_CTX(DumpPipe(pid, fd, st, f),
                 "fd " + std::to_string(fd) + " of " + std::to_string(pid));
      if (link.front() == '/') {
        f->set_type(pb::FILE_FIFO);  // a named pipe: the same, reopened by its path
      }
    } else if (S_ISSOCK(st.st_mode)) {
      Status s = DumpInetSocket(pidfd.get(), fd, st, f);
      if (!s) {
        return Invalid("fd " + std::to_string(fd) + " of " + std::to_string(pid) + ": " +
                       s.error().Message());
      }
    } else if (link.rfind("anon_inode:", 0) == 0) {
      Status s = link == "anon_inode:inotify" ? DumpInotify(pid, info_text, f)
                                              : DumpAnonInode(link.substr(11), info_text, f);
      if (!s) {
        return Invalid("fd " + std::to_string(fd) + " of " + std::to_string(pid) + ": " +
                       s.error().Message());
      }
    } else {
      return Invalid("fd " + std::to_string(fd) + " of " + std::to_string(pid) + ": " +
                     Describe(link, st) + " is not supported");
    }
    LZ_TRY(DumpLocks(pid, fd, link, info_text, file_locks, f));
  }
  return table;
}

}  // namespace lz
