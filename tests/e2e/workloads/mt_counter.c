// A multi-threaded workload in ZDTM's manner: it sets up state, signals that it is ready,
// runs until it gets SIGUSR1 (sent after restore), then checks its own state and writes
// "PASS" or "FAIL: reason" to the result file.
//
// usage: mt_counter READY_FILE RESULT_FILE MEGABYTES
//                   [pidfd|passed-fd|netlink-answer|named-sender]
// With "pidfd" it also holds a pidfd of itself, a descriptor lazarus does not dump; with
// "passed-fd", a socketpair with a descriptor in flight (SCM_RIGHTS), which it cannot queue
// again as it was; with "netlink-answer", a route netlink socket holding the kernel's answer
// to a request, unread; with "named-sender", a bound datagram socket holding a message from
// another bound socket (the answer address would be lost); with "seccomp", a seccomp filter
// in the main thread that kills the process on a one-page mmap (what a parasite would call
// first); with "main-exits", a child whose main thread called pthread_exit() while another
// thread runs on; with "vfork", its main thread waits in vfork() for 4 s once it is ready (a
// wait that ptrace cannot interrupt).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "netlink_ask.h"

#define NTHREADS 4

static atomic_ulong counters[NTHREADS];
static __thread uint64_t tls_marker;
static volatile sig_atomic_t got_usr1;
static uint8_t* region;
static size_t region_len;
static pid_t tids[NTHREADS];
static uint64_t tls_seen[NTHREADS];

static uint64_t Checksum(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  return h;
}

static void OnUsr1(int sig) {
  (void)sig;
  got_usr1 = 1;
}

static void* Worker(void* arg) {
  int idx = (int)(intptr_t)arg;
  // SIGUSR1 is for the main thread, sleeping in pause(): the kernel may hand a process-wide
  // signal to any thread that does not block it.
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, NULL);
  tids[idx] = (pid_t)syscall(SYS_gettid);
  tls_marker = 0xabc000 + idx;
  for (;;) {
    if (tls_marker != 0xabc000u + idx) {
      tls_seen[idx] = tls_marker;  // reported by main
    }
    atomic_fetch_add(&counters[idx], 1);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return NULL;
}

static void Fill(uint8_t* p, size_t n) {
  uint64_t x = 0x9e3779b97f4a7c15ull;
  static const char* words[] = {"lorem ", "ipsum ", "dolor ", "sit ", "amet, ", "consectetur "};
  size_t third = n / 3 & ~(size_t)4095;
  for (size_t i = 0; i < third; i += 8) {  // random
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    memcpy(p + i, &x, 8);
  }
  size_t i = third;
  while (i < 2 * third) {  // text-like
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const char* w = words[x % 6];
    size_t l = strlen(w);
    if (i + l > 2 * third) l = 2 * third - i;
    memcpy(p + i, w, l);
    i += l;
  }
  // the last third stays zero, but touched so that its pages exist
  for (i = 2 * third; i < n; i += 4096) p[i] = 0;
}

static void WriteFile(const char* path, const char* text) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  if (write(fd, text, strlen(text)) < 0) {
  }
  close(fd);
  rename(tmp, path);
}

// Sends fd 0 over a datagram socketpair and leaves it queued, and bytes with fd 1 on a stream
// one; both ends stay open.
static int PassFd(void) {
  int kinds[2] = {SOCK_DGRAM, SOCK_STREAM};
  for (int i = 0; i < 2; i++) {
    int sv[2];
    if (socketpair(AF_UNIX, kinds[i], 0, sv) != 0) return -1;
    char byte = 'x';
    struct iovec iov = {&byte, 1};
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof control);
    struct msghdr mh = {0};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof control;
    struct cmsghdr* c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int fd = i;
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(sv[0], &mh, 0) != 1) return -1;
  }
  return 0;
}

// Two datagram sockets with abstract names, one message from one to the other, left unread.
static int SendFromNamed(void) {
  struct sockaddr_un srv = {.sun_family = AF_UNIX}, cli = {.sun_family = AF_UNIX};
  int n = snprintf(srv.sun_path + 1, sizeof srv.sun_path - 1, "lz-mt-%d-srv", getpid()) + 1;
  snprintf(cli.sun_path + 1, sizeof cli.sun_path - 1, "lz-mt-%d-cli", getpid());
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  int s = socket(AF_UNIX, SOCK_DGRAM, 0), c = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (bind(s, (struct sockaddr*)&srv, len) != 0 || bind(c, (struct sockaddr*)&cli, len) != 0)
    return -1;
  return sendto(c, "hi", 2, 0, (struct sockaddr*)&srv, len) == 2 ? 0 : -1;
}

static int InstallSeccomp(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_mmap, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 4096, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof f / sizeof f[0], f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void* Spin(void* arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

// A child whose main thread has exited and whose other thread runs on; returns its pid once
// the kernel shows it so (a zombie leader).
static pid_t ForkMainExits(void) {
  pid_t c = fork();
  if (c == 0) {
    pthread_t t;
    pthread_create(&t, NULL, Spin, NULL);
    pthread_exit(NULL);
  }
  char path[64], stat[256];
  snprintf(path, sizeof path, "/proc/%d/stat", c);
  for (int i = 0; i < 400; i++) {
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, stat, sizeof stat - 1) : -1;
    if (fd >= 0) close(fd);
    if (n > 0) {
      stat[n] = 0;
      char* p = strrchr(stat, ')');
      if (p && p[2] == 'Z') return c;
    }
    usleep(5000);
  }
  return -1;
}

// In a function of its own: the child borrows this frame, not main's.
static __attribute__((noinline)) void VforkAndWait(void) {
  if (vfork() == 0) {
    struct timespec ts = {4, 0};
    nanosleep(&ts, NULL);
    _exit(0);
  }
}

// Asks the kernel for its links and leaves the answer queued.
static int AskNetlink(void) {
  int s = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
  return s >= 0 ? AskLinks(s, 1) : -1;
}

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    fprintf(stderr, "usage: %s READY_FILE RESULT_FILE MEGABYTES [MODE]\n", argv[0]);
    return 2;
  }
  if (argc == 5 && strcmp(argv[4], "passed-fd") == 0 && PassFd() != 0) {
    return 5;
  }
  if (argc == 5 && strcmp(argv[4], "pidfd") == 0 && syscall(SYS_pidfd_open, getpid(), 0) < 0) {
    return 4;
  }
  if (argc == 5 && strcmp(argv[4], "netlink-answer") == 0 && AskNetlink() != 0) {
    return 6;
  }
  if (argc == 5 && strcmp(argv[4], "named-sender") == 0 && SendFromNamed() != 0) {
    return 7;
  }
  const char* mode = argc == 5 ? argv[4] : "";
  pid_t main_exits = 0;
  if (strcmp(mode, "main-exits") == 0 && (main_exits = ForkMainExits()) < 0) {
    return 8;
  }
  region_len = (size_t)atol(argv[3]) << 20;
  region = mmap(NULL, region_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) return 3;
  Fill(region, region_len);
  uint64_t sum = Checksum(region, region_len);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnUsr1;
  sigaction(SIGUSR1, &sa, NULL);

  pthread_t th[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) pthread_create(&th[i], NULL, Worker, (void*)(intptr_t)i);
  while (atomic_load(&counters[NTHREADS - 1]) < 5) usleep(1000);

  if (strcmp(mode, "seccomp") == 0 && InstallSeccomp() != 0) {
    return 9;
  }
  char msg[256];
  snprintf(msg, sizeof msg, "%d\n", getpid());
  WriteFile(argv[1], msg);
  if (strcmp(mode, "vfork") == 0) {
    VforkAndWait();
  }

  while (!got_usr1) pause();
  if (main_exits > 0) {
    kill(main_exits, SIGKILL);
    waitpid(main_exits, NULL, 0);
  }

  // After restore: a child forked now must see the same memory as its parent (under lazy
  // restore its missing pages are served through its own userfaultfd).
  pid_t child = fork();
  if (child == 0) {
    _exit(Checksum(region, region_len) == sum ? 0 : 1);
  }
  // Memory intact, every thread alive with its own TLS, counters moving on.
  char result[1024];
  uint64_t before[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) before[i] = atomic_load(&counters[i]);
  usleep(200000);
  const char* fail = NULL;
  char why[512] = "";
  if (Checksum(region, region_len) != sum) fail = "memory checksum differs";
  int child_status = -1;
  waitpid(child, &child_status, 0);
  if (!fail && !(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0)) {
    fail = "a child forked after restore sees different memory";
  }
  for (int i = 0; i < NTHREADS && !fail; i++) {
    if (atomic_load(&counters[i]) <= before[i]) {
      snprintf(why, sizeof why, "thread %d (tid %d) stopped counting at %lu", i, tids[i],
               before[i]);
      fail = why;
    } else if (tls_seen[i] != 0) {
      snprintf(why, sizeof why, "thread %d saw TLS %lx", i, (unsigned long)tls_seen[i]);
      fail = why;
    }
  }
  if (fail) {
    snprintf(result, sizeof result, "FAIL: %s\n", fail);
  } else {
    snprintf(result, sizeof result, "PASS counters %lu %lu %lu %lu\n", atomic_load(&counters[0]),
             atomic_load(&counters[1]), atomic_load(&counters[2]), atomic_load(&counters[3]));
  }
  WriteFile(argv[2], result);
  return fail ? 1 : 0;
}
