#include "base/proc.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "base/file_util.h"

namespace lz {
namespace {

TEST(Proc, SmapsOfSelfFindsOurMapping) {
  void* p = mmap(nullptr, 3 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  auto text = ReadFileToString("/proc/self/smaps");
  ASSERT_TRUE(text);
  auto vmas = ParseSmaps(*text);
  ASSERT_TRUE(vmas) << vmas.error().Message();
  bool found = false, stack = false;
  for (const ProcVma& v : *vmas) {
    if (v.start <= reinterpret_cast<uint64_t>(p) && reinterpret_cast<uint64_t>(p) < v.end) {
      found = true;
      EXPECT_EQ(v.prot, static_cast<uint32_t>(PROT_READ));
      EXPECT_FALSE(v.shared);
      EXPECT_FALSE(v.vm_flags.empty());
    }
    if (v.path == "[stack]") {
      stack = true;
      EXPECT_TRUE(v.HasFlag("gd"));
    }
  }
  EXPECT_TRUE(found);
  EXPECT_TRUE(stack);
  munmap(p, 3 * 4096);
}

TEST(Proc, MapsLineWithSpacesInPath) {
  auto vmas =
      ParseSmaps("7f00-8f00 r-xp 00001000 fe:01 1234                       /tmp/a b (deleted)\n");
  ASSERT_TRUE(vmas);
  ASSERT_EQ(vmas->size(), 1u);
  EXPECT_EQ((*vmas)[0].path, "/tmp/a b (deleted)");
  EXPECT_EQ((*vmas)[0].pgoff, 0x1000u);
  EXPECT_EQ((*vmas)[0].dev_major, 0xfeu);
  EXPECT_EQ((*vmas)[0].ino, 1234u);
}

TEST(Proc, MalformedMapsAreRefused) {
  EXPECT_FALSE(ParseSmaps("7f00-zz r-xp 0 0:0 0\n"));
  EXPECT_FALSE(ParseSmaps("8f00-7f00 r-xp 00000000 00:00 0\n"));
  EXPECT_FALSE(ParseSmaps("7f00-8f00 r-x 00000000 00:00 0\n"));
  EXPECT_FALSE(ParseSmaps("1000-3000 r--p 0 0:0 0\n2000-4000 r--p 0 0:0 0\n"));
}

// A child that forks a grandchild: both are descendants of this test, which is not.
TEST(Proc, DescendantsOfFindsChildrenAndTheirChildren) {
  // Subreaper for this test only: the grandchild comes back to be reaped.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  if (child == 0) {
    pid_t grandchild = fork();
    if (grandchild == 0) {
      pause();
      _exit(0);
    }
    if (write(ready[1], &grandchild, sizeof grandchild) != sizeof grandchild) _exit(1);
    pause();
    _exit(0);
  }
  pid_t grandchild = 0;
  ssize_t got = read(ready[0], &grandchild, sizeof grandchild);
  close(ready[0]);
  close(ready[1]);
  pid_t self = getpid();
  std::vector<pid_t> d = DescendantsOf(std::span(&self, 1));
  std::vector<pid_t> of_child = ChildrenOf(child);
  if (got == static_cast<ssize_t>(sizeof grandchild)) {
    kill(grandchild, SIGKILL);
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  if (got == static_cast<ssize_t>(sizeof grandchild)) {
    waitpid(grandchild, nullptr, 0);
  }
  prctl(PR_SET_CHILD_SUBREAPER, 0);
  ASSERT_EQ(got, static_cast<ssize_t>(sizeof grandchild));
  EXPECT_NE(std::find(d.begin(), d.end(), child), d.end());
  EXPECT_NE(std::find(d.begin(), d.end(), grandchild), d.end());
  EXPECT_EQ(std::find(d.begin(), d.end(), self), d.end());
  EXPECT_EQ(of_child, std::vector<pid_t>{grandchild});
}

// A thread's stat as well as a process's, and '?' for one that is not there.
TEST(Proc, StateInStatFiles) {
  EXPECT_EQ(StateIn("/proc/self/stat"), 'R');
  EXPECT_EQ(StateIn("/proc/self/task/" + std::to_string(getpid()) + "/stat"), 'R');
  EXPECT_EQ(StateIn("/proc/self/no-such-file"), '?');
}

TEST(Proc, StatOfSelf) {
  auto text = ReadFileToString("/proc/self/stat");
  ASSERT_TRUE(text);
  auto st = ParseStat(*text);
  ASSERT_TRUE(st) << st.error().Message();
  EXPECT_EQ(st->pid, getpid());
  EXPECT_EQ(st->ppid, getppid());
  EXPECT_EQ(st->session, getsid(0));
  EXPECT_GT(st->start_code, 0u);
  EXPECT_GT(st->start_brk, 0u);
}

TEST(Proc, StatWithParenthesesInComm) {
  std::string line = "42 (a) (b) S 1 42 42 0 -1 4194560";
  for (int i = 0; i < 42; i++) line += " 7";
  auto st = ParseStat(line);
  ASSERT_TRUE(st) << st.error().Message();
  EXPECT_EQ(st->comm, "a) (b");
  EXPECT_EQ(st->ppid, 1);
  EXPECT_FALSE(ParseStat("42 (a S 1"));
  EXPECT_FALSE(ParseStat("42 (a) S 1 2 3"));
}

TEST(Proc, StatusOfSelf) {
  auto text = ReadFileToString("/proc/self/status");
  ASSERT_TRUE(text);
  auto st = ParseStatus(*text);
  ASSERT_TRUE(st) << st.error().Message();
  EXPECT_EQ(st->uid[0], getuid());
  EXPECT_EQ(st->gid[1], getegid());
  EXPECT_EQ(st->tracer_pid, 0);
  mode_t old = umask(027);
  auto again = ParseStatus(*ReadFileToString("/proc/self/status"));
  umask(old);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->umask, 027u);
  EXPECT_FALSE(ParseStatus("Name: x\nUid: 0 0\nGid: 0 0 0 0\n"));
  EXPECT_FALSE(ParseStatus("Name: x\n"));
}

TEST(Proc, LimitsOfSelfMatchGetrlimit) {
  auto text = ReadFileToString("/proc/self/limits");
  ASSERT_TRUE(text);
  auto limits = ParseLimits(*text);
  ASSERT_TRUE(limits) << limits.error().Message();
  ASSERT_EQ(limits->size(), 16u);
  rlimit nofile;
  getrlimit(RLIMIT_NOFILE, &nofile);
  EXPECT_EQ((*limits)[RLIMIT_NOFILE].cur, nofile.rlim_cur);
  EXPECT_EQ((*limits)[RLIMIT_NOFILE].max, nofile.rlim_max);
  EXPECT_FALSE(ParseLimits("Limit Soft Hard Units\nMax cpu time unlimited\n"));
}

TEST(Proc, Fdinfo) {
  auto fi = ParseFdinfo("pos:\t42\nflags:\t02100002\nmnt_id:\t21\nino:\t5\n");
  ASSERT_TRUE(fi);
  EXPECT_EQ(fi->pos, 42u);
  EXPECT_EQ(fi->flags, 02100002u);
  EXPECT_EQ(fi->mnt_id, 21);
  EXPECT_FALSE(ParseFdinfo("pos: x\nflags: 0\n"));
  EXPECT_FALSE(ParseFdinfo("flags: 0\n"));
}

}  // namespace
}  // namespace lz

namespace lz {
namespace {

TEST(Proc, EpollFdinfoOfRealEpoll) {
  int ep = epoll_create1(0);
  int ev = eventfd(0, 0);
  epoll_event e{EPOLLIN | EPOLLET, {}};
  e.data.u64 = 0xabcdef;
  ASSERT_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e), 0);
  auto text = ReadFileToString("/proc/self/fdinfo/" + std::to_string(ep));
  ASSERT_TRUE(text);
  auto entries = ParseEpollFdinfo(*text);
  ASSERT_TRUE(entries) << entries.error().Message();
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].tfd, ev);
  // The kernel adds EPOLLERR | EPOLLHUP to every watch.
  EXPECT_EQ((*entries)[0].events & (EPOLLIN | EPOLLET), static_cast<uint32_t>(EPOLLIN | EPOLLET));
  EXPECT_EQ((*entries)[0].data, 0xabcdefu);
  close(ev);
  close(ep);
  EXPECT_FALSE(ParseEpollFdinfo("tfd: x events: 1 data: 2\n"));
  EXPECT_FALSE(ParseEpollFdinfo("tfd: 3 events:\n"));
}

TEST(Proc, FdinfoKeysAndTimespec) {
  auto keys = ParseFdinfoKeys("clockid: 1\nticks: 3\nit_value: (2, 500)\n");
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[1].first, "ticks");
  EXPECT_EQ(keys[1].second, "3");
  uint64_t ns;
  ASSERT_TRUE(ParseTimespecPair(keys[2].second, &ns));
  EXPECT_EQ(ns, 2000000500u);
  EXPECT_FALSE(ParseTimespecPair("(2 500)", &ns));
  EXPECT_FALSE(ParseTimespecPair("2, 500", &ns));
}

TEST(Proc, InotifyFdinfoOfThisProcess) {
  char dir_path[] = "/tmp/lz-proc-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir_path), nullptr);
  int in = inotify_init1(IN_CLOEXEC);
  ASSERT_GE(in, 0);
  int wd1 = inotify_add_watch(in, dir_path, IN_CREATE | IN_DELETE);
  int wd2 = inotify_add_watch(in, "/", IN_ATTRIB | IN_EXCL_UNLINK | IN_ONESHOT);
  ASSERT_GT(wd2, wd1);
  auto text = ReadFileToString("/proc/self/fdinfo/" + std::to_string(in));
  close(in);
  struct stat d, root;
  ASSERT_EQ(stat(dir_path, &d), 0);
  ASSERT_TRUE(text);
  auto watches = ParseInotifyFdinfo(*text);
  ASSERT_TRUE(watches) << watches.error().Message();
  ASSERT_EQ(watches->size(), 2u);
  ASSERT_EQ(stat("/", &root), 0);
  auto mounts = ParseMountinfo(*ReadFileToString("/proc/self/mountinfo"));
  ASSERT_TRUE(mounts);
  for (const InotifyEntry& e : *watches) {
    const struct stat& st = e.wd == wd1 ? d : root;
    EXPECT_EQ(e.ino, st.st_ino);
    // The filesystem's device, which a mount lists (stat's may differ: btrfs subvolumes).
    EXPECT_TRUE(std::any_of(mounts->begin(), mounts->end(), [&](const MountEntry& m) {
      return makedev(m.dev_major, m.dev_minor) == e.fs_dev;
    }));
    EXPECT_EQ(e.mask, e.wd == wd1 ? uint32_t{IN_CREATE | IN_DELETE}
                                  : uint32_t{IN_ATTRIB | IN_EXCL_UNLINK | IN_ONESHOT});
    // The handle leads back to the file.
    auto opened = OpenByHandle("/proc/self", e.fs_dev, e.handle_type, e.handle);
    ASSERT_TRUE(opened) << opened.error().Message();
    struct stat got;
    ASSERT_EQ(fstat(opened->get(), &got), 0);
    EXPECT_EQ(got.st_ino, st.st_ino);
    EXPECT_EQ(got.st_dev, st.st_dev);
  }
  rmdir(dir_path);
}

TEST(Proc, FdLocksOfThisProcess) {
  char path[] = "/tmp/lz-lock-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  struct flock range = {};
  range.l_type = F_WRLCK;
  range.l_whence = SEEK_SET;
  range.l_start = 10;
  range.l_len = 5;
  ASSERT_EQ(fcntl(fd, F_SETLK, &range), 0);
  auto text = ReadFileToString("/proc/self/fdinfo/" + std::to_string(fd));
  close(fd);
  ASSERT_TRUE(text);
  auto locks = ParseFdLocks(*text);
  ASSERT_TRUE(locks) << locks.error().Message();
  ASSERT_EQ(locks->size(), 1u) << *text;
  EXPECT_EQ((*locks)[0].kind, "POSIX");
  EXPECT_EQ((*locks)[0].mode, "ADVISORY");
  EXPECT_EQ((*locks)[0].access, "WRITE");
  EXPECT_EQ((*locks)[0].start, 10u);
  EXPECT_EQ((*locks)[0].end, 14u);
}

TEST(Proc, FdLocksMalformedAndWaiters) {
  auto l = ParseFdLocks(
      "pos:\t0\nlock:\t1: FLOCK  ADVISORY  READ 15539 fe:00:10953070 0 EOF\n"
      "lock:\t1: -> FLOCK  ADVISORY  WRITE 15600 fe:00:10953070 0 EOF\n");
  ASSERT_TRUE(l) << l.error().Message();
  ASSERT_EQ(l->size(), 1u);  // the waiter holds nothing
  EXPECT_EQ((*l)[0].access, "READ");
  EXPECT_EQ((*l)[0].end, UINT64_MAX);
  EXPECT_FALSE(ParseFdLocks("lock:\t1: POSIX  ADVISORY  WRITE 1 fe:00:1 20 10\n"));  // end < start
  EXPECT_FALSE(ParseFdLocks("lock:\t1: POSIX  ADVISORY  WRITE 1 fe:00:1 x EOF\n"));
  EXPECT_FALSE(ParseFdLocks("lock:\t1: POSIX\n"));
}

TEST(Proc, SysvShmOfARealSegment) {
  int id = shmget(IPC_PRIVATE, 56, IPC_CREAT | 0640);
  ASSERT_GE(id, 0) << strerror(errno);
  void* at = shmat(id, nullptr, 0);
  auto text = ReadFileToString("/proc/sysvipc/shm");
  if (at != reinterpret_cast<void*>(-1)) {
    shmdt(at);
  }
  shmctl(id, IPC_RMID, nullptr);
  ASSERT_TRUE(text);
  auto segs = ParseSysvShm(*text);
  ASSERT_TRUE(segs) << segs.error().Message();
  auto it =
      std::find_if(segs->begin(), segs->end(), [id](const SysvShm& s) { return s.shmid == id; });
  ASSERT_NE(it, segs->end()) << *text;
  EXPECT_EQ(it->key, 0);  // IPC_PRIVATE
  EXPECT_EQ(it->size, 56u);
  EXPECT_EQ(it->perms, 0640u);
  EXPECT_EQ(it->nattch, 1u);
  EXPECT_EQ(it->uid, getuid());
  EXPECT_EQ(it->cuid, geteuid());
}

TEST(Proc, SysvShmMalformed) {
  const char* head =
      "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  "
      "cgid      atime      dtime      ctime                   rss                  swap\n";
  auto ok = ParseSysvShm(std::string(head) +
                         "  10952812          4   600                    56 20212 20240      6   "
                         "101   104   102   105 1795982077 1795982077 1795982073 4096 0\n");
  ASSERT_TRUE(ok) << ok.error().Message();
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_EQ((*ok)[0].key, 10952812);
  EXPECT_EQ((*ok)[0].perms, 0600u);
  EXPECT_EQ((*ok)[0].nattch, 6u);
  EXPECT_EQ((*ok)[0].uid, 101u);
  EXPECT_EQ((*ok)[0].cuid, 102u);
  EXPECT_EQ((*ok)[0].cgid, 105u);
  EXPECT_TRUE(ParseSysvShm(head));
  EXPECT_FALSE(ParseSysvShm(std::string(head) + "1 2 999 56 1 1 1 0 0 0 0\n"));  // perms not octal
  EXPECT_FALSE(ParseSysvShm(std::string(head) + "1 -2 600 56 1 1 1 0 0 0 0\n"));
  EXPECT_FALSE(ParseSysvShm(std::string(head) + "1 2 600 56\n"));
}

TEST(Proc, InotifyFdinfoMalformed) {
  const char* good =
      "inotify wd:3 ino:2dd sdev:fe00000 mask:4000004 ignored_mask:0 fhandle-bytes:8 "
      "fhandle-type:1 f_handle:dd02000000000000\n";
  auto w = ParseInotifyFdinfo(std::string("pos:\t0\nflags:\t00\n") + good);
  ASSERT_TRUE(w) << w.error().Message();
  ASSERT_EQ(w->size(), 1u);
  EXPECT_EQ((*w)[0].wd, 3);
  EXPECT_EQ((*w)[0].ino, 0x2ddu);
  EXPECT_EQ((*w)[0].fs_dev, makedev(254, 0));
  EXPECT_EQ((*w)[0].handle, std::string("\xdd\x02\0\0\0\0\0\0", 8));
  EXPECT_FALSE(ParseInotifyFdinfo("inotify wd:3 ino:2dd sdev:fe00000\n"));  // no mask
  EXPECT_FALSE(ParseInotifyFdinfo(
      "inotify wd:0 ino:2dd sdev:fe00000 mask:4 fhandle-bytes:0 fhandle-type:1\n"));
  EXPECT_FALSE(ParseInotifyFdinfo(
      "inotify wd:1 ino:2dd sdev:fe00000 mask:4 fhandle-bytes:8 fhandle-type:1 f_handle:dd02\n"));
  EXPECT_FALSE(ParseInotifyFdinfo(
      "inotify wd:1 ino:zz sdev:fe00000 mask:4 fhandle-bytes:0 fhandle-type:1\n"));
  EXPECT_FALSE(ParseInotifyFdinfo(
      "inotify wd:1 ino:1 sdev:fe00000 mask:4 fhandle-bytes:1 fhandle-type:1 f_handle:d\n"));
}

TEST(Proc, MountinfoOfThisProcess) {
  auto text = ReadFileToString("/proc/self/mountinfo");
  ASSERT_TRUE(text);
  auto mounts = ParseMountinfo(*text);
  ASSERT_TRUE(mounts) << mounts.error().Message();
  bool found = false;
  for (const MountEntry& m : *mounts) {
    found |= m.mount_point == "/" && m.dev_major + m.dev_minor > 0;
  }
  EXPECT_TRUE(found) << "no mount of / with a device";
  auto odd = ParseMountinfo("36 35 98:0 /mnt1 /mnt/a\\040b\\134 rw,noatime - ext3 /dev/x rw\n");
  ASSERT_TRUE(odd) << odd.error().Message();
  EXPECT_EQ((*odd)[0].mount_point, "/mnt/a b\\");
  EXPECT_EQ((*odd)[0].root, "/mnt1");
  EXPECT_EQ((*odd)[0].dev_major, 98u);
  EXPECT_FALSE(ParseMountinfo("36 35 98-0 / /\n"));
  EXPECT_FALSE(ParseMountinfo("36 35\n"));
}

TEST(Proc, PosixTimersOfThisProcess) {
  timer_t a, b;
  sigevent se{};
  se.sigev_notify = SIGEV_SIGNAL;
  se.sigev_signo = SIGRTMIN + 2;
  se.sigev_value.sival_ptr = reinterpret_cast<void*>(0x1234);
  ASSERT_EQ(timer_create(CLOCK_MONOTONIC, &se, &a), 0);
  se.sigev_notify = SIGEV_THREAD_ID;
  se._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
  ASSERT_EQ(timer_create(CLOCK_BOOTTIME, &se, &b), 0);
  auto text = ReadFileToString("/proc/self/timers");
  ASSERT_TRUE(text);
  auto timers = ParsePosixTimers(*text);
  ASSERT_TRUE(timers) << timers.error().Message();
  int seen = 0;
  for (const ProcPosixTimer& t : *timers) {
    if (t.id == static_cast<int>(reinterpret_cast<intptr_t>(a))) {
      EXPECT_EQ(t.notify, SIGEV_SIGNAL);
      EXPECT_EQ(t.clockid, CLOCK_MONOTONIC);
      seen++;
    }
    if (t.id == static_cast<int>(reinterpret_cast<intptr_t>(b))) {
      EXPECT_EQ(t.notify, SIGEV_THREAD_ID | SIGEV_SIGNAL);
      EXPECT_EQ(t.notify_pid, static_cast<pid_t>(syscall(SYS_gettid)));
      EXPECT_EQ(t.clockid, CLOCK_BOOTTIME);
      seen++;
    }
    EXPECT_EQ(t.signo, SIGRTMIN + 2);
    EXPECT_EQ(t.sigval, 0x1234u);
  }
  EXPECT_EQ(seen, 2);
  timer_delete(a);
  timer_delete(b);
  EXPECT_FALSE(ParsePosixTimers("signal: 1/0\n"));  // no ID line first
  EXPECT_FALSE(ParsePosixTimers("ID: 1\nnotify: loud/pid.3\n"));
  EXPECT_FALSE(ParsePosixTimers("ID: 1\nsignal: 99/0\n"));
}

}  // namespace
}  // namespace lz
