// A thread whose stack lies inside an anonymous region marked MADV_HUGEPAGE, the rest of which
// holds data. A lazy restore puts each thread's hot pages (around its stack pointer) in before
// the task runs; written the wrong way, that write faults in a whole huge page, and the data
// around the stack then reads as zero. On SIGUSR1 the data is checked word by word.
//
// usage: hugestack READY RESULT
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "go.h"

#define MB (1ul << 20)
#define LEN (8 * MB)
#define STACK_AT (4 * MB)
#define STACK_LEN (1 * MB)

static uint64_t Word(size_t i) { return (i * 2654435761u) ^ 0x5eed5eed5eed5eedull; }

static int InStack(size_t off) { return off >= STACK_AT && off < STACK_AT + STACK_LEN; }

// AnonHugePages of the mapping at `start`, from /proc/self/smaps: whether the kernel gave the
// region huge pages at all (the test means nothing without them).
static unsigned long HugeKiB(const void* start) {
  FILE* f = fopen("/proc/self/smaps", "r");
  if (f == NULL) return 0;
  char line[512];
  int in = 0;
  unsigned long kib = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
      in = lo == (unsigned long)start;
    } else if (in && sscanf(line, "AnonHugePages: %lu kB", &kib) == 1) {
      break;
    }
  }
  fclose(f);
  return kib;
}

static void* Sleeper(void* arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  SetUpGo();
  uint8_t* raw =
      mmap(NULL, LEN + 2 * MB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return 3;
  uint8_t* region = (uint8_t*)(((uintptr_t)raw + 2 * MB - 1) & ~(2 * MB - 1));
  if (madvise(raw, LEN + 2 * MB, MADV_HUGEPAGE) != 0) return 3;
  uint64_t* w = (uint64_t*)region;
  for (size_t i = 0; i < LEN / 8; i++) {
    if (!InStack(i * 8)) w[i] = Word(i);
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, region + STACK_AT, STACK_LEN);
  pthread_t th;
  if (pthread_create(&th, &attr, Sleeper, NULL) != 0) return 4;
  usleep(50000);  // the thread sits in pause(), its stack pointer near the top of its stack

  FILE* f = fopen(argv[1], "w");
  if (f == NULL) return 5;
  fprintf(f, "%d %lu\n", getpid(), HugeKiB(raw));
  fclose(f);
  WaitForGo();

  size_t bad = 0, first = 0;
  for (size_t i = 0; i < LEN / 8; i++) {
    if (!InStack(i * 8) && w[i] != Word(i)) {
      if (bad++ == 0) first = i * 8;
    }
  }
  f = fopen(argv[2], "w");
  if (f == NULL) return 5;
  if (bad == 0) {
    fprintf(f, "PASS\n");
  } else {
    fprintf(f, "FAIL: %zu words differ, the first at offset %#zx\n", bad, first);
  }
  fclose(f);
  return 0;
}
