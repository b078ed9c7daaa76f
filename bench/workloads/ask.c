// Benchmark prober: asks 127.0.0.1:PORT "CMD\n" until it gets an answer, then prints the
// answer and the seconds since T0. Started before a restore, it polls so that its own start-up
// is not part of the measured time.
//
// usage: ask PORT CMD T0 [TIMEOUT_S]       ask now   (prints CLOCK_MONOTONIC in ns)
//   T0 is CLOCK_MONOTONIC in ns, or @FILE: a file holding CLOCK_REALTIME in seconds (bash's
//   $EPOCHREALTIME), read when the answer comes. A script writes it with a shell builtin just
//   before it starts the restore, so that no process start of the script is measured.
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

// Seconds from the T0 argument to now.
static double Since(const char* t0) {
  if (t0[0] != '@') {
    return (double)(Now() - strtoull(t0, NULL, 10)) / 1e9;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  FILE* f = fopen(t0 + 1, "r");
  double start = 0;
  if (f == NULL || fscanf(f, "%lf", &start) != 1) {
    fprintf(stderr, "ask: no start time in %s\n", t0 + 1);
    exit(1);
  }
  fclose(f);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - start;
}

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "now") == 0) {
    printf("%lu\n", (unsigned long)Now());
    return 0;
  }
  if (argc < 4) return 2;
  int port = atoi(argv[1]);
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
        double t = Since(argv[3]);
        buf[strcspn(buf, "\r\n")] = 0;
        printf("%s %.6f\n", buf, t);
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
