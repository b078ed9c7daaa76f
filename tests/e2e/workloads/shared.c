// Files shared between the processes of a tree, the way servers and pipelines share them:
//  - a pipe from the parent to child 1, with bytes buffered in it at dump time;
//  - a socketpair between the parent and child 1, bytes queued both ways;
//  - a regular file opened once by the parent: the offset is shared by all three;
//  - a listening TCP socket bound once, inherited by child 2, which answers on it;
//  - a pipe between the two children that the parent closed (made by their common parent);
//  - a datagram and a seqpacket socketpair between the parent and child 1, messages queued
//    (their boundaries must survive);
//  - a datagram socket connected to a named socket outside the tree (LOG_SOCKET, as a syslog
//    client is to /dev/log): after the restore the parent sends "after-restore" on it;
//  - a log server inside the tree: child 2 holds a datagram socket bound at RESULT_FILE.srv,
//    with messages queued from a client socket connected to it (made by the parent, shared
//    with child 1, so restored before child 2 exists) and from a socket that sent once and
//    closed; after the restore child 2 reads them, then one from child 1 and one from the
//    parent on that client; child 2 also has its own client, made before its own server
//    (abstract name), and talks to itself through them.
// After SIGUSR1 (to the parent, after restore) every process checks what it reads and the
// parent checks the shared offset. Writes PASS or FAIL: ... to RESULT_FILE.
//
// usage: shared READY_FILE RESULT_FILE DATA_FILE PORT LOG_SOCKET
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "go.h"

// Reads exactly strlen(want) bytes and compares them.
static int Expect(int fd, const char* want) {
  char buf[256];
  size_t n = strlen(want), got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r <= 0) return 0;
    got += (size_t)r;
  }
  return memcmp(buf, want, n) == 0;
}

static int WriteStr(int fd, const char* s) { return write(fd, s, strlen(s)) == (ssize_t)strlen(s); }

// Receives one message and compares it whole: a merged or split message fails.
static int ExpectMsg(int fd, const char* want) {
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  return n == (ssize_t)strlen(want) && memcmp(buf, want, (size_t)n) == 0;
}

static int Child1(int pipe_rd, int sock, int file, int sib_wr, int dgram, int seqp,
                  int log_client) {
  WaitForGo();
  if (!WriteStr(log_client, "k1")) return 19;
  if (!ExpectMsg(dgram, "d1") || !ExpectMsg(dgram, "dd2") || !ExpectMsg(dgram, "ddd3")) return 16;
  if (!ExpectMsg(seqp, "s1") || !ExpectMsg(seqp, "ss2")) return 17;
  if (!WriteStr(seqp, "child-after")) return 18;
  if (!Expect(pipe_rd, "before-dump\n")) return 10;
  if (!Expect(pipe_rd, "after\n")) return 11;
  if (!Expect(sock, "to-child")) return 12;
  if (!WriteStr(sock, "ok")) return 13;
  if (!WriteStr(sib_wr, "after-sibling\n")) return 14;
  if (!WriteStr(file, "0123456789")) return 15;  // at the shared offset
  return 0;
}

// Waits up to 5 s for one message and compares it whole.
static int AwaitMsg(int fd, const char* want) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 5000) == 1 && ExpectMsg(fd, want);
}

static int Child2(int listener, int sib_rd, int log_server) {
  struct sockaddr_un own = {.sun_family = AF_UNIX};
  int n = snprintf(own.sun_path + 1, sizeof own.sun_path - 1, "lz-shared-%d", getpid()) + 1;
  socklen_t own_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
  int own_client = socket(AF_UNIX, SOCK_DGRAM, 0);  // a lower number than its server's
  int own_server = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (bind(own_server, (struct sockaddr*)&own, own_len) ||
      connect(own_client, (struct sockaddr*)&own, own_len))
    return 25;
  sigset_t open_mask;
  sigprocmask(SIG_SETMASK, NULL, &open_mask);
  sigdelset(&open_mask, SIGUSR1);
  int answered = 0;
  while (!go) {
    struct pollfd p = {listener, POLLIN, 0};
    if (ppoll(&p, 1, NULL, &open_mask) <= 0) continue;  // EINTR: SIGUSR1
    int c = accept(listener, NULL, NULL);
    if (c < 0) continue;
    char msg[64];
    snprintf(msg, sizeof msg, "child2 %d answer %d\n", getpid(), ++answered);
    WriteStr(c, msg);
    close(c);
  }
  if (!Expect(sib_rd, "sibling\n")) return 20;
  if (!Expect(sib_rd, "after-sibling\n")) return 21;
  if (!ExpectMsg(log_server, "q1") || !ExpectMsg(log_server, "qq2")) return 22;
  if (!ExpectMsg(log_server, "u3")) return 23;
  if (!AwaitMsg(log_server, "k1") || !AwaitMsg(log_server, "q4-after")) return 24;
  if (!WriteStr(own_client, "self") || !AwaitMsg(own_server, "self")) return 26;
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 6) return 2;
  SetUpGo();

  int pipe_a[2], sib[2], sv[2], dg[2], sp[2];
  if (pipe(pipe_a) || pipe(sib) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 3;
  if (socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp))
    return 3;
  int log_sock = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un log_addr;
  memset(&log_addr, 0, sizeof log_addr);
  log_addr.sun_family = AF_UNIX;
  strncpy(log_addr.sun_path, argv[5], sizeof log_addr.sun_path - 1);
  if (connect(log_sock, (struct sockaddr*)&log_addr, sizeof log_addr) ||
      !WriteStr(log_sock, "before-dump"))
    return 3;
  struct sockaddr_un srv_addr;
  memset(&srv_addr, 0, sizeof srv_addr);
  srv_addr.sun_family = AF_UNIX;
  snprintf(srv_addr.sun_path, sizeof srv_addr.sun_path, "%s.srv", argv[2]);
  unlink(srv_addr.sun_path);
  int log_server = socket(AF_UNIX, SOCK_DGRAM, 0);
  int log_client = socket(AF_UNIX, SOCK_DGRAM, 0);
  int once = socket(AF_UNIX, SOCK_DGRAM, 0);
  if (bind(log_server, (struct sockaddr*)&srv_addr, sizeof srv_addr) ||
      connect(log_client, (struct sockaddr*)&srv_addr, sizeof srv_addr) ||
      !WriteStr(log_client, "q1") || !WriteStr(log_client, "qq2") ||
      sendto(once, "u3", 2, 0, (struct sockaddr*)&srv_addr, sizeof srv_addr) != 2)
    return 3;
  close(once);
  int file = open(argv[3], O_RDWR | O_CREAT | O_TRUNC, 0600);
  char hundred[100];
  memset(hundred, 'p', sizeof hundred);
  if (file < 0 || write(file, hundred, sizeof hundred) != 100) return 4;
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)atoi(argv[4]));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr*)&a, sizeof a) || listen(listener, 16)) return 5;

  pid_t kid1 = fork();
  if (kid1 == 0) {
    close(pipe_a[1]);
    close(sv[0]);
    close(sib[0]);
    close(listener);
    close(dg[0]);
    close(sp[0]);
    close(log_sock);
    close(log_server);
    WriteStr(sv[1], "to-parent");
    WriteStr(sib[1], "sibling\n");
    WriteStr(sp[1], "up");
    _exit(Child1(pipe_a[0], sv[1], file, sib[1], dg[1], sp[1], log_client));
  }
  pid_t kid2 = fork();
  if (kid2 == 0) {
    close(pipe_a[0]);
    close(pipe_a[1]);
    close(sv[0]);
    close(sv[1]);
    close(sib[1]);
    close(dg[0]);
    close(dg[1]);
    close(sp[0]);
    close(sp[1]);
    close(log_sock);
    close(log_client);
    _exit(Child2(listener, sib[0], log_server));
  }
  close(log_server);
  close(pipe_a[0]);
  close(sv[1]);
  close(sib[0]);
  close(sib[1]);
  WriteStr(pipe_a[1], "before-dump\n");
  WriteStr(sv[0], "to-child");
  close(dg[1]);
  close(sp[1]);
  WriteStr(dg[0], "d1");
  WriteStr(dg[0], "dd2");
  WriteStr(dg[0], "ddd3");
  WriteStr(sp[0], "s1");
  WriteStr(sp[0], "ss2");
  usleep(100000);  // let child 1 queue its bytes before we say we are ready

  char ready[64];
  snprintf(ready, sizeof ready, "%d %d %d\n", getpid(), kid1, kid2);
  FILE* f = fopen(argv[1], "w");
  fputs(ready, f);
  fclose(f);
  WaitForGo();

  char result[256] = "PASS\n";
  kill(kid1, SIGUSR1);
  kill(kid2, SIGUSR1);
  int status = -1;
  if (!WriteStr(pipe_a[1], "after\n")) {
    snprintf(result, sizeof result, "FAIL: write to child 1's pipe: %s\n", strerror(errno));
  } else if (!Expect(sv[0], "to-parent")) {
    snprintf(result, sizeof result, "FAIL: socketpair bytes from child 1 lost\n");
  } else if (waitpid(kid1, &status, 0) != kid1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    snprintf(result, sizeof result, "FAIL: child 1 status %#x\n", status);
  } else if (!ExpectMsg(sp[0], "up") || !ExpectMsg(sp[0], "child-after")) {
    snprintf(result, sizeof result, "FAIL: seqpacket messages from child 1\n");
  } else if (!WriteStr(log_sock, "after-restore")) {
    snprintf(result, sizeof result, "FAIL: send to the log socket: %s\n", strerror(errno));
  } else if (!WriteStr(log_client, "q4-after")) {
    snprintf(result, sizeof result, "FAIL: send to child 2's log server: %s\n", strerror(errno));
  } else if (!Expect(sv[0], "ok")) {
    snprintf(result, sizeof result, "FAIL: child 1's answer on the socketpair\n");
  } else if (lseek(file, 0, SEEK_CUR) != 110) {
    snprintf(result, sizeof result, "FAIL: shared offset is %ld, not 110\n",
             (long)lseek(file, 0, SEEK_CUR));
  } else if (waitpid(kid2, &status, 0) != kid2 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    snprintf(result, sizeof result, "FAIL: child 2 status %#x\n", status);
  }
  f = fopen(argv[2], "w");
  fputs(result, f);
  fclose(f);
  return 0;
}
