// The raw page-copy limit for a dump: copies every private writable mapping of a stopped
// process from /proc/PID/mem into OUT_FILE with 4 MiB reads and writes, nothing else (no page
// map, no zero detection, no compression), and prints the seconds it took.
//
// usage: copylimit PID OUT_FILE
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/maps", argv[1]);
  FILE* maps = fopen(path, "r");
  snprintf(path, sizeof path, "/proc/%s/mem", argv[1]);
  int mem = open(path, O_RDONLY);
  int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (maps == NULL || mem < 0 || out < 0) return 3;
  static char buf[4 << 20];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  char line[512];
  while (fgets(line, sizeof line, maps)) {
    unsigned long start, end;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3) continue;
    if (perms[1] != 'w' || perms[3] != 'p') continue;
    for (unsigned long a = start; a < end;) {
      size_t n = end - a < sizeof buf ? end - a : sizeof buf;
      ssize_t r = pread(mem, buf, n, (off_t)a);
      if (r <= 0) break;
      if (write(out, buf, (size_t)r) != r) return 4;
      a += (unsigned long)r;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("%.3f\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
  return 0;
}
