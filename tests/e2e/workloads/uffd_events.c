// Address-space changes while memory is still arriving (run under a lazy restore whose
// background fill is held back): after SIGUSR1 it mremaps part of a region elsewhere, drops
// another part with madvise(MADV_DONTNEED), unmaps a third, and has four threads read one chunk
// at once. Then it checks: the moved pages kept their content at the new address, the dropped
// pages read as zero (never the old content), everything else is intact.
//
// usage: uffd_events READY_FILE RESULT_FILE
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096
#define PAGES 4096  // 16 MiB

static volatile sig_atomic_t go;
static void OnUsr1(int s) {
  (void)s;
  go = 1;
}
static uint8_t* region;
static volatile uint64_t thread_sums[4];

static uint64_t PageWord(size_t page) { return 0x9e3779b97f4a7c15ull * (page + 1); }

static void* Reader(void* arg) {
  int i = (int)(intptr_t)arg;
  uint64_t s = 0;
  for (size_t p = 2048; p < 2048 + 16; p++) {  // one chunk, read by every thread at once
    uint64_t w;
    memcpy(&w, region + p * PAGE + 8 * i, 8);
    s += w;
  }
  thread_sums[i] = s;
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  region = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (size_t p = 0; p < PAGES; p++) {
    for (size_t o = 0; o < PAGE; o += 8) {
      uint64_t w = PageWord(p) ^ o;
      memcpy(region + p * PAGE + o, &w, 8);
    }
  }
  signal(SIGUSR1, OnUsr1);
  FILE* f = fopen(argv[1], "w");
  fprintf(f, "%d\n", getpid());
  fclose(f);
  while (!go) pause();

  // Pages 100..163 move away; 200..231 are dropped; 300..315 are unmapped.
  uint8_t* moved = mremap(region + 100 * PAGE, 64 * PAGE, 64 * PAGE, MREMAP_MAYMOVE);
  madvise(region + 200 * PAGE, 32 * PAGE, MADV_DONTNEED);
  munmap(region + 300 * PAGE, 16 * PAGE);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, Reader, (void*)(intptr_t)i);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);

  char result[256] = "PASS\n";
  for (size_t p = 0; p < PAGES && result[0] == 'P'; p++) {
    if (p >= 300 && p < 316) continue;
    const uint8_t* at = (p >= 100 && p < 164) ? moved + (p - 100) * PAGE : region + p * PAGE;
    for (size_t o = 0; o < PAGE; o += 8) {
      uint64_t w, want = (p >= 200 && p < 232) ? 0 : (PageWord(p) ^ o);
      memcpy(&w, at + o, 8);
      if (w != want) {
        snprintf(result, sizeof result, "FAIL: page %zu offset %zu: %#lx, want %#lx\n", p, o,
                 (unsigned long)w, (unsigned long)want);
        break;
      }
    }
  }
  for (int i = 0; i < 4 && result[0] == 'P'; i++) {
    uint64_t s = 0;
    for (size_t p = 2048; p < 2048 + 16; p++) s += PageWord(p) ^ (uint64_t)(8 * i);
    if (thread_sums[i] != s)
      snprintf(result, sizeof result, "FAIL: thread %d read wrong data\n", i);
  }
  f = fopen(argv[2], "w");
  fputs(result, f);
  fclose(f);
  return 0;
}
