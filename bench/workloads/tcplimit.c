// The loopback TCP limit: one process sends MEGABYTES through a TCP connection on 127.0.0.1
// to another that reads and drops them, with 1 MiB writes; prints MB/s.
//
// usage: tcplimit MEGABYTES
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  size_t total = (size_t)atol(argv[1]) << 20;
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(l, (struct sockaddr*)&a, sizeof a) || listen(l, 1) ||
      getsockname(l, (struct sockaddr*)&a, &len))
    return 3;
  static char buf[1 << 20];
  pid_t reader = fork();
  if (reader == 0) {
    int c = accept(l, NULL, NULL);
    while (read(c, buf, sizeof buf) > 0) {
    }
    _exit(0);
  }
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(s, (struct sockaddr*)&a, sizeof a)) return 4;
  memset(buf, 'x', sizeof buf);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (size_t sent = 0; sent < total;) {
    ssize_t n = write(s, buf, sizeof buf);
    if (n <= 0) return 5;
    sent += (size_t)n;
  }
  close(s);
  waitpid(reader, NULL, 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("%.0f\n", (double)total / secs / 1e6);
  return 0;
}
