// A workload holding one of most kinds of state lazarus restores, ZDTM-style: it sets it all
// up, writes READY_FILE, waits for SIGUSR1 (sent after restore), checks everything from inside
// and writes "PASS" or "FAIL: what" to RESULT_FILE.
//
// usage: state READY_FILE RESULT_FILE WORKDIR [nobody]
// With "nobody" it drops to uid/gid 65534 with supplementary groups before it is dumped.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "netlink_ask.h"

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

enum {
  kFile = 10,
  kPipeR,
  kPipeW,
  kEvent,
  kTimer,
  kSigfd,
  kEpoll,
  kListen,
  kUdp,
  kDeleted,
  kPairA,
  kPairB,
  kUnixListen,
  kFifoR,
  kFifoW,
  kInotify,
  kFlocked,
  kPosixLocked,
  kOfdLocked,
  kNetlink
};

static volatile sig_atomic_t got_usr1;
static volatile int handler_info_ok;
static char altstack[65536];
static char fail[4096];

static void Fail(const char* what) {
  size_t n = strlen(fail);
  snprintf(fail + n, sizeof fail - n, "%s%s", n ? "; " : "", what);
}

static void OnUsr1(int sig, siginfo_t* si, void* uc) {
  (void)uc;
  handler_info_ok = sig == SIGUSR1 && si->si_signo == SIGUSR1;
  got_usr1 = 1;
}

// The ticking POSIX timer: counts expiries that carry the value it was created with.
static volatile int ticks;
static void OnTick(int sig, siginfo_t* si, void* uc) {
  (void)sig;
  (void)uc;
  if (si->si_code == SI_TIMER && si->si_value.sival_int == 777) ticks++;
}

// A thread asleep in poll() with no timeout through the dump and the restore: the kernel left
// it to a restart block, which a restored task does not have; it must wake for its pipe, not
// with EINTR.
static int poll_wake[2];
static int poll_result, poll_errno;
static volatile pid_t poller_tid;
static void* Poller(void* arg) {
  (void)arg;
  poller_tid = gettid();
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  struct pollfd pfd = {.fd = poll_wake[0], .events = POLLIN};
  poll_result = poll(&pfd, 1, -1);
  poll_errno = errno;
  return NULL;
}

static void Place(int fd, int at) {
  if (fd != at) {
    dup2(fd, at);
    close(fd);
  }
}

static void WriteFile(const char* path, const char* text) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
  if (fd < 0 || write(fd, text, strlen(text)) < 0) _exit(5);
  close(fd);
  rename(tmp, path);
}

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  const char* workdir = argv[3];
  int nobody = argc > 4 && strcmp(argv[4], "nobody") == 0;
  char path[4096];

  if (chdir(workdir) != 0) return 3;
  umask(027);

  // Regular file with a position; a deleted file with content.
  snprintf(path, sizeof path, "%s/data.txt", workdir);
  int f = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (write(f, "0123456789abcdef", 16) != 16) return 3;
  lseek(f, 7, SEEK_SET);
  Place(f, kFile);
  snprintf(path, sizeof path, "%s/gone.txt", workdir);
  int d = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (write(d, "ghost content", 13) != 13) return 3;
  unlink(path);
  lseek(d, 6, SEEK_SET);
  Place(d, kDeleted);

  // A pipe holding bytes nobody read yet.
  int p[2];
  if (pipe(p) != 0 || write(p[1], "in the pipe", 11) != 11) return 3;
  Place(p[0], kPipeR);
  Place(p[1], kPipeW);
  fcntl(kPipeR, F_SETFL, O_NONBLOCK);

  Place(eventfd(42, 0), kEvent);
  int t = timerfd_create(CLOCK_MONOTONIC, 0);
  struct itimerspec its = {{3600, 0}, {3600, 0}};
  timerfd_settime(t, 0, &its, NULL);
  Place(t, kTimer);
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  Place(signalfd(-1, &winch, 0), kSigfd);
  Place(epoll_create1(0), kEpoll);
  struct epoll_event ev = {EPOLLIN, {.u64 = 0x1111}};
  epoll_ctl(kEpoll, EPOLL_CTL_ADD, kEvent, &ev);
  ev.data.u64 = 0x2222;
  epoll_ctl(kEpoll, EPOLL_CTL_ADD, kPipeR, &ev);

  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(ls, (struct sockaddr*)&a, sizeof a) != 0 || listen(ls, 17) != 0) return 3;
  socklen_t alen = sizeof a;
  getsockname(ls, (struct sockaddr*)&a, &alen);
  int port = ntohs(a.sin_port);
  Place(ls, kListen);
  int us = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in ua = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bind(us, (struct sockaddr*)&ua, sizeof ua);
  Place(us, kUdp);

  // A named pipe holding bytes, open at both ends.
  snprintf(path, sizeof path, "%s/fifo", workdir);
  if (mkfifo(path, 0666) != 0) return 3;
  Place(open(path, O_RDONLY | O_NONBLOCK), kFifoR);
  Place(open(path, O_WRONLY), kFifoW);
  if (write(kFifoW, "fifo bytes", 10) != 10) return 3;

  // A unix socketpair with bytes queued both ways (B has peeked at two of its own with a peek
  // offset, which the dump's peek must neither start from nor move), and a listening unix socket.
  int sv[2];
  int peek_from = 0;
  char peeked[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || write(sv[0], "to B", 4) != 4 ||
      write(sv[1], "to A!", 5) != 5 ||
      setsockopt(sv[1], SOL_SOCKET, SO_PEEK_OFF, &peek_from, sizeof peek_from) != 0 ||
      recv(sv[1], peeked, 2, MSG_PEEK) != 2) {
    return 3;
  }
  Place(sv[0], kPairA);
  Place(sv[1], kPairB);
  int ul = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  snprintf(un.sun_path, sizeof un.sun_path, "%s/sock", workdir);
  if (bind(ul, (struct sockaddr*)&un, sizeof un) != 0 || listen(ul, 5) != 0) return 3;
  chmod(un.sun_path, 0666);  // so that it can connect to itself after dropping to nobody
  Place(ul, kUnixListen);

  // inotify: watches on a directory and two files, the middle one removed, so that the last
  // keeps its number with a gap before it. Nothing but this workload touches watched.d.
  char wdir[4096], wfile[4096], wgone[4096];
  snprintf(wdir, sizeof wdir, "%s/watched.d", workdir);
  snprintf(wfile, sizeof wfile, "%s/watched.d/file", workdir);
  snprintf(wgone, sizeof wgone, "%s/watched.d/unwatched", workdir);
  if (mkdir(wdir, 0777) != 0) return 3;
  close(open(wfile, O_WRONLY | O_CREAT, 0666));
  close(open(wgone, O_WRONLY | O_CREAT, 0666));
  // Open to the workload once it runs as nobody.
  if (chmod(wdir, 0777) != 0 || chmod(wfile, 0666) != 0 || chmod(wgone, 0666) != 0) return 3;
  int in = inotify_init1(IN_NONBLOCK);
  int wd_dir = inotify_add_watch(in, wdir, IN_CREATE);
  int wd_gone = inotify_add_watch(in, wgone, IN_ATTRIB);
  int wd_file = inotify_add_watch(in, wfile, IN_ATTRIB | IN_EXCL_UNLINK);
  if (wd_dir < 0 || wd_gone < 0 || wd_file < 0 || inotify_rm_watch(in, wd_gone) != 0) return 3;
  char ibuf[4096] __attribute__((aligned(8)));
  while (read(in, ibuf, sizeof ibuf) > 0) {  // the removed watch's IN_IGNORED
  }
  Place(in, kInotify);

  // File locks (the dump needs --file-locks): flock on one file, a POSIX write lock on bytes
  // 10-19 of another, an OFD read lock on a third. Open to nobody, whose checks open them anew.
  const char* lock_names[] = {"flocked", "posix-locked", "ofd-locked"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/%s", workdir, lock_names[i]);
    int lf = open(path, O_RDWR | O_CREAT, 0666);
    if (lf < 0 || fchmod(lf, 0666) != 0) return 3;
    Place(lf, kFlocked + i);
  }
  struct flock range = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10};
  struct flock whole = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
  if (flock(kFlocked, LOCK_EX) != 0 || fcntl(kPosixLocked, F_SETLK, &range) != 0 ||
      fcntl(kOfdLocked, F_OFD_SETLK, &whole) != 0) {
    return 3;
  }

  // A route netlink socket bound to its address, in the link group and group 33 (past the 32
  // that bind's bitmask holds), with NETLINK_NO_ENOBUFS on.
  int nl = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
  struct sockaddr_nl nla = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
  int group33 = 33;
  if (nl < 0 || bind(nl, (struct sockaddr*)&nla, sizeof nla) != 0 ||
      setsockopt(nl, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group33, sizeof group33) != 0 ||
      setsockopt(nl, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one) != 0) {
    return 3;
  }
  socklen_t nlen = sizeof nla;
  getsockname(nl, (struct sockaddr*)&nla, &nlen);
  uint32_t portid = nla.nl_pid;
  Place(nl, kNetlink);

  // Signals: a handler, an alternate stack, a blocked signal queued with a value, a timer.
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = OnUsr1;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaddset(&sa.sa_mask, SIGTERM);
  sigaction(SIGUSR1, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = SS_AUTODISARM};
  sigaltstack(&ss, NULL);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  sigaddset(&block, SIGWINCH);
  sigprocmask(SIG_BLOCK, &block, NULL);
  union sigval v = {.sival_int = 4242};
  sigqueue(getpid(), SIGUSR2, v);
  struct itimerval it = {{3000, 0}, {3000, 0}};
  setitimer(ITIMER_REAL, &it, NULL);
  signal(SIGALRM, SIG_IGN);

  // POSIX timers: one ticking every 20 ms with a value, one silent for an hour, one disarmed
  // that would signal the main thread.
  struct sigaction tick_sa;
  memset(&tick_sa, 0, sizeof tick_sa);
  tick_sa.sa_sigaction = OnTick;
  tick_sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGRTMIN + 3, &tick_sa, NULL);
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_SIGNAL;
  sev.sigev_signo = SIGRTMIN + 3;
  sev.sigev_value.sival_int = 777;
  timer_t tick, silent, disarmed;
  struct itimerspec every20ms = {{0, 20000000}, {0, 20000000}}, hour = {{0, 0}, {3600, 0}};
  if (timer_create(CLOCK_MONOTONIC, &sev, &tick) || timer_settime(tick, 0, &every20ms, NULL))
    return 3;
  sev.sigev_notify = SIGEV_NONE;
  if (timer_create(CLOCK_REALTIME, &sev, &silent) || timer_settime(silent, 0, &hour, NULL))
    return 3;
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev._sigev_un._tid = getpid();
  if (timer_create(CLOCK_BOOTTIME, &sev, &disarmed)) return 3;

  // Limits below what the restore runs with: a soft core size, a lowered hard stack limit.
  struct rlimit core_lim = {4096, RLIM_INFINITY}, stack_lim = {8 << 20, 64 << 20};
  if (setrlimit(RLIMIT_CORE, &core_lim) != 0 || setrlimit(RLIMIT_STACK, &stack_lim) != 0) return 3;

  // Memory: a private file mapping changed in place, a heap buffer, a moved brk.
  char* heap = malloc(1 << 20);
  memset(heap, 0x5a, 1 << 20);
  char* brk0 = sbrk(0);
  if (sbrk(8192) == (void*)-1) return 3;
  memcpy(brk0, "brk bytes", 10);
  snprintf(path, sizeof path, "%s/data.txt", workdir);
  int mf = open(path, O_RDONLY);
  char* fm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, mf, 0);
  close(mf);
  memcpy(fm, "COW!", 4);

  if (nobody) {
    gid_t groups[] = {65534, 100};
    if (setgroups(2, groups) != 0 || setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0) {
      return 4;
    }
    prctl(PR_SET_DUMPABLE, 1);  // so that root's SIGUSR1 and /proc access keep working
  }

  // After the credentials: setresuid signals every thread, which would end a poll with EINTR.
  pthread_t poller;
  if (pipe(poll_wake) != 0 || pthread_create(&poller, NULL, Poller, NULL) != 0) return 3;
  for (int i = 0;; i++) {  // until it is asleep in poll: /proc shows the syscall's number
    char at[64], line[64] = {0};
    snprintf(at, sizeof at, "/proc/self/task/%d/syscall", (int)poller_tid);
    int sf = poller_tid ? open(at, O_RDONLY) : -1;
    ssize_t got = sf >= 0 ? read(sf, line, sizeof line - 1) : -1;
    if (sf >= 0) close(sf);
    char want[8];
    snprintf(want, sizeof want, "%d ", SYS_poll);
    if (got > 0 && strncmp(line, want, strlen(want)) == 0) break;
    if (i == 2000) return 3;
    usleep(1000);
  }

  char msg[64];
  snprintf(msg, sizeof msg, "%d %d\n", getpid(), port);
  WriteFile(argv[1], msg);
  sigset_t wait_mask;
  sigprocmask(SIG_BLOCK, NULL, &wait_mask);
  while (!got_usr1) sigsuspend(&wait_mask);

  // ---- checks after restore ----
  if (!handler_info_ok) Fail("SIGUSR1 handler did not get its siginfo");
  int ticks_at_go = ticks;
  struct timespec nap = {0, 200000000};
  while (nanosleep(&nap, &nap) != 0) {
  }
  if (ticks - ticks_at_go < 3) Fail("POSIX timer does not tick with its value");
  struct itimerspec off = {{0, 0}, {0, 0}}, left;
  timer_settime(tick, 0, &off, NULL);  // quiet for the checks below
  if (timer_gettime(silent, &left) != 0 || left.it_value.tv_sec < 3000 ||
      left.it_value.tv_sec > 3600)
    Fail("silent POSIX timer");
  if (timer_gettime(disarmed, &left) != 0 || left.it_value.tv_sec != 0)
    Fail("disarmed POSIX timer");
  char buf[64] = {0};
  if (pread(kFile, buf, 4, 0) != 4 || memcmp(buf, "0123", 4) != 0) Fail("data file content");
  if (lseek(kFile, 0, SEEK_CUR) != 7) Fail("data file position");
  memset(buf, 0, sizeof buf);
  if (read(kDeleted, buf, 7) != 7 || strcmp(buf, "content") != 0) Fail("deleted file");
  memset(buf, 0, sizeof buf);
  struct epoll_event got[4];
  int n = epoll_wait(kEpoll, got, 4, 0);
  int seen = 0;
  for (int i = 0; i < n; i++)
    seen |= got[i].data.u64 == 0x1111 ? 1 : got[i].data.u64 == 0x2222 ? 2 : 4;
  if (seen != 3) Fail("epoll watch list");
  if (read(kPipeR, buf, sizeof buf) != 11 || strcmp(buf, "in the pipe") != 0) Fail("pipe bytes");
  if (!(fcntl(kPipeR, F_GETFL) & O_NONBLOCK)) Fail("pipe O_NONBLOCK");
  uint64_t cnt = 0;
  if (read(kEvent, &cnt, 8) != 8 || cnt != 42) Fail("eventfd count");
  struct itimerspec cur;
  timerfd_gettime(kTimer, &cur);
  if (cur.it_interval.tv_sec != 3600 || cur.it_value.tv_sec < 3000) Fail("timerfd");
  struct itimerval rit;
  getitimer(ITIMER_REAL, &rit);
  if (rit.it_interval.tv_sec != 3000 || rit.it_value.tv_sec < 2900) Fail("itimer");
  sigset_t pend;
  sigpending(&pend);
  siginfo_t si;
  struct timespec zero = {0, 0};
  if (!sigismember(&pend, SIGUSR2) || sigtimedwait(&block, &si, &zero) != SIGUSR2 ||
      si.si_value.sival_int != 4242) {
    Fail("queued SIGUSR2 with its value");
  }
  stack_t cs;
  sigaltstack(NULL, &cs);
  if (cs.ss_sp != altstack || !(cs.ss_flags & SS_AUTODISARM)) Fail("sigaltstack");
  struct sigaction cur_sa;
  sigaction(SIGUSR1, NULL, &cur_sa);
  if (!(cur_sa.sa_flags & SA_SIGINFO) || !sigismember(&cur_sa.sa_mask, SIGTERM)) Fail("sigaction");
  struct rlimit lim;
  if (getrlimit(RLIMIT_CORE, &lim) != 0 || lim.rlim_cur != 4096) Fail("RLIMIT_CORE");
  if (getrlimit(RLIMIT_STACK, &lim) != 0 || lim.rlim_cur != (8 << 20) || lim.rlim_max != (64 << 20))
    Fail("RLIMIT_STACK");
  mode_t um = umask(0);
  if (um != 027) Fail("umask");
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, workdir) != 0) Fail("cwd");
  if (heap[12345] != 0x5a || memcmp(brk0, "brk bytes", 10) != 0 || memcmp(fm, "COW!4", 5) != 0)
    Fail("memory");
  if (sbrk(4096) == (void*)-1) Fail("brk does not grow");
  int c = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in to = {
      .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(c, (struct sockaddr*)&to, sizeof to) != 0) Fail("listening socket refuses");
  int acc = accept(kListen, NULL, NULL);
  if (acc < 0) Fail("accept");
  if (nobody) {
    gid_t g[4];
    int ng = getgroups(4, g);
    // The kernel keeps supplementary groups sorted.
    if (getuid() != 65534 || geteuid() != 65534 || getgid() != 65534 || ng != 2 || g[0] != 100 ||
        g[1] != 65534)
      Fail("credentials");
  } else if (getuid() != 0) {
    Fail("uid");
  }
  memset(buf, 0, sizeof buf);
  if (read(kFifoR, buf, sizeof buf) != 10 || memcmp(buf, "fifo bytes", 10) != 0) Fail("fifo bytes");
  memset(buf, 0, sizeof buf);
  if (read(kPairB, buf, 4) != 4 || memcmp(buf, "to B", 4) != 0) Fail("socketpair bytes to B");
  if (read(kPairA, buf, 5) != 5 || memcmp(buf, "to A!", 5) != 0) Fail("socketpair bytes to A");
  if (write(kPairA, "x", 1) != 1 || read(kPairB, buf, 1) != 1 || buf[0] != 'x')
    Fail("socketpair still connected");
  int uc = socket(AF_UNIX, SOCK_STREAM, 0);
  if (connect(uc, (struct sockaddr*)&un, sizeof un) != 0) {
    Fail("unix listener refuses");
  } else if (accept(kUnixListen, NULL, NULL) < 0) {
    Fail("unix accept");
  }
  // Netlink: the same address, groups and option, and the kernel answers a request.
  struct sockaddr_nl now = {0};
  nlen = sizeof now;
  uint32_t members[4] = {0};
  socklen_t mlen = sizeof members;
  int noenobufs = 0;
  socklen_t olen = sizeof noenobufs;
  if (getsockname(kNetlink, (struct sockaddr*)&now, &nlen) != 0 || now.nl_pid != portid)
    Fail("netlink address");
  if (getsockopt(kNetlink, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, members, &mlen) != 0 ||
      members[0] != 1u || members[1] != 1u)  // groups 1 and 33
    Fail("netlink groups");
  if (getsockopt(kNetlink, SOL_NETLINK, NETLINK_NO_ENOBUFS, &noenobufs, &olen) != 0 || !noenobufs)
    Fail("netlink option");
  char nlbuf[16384] __attribute__((aligned(8)));
  ssize_t nr = AskLinks(kNetlink, 7) == 0 ? recv(kNetlink, nlbuf, sizeof nlbuf, 0) : -1;
  // A link notification may come first; the answer carries the request's sequence number.
  while (nr > 0 && ((struct nlmsghdr*)nlbuf)->nlmsg_seq != 7)
    nr = recv(kNetlink, nlbuf, sizeof nlbuf, 0);
  if (nr <= 0 || ((struct nlmsghdr*)nlbuf)->nlmsg_type != RTM_NEWLINK) Fail("netlink request");

  // File locks: another process finds each held, and the bytes beside the POSIX lock free.
  pid_t prober = fork();
  if (prober == 0) {
    int bad = 0, fds[3];
    for (int i = 0; i < 3; i++) {
      snprintf(path, sizeof path, "%s/%s", workdir, lock_names[i]);
      fds[i] = open(path, O_RDWR);
      if (fds[i] < 0) _exit(16);
    }
    struct flock want = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 15, .l_len = 1};
    struct flock beside = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 30, .l_len = 5};
    struct flock all = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (flock(fds[0], LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK) bad |= 1;
    if (fcntl(fds[1], F_SETLK, &want) == 0 || (errno != EAGAIN && errno != EACCES)) bad |= 2;
    struct flock who = want;
    if (fcntl(fds[1], F_GETLK, &who) != 0 || who.l_pid != getppid()) bad |= 2;
    if (fcntl(fds[1], F_SETLK, &beside) != 0) bad |= 4;
    if (fcntl(fds[2], F_OFD_SETLK, &all) == 0 || errno != EAGAIN) bad |= 8;
    struct flock ofd = all;  // an OFD lock reports no pid; a POSIX one its holder's
    if (fcntl(fds[2], F_OFD_GETLK, &ofd) != 0 || ofd.l_type != F_RDLCK || ofd.l_pid != -1) bad |= 8;
    _exit(bad);
  }
  int prober_status = 0;
  if (prober < 0 || waitpid(prober, &prober_status, 0) != prober) {
    Fail("lock prober");
  } else if (!WIFEXITED(prober_status) || WEXITSTATUS(prober_status) != 0) {
    int bad = WEXITSTATUS(prober_status);
    if (bad & 1) Fail("flock not held");
    if (bad & 2) Fail("POSIX lock not held by this process");
    if (bad & 4) Fail("POSIX lock wider than dumped");
    if (bad & 8) Fail("OFD lock not held");
  }

  // inotify: nothing queued, then each change reported under the watch's own number.
  if (!(fcntl(kInotify, F_GETFL) & O_NONBLOCK)) Fail("inotify O_NONBLOCK");
  if (read(kInotify, ibuf, sizeof ibuf) >= 0) Fail("inotify events before any change");
  snprintf(path, sizeof path, "%s/watched.d/new", workdir);
  close(open(path, O_WRONLY | O_CREAT, 0666));
  utimes(wgone, NULL);  // its watch is gone: no event
  utimes(wfile, NULL);
  ssize_t got_ev = read(kInotify, ibuf, sizeof ibuf);
  struct inotify_event* e1 = (struct inotify_event*)ibuf;
  struct inotify_event* e2 = got_ev > 0 ? (struct inotify_event*)(ibuf + sizeof *e1 + e1->len) : 0;
  if (got_ev <= 0 || e1->wd != wd_dir || !(e1->mask & IN_CREATE) || strcmp(e1->name, "new") != 0)
    Fail("inotify directory watch");
  else if ((char*)e2 >= ibuf + got_ev || e2->wd != wd_file || !(e2->mask & IN_ATTRIB) ||
           (char*)e2 + sizeof *e2 + e2->len != ibuf + got_ev)
    Fail("inotify file watch");

  if (write(poll_wake[1], "x", 1) != 1 || pthread_join(poller, NULL) != 0 || poll_result != 1)
    Fail(poll_result < 0 && poll_errno == EINTR ? "poll interrupted by the restore" : "poll");

  char result[4200];
  snprintf(result, sizeof result, fail[0] ? "FAIL: %s\n" : "PASS\n", fail);
  WriteFile(argv[2], result);
  return fail[0] ? 1 : 0;
}
