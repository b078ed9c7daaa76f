// Benchmark prober: asks 127.0.0.1:PORT "CMD\n" until it gets an answer, then prints the
// answer and the seconds since T0_NS (CLOCK_MONOTONIC). Started before a restore, it polls so
// that its own start-up is not part of the measured time.
//
// usage: ask PORT CMD T0_NS [TIMEOUT_S]       ask now   (prints CLOCK_MONOTONIC in ns)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t Now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "now") == 0) {
    printf("%lu\n", (unsigned long)Now());
    return 0;
  }
  if (argc < 4) return 2;
  int port = atoi(argv[1]);
  uint64_t t0 = strtoull(argv[3], NULL, 10);
  double timeout = argc > 4 ? atof(argv[4]) : 60;
  char cmd[64];
  snprintf(cmd, sizeof cmd, "%s\n", argv[2]);
  uint64_t start = Now();
  for (;;) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(s, (struct sockaddr*)&a, sizeof a) == 0 && write(s, cmd, strlen(cmd)) > 0) {
      char buf[128] = {0};
      ssize_t n = read(s, buf, sizeof buf - 1);
      if (n > 0) {
        uint64_t t = Now();
        buf[strcspn(buf, "\n")] = 0;
        printf("%s %.6f\n", buf, (double)(t - t0) / 1e9);
        return 0;
      }
    }
    close(s);
    if ((double)(Now() - start) / 1e9 > timeout) {
      fprintf(stderr, "ask: no answer on port %d\n", port);
      return 1;
    }
    usleep(200);
  }
}
