// Address-space changes while memory is still arriving (run under a lazy restore whose
// background fill is held back): after SIGUSR1 it mremaps part of a region elsewhere, drops
// another part with madvise(MADV_DONTNEED), unmaps a third, and has four threads read one chunk
// at once. Then it checks: the moved pages kept their content at the new address, the dropped
// pages read as zero (never the old content), everything else is intact.
//
// With "race", the region is 256 MiB and the background fill runs meanwhile: from the top down
// (the fill goes bottom up), every 64-page block has 8 pages dropped and read back at once,
// which must read as zero even when a fill thread was about to copy their old content.
//
// With "fork", pages 1024..1087 are MADV_WIPEONFORK and 1088..1151 MADV_DONTFORK; after SIGUSR1
// it forks a child, which must see the first range as zero (never the dumped data) and the
// rest intact, then stays (until its parent dies); the parent checks all of its own memory.
// The result is "PASS child PID".
//
// With "forkidle", after SIGUSR1 it forks (the raw syscall) a child that pauses at once, and
// writes the child's pid to the result file: neither touches a lazy page, so the daemon can
// learn the child's pid only from /proc.
//
// usage: uffd_events READY_FILE RESULT_FILE [race|fork|forkidle]
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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

static void Fill(size_t pages) {
  for (size_t p = 0; p < pages; p++) {
    for (size_t o = 0; o < PAGE; o += 8) {
      uint64_t w = PageWord(p) ^ o;
      memcpy(region + p * PAGE + o, &w, 8);
    }
  }
}

static int Dropped(size_t p) { return p % 64 >= 8 && p % 64 < 16; }

// Checks every page of `pages`: dropped ones zero, the others their own words.
static void CheckAll(size_t pages, char* result, size_t len) {
  for (size_t p = 0; p < pages && result[0] == 'P'; p++) {
    for (size_t o = 0; o < PAGE; o += 8) {
      uint64_t w, want = Dropped(p) ? 0 : (PageWord(p) ^ o);
      memcpy(&w, region + p * PAGE + o, 8);
      if (w != want) {
        snprintf(result, len, "FAIL: page %zu offset %zu: %#lx, want %#lx\n", p, o,
                 (unsigned long)w, (unsigned long)want);
        break;
      }
    }
  }
}

static void Race(char* result, size_t len) {
  const size_t pages = 65536;
  for (size_t blk = pages / 64; blk-- > 0 && result[0] == 'P';) {
    uint8_t* at = region + (blk * 64 + 8) * PAGE;
    madvise(at, 8 * PAGE, MADV_DONTNEED);
    for (size_t o = 0; o < 8 * PAGE; o += 8) {
      uint64_t w;
      memcpy(&w, at + o, 8);
      if (w != 0) {
        snprintf(result, len, "FAIL: dropped page %zu read %#lx\n", blk * 64 + 8 + o / PAGE,
                 (unsigned long)w);
        return;
      }
    }
  }
  CheckAll(pages, result, len);
}

// Whether page `p` holds its own words, or zeros when `zero`.
static int PageIs(size_t p, int zero) {
  for (size_t o = 0; o < PAGE; o += 8) {
    uint64_t w;
    memcpy(&w, region + p * PAGE + o, 8);
    if (w != (zero ? 0 : (PageWord(p) ^ o))) return 0;
  }
  return 1;
}

static void ForkCheck(char* result, size_t len) {
  int fds[2];
  if (pipe(fds) != 0) {
    snprintf(result, len, "FAIL: pipe\n");
    return;
  }
  pid_t c = fork();
  if (c == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char r[128] = "PASS";
    for (size_t p = 0; p < PAGES && r[0] == 'P'; p++) {
      if (p >= 1088 && p < 1152) continue;  // not in the child at all
      if (!PageIs(p, p >= 1024 && p < 1088)) snprintf(r, sizeof r, "FAIL: child page %zu", p);
    }
    if (write(fds[1], r, sizeof r) != sizeof r) _exit(1);
    for (;;) pause();
  }
  char r[128] = "";
  if (read(fds[0], r, sizeof r) != sizeof r || strcmp(r, "PASS") != 0) {
    snprintf(result, len, "%s\n", r[0] ? r : "FAIL: no word from the child");
    return;
  }
  for (size_t p = 0; p < PAGES; p++) {
    if (!PageIs(p, 0)) {
      snprintf(result, len, "FAIL: parent page %zu\n", p);
      return;
    }
  }
  snprintf(result, len, "PASS child %d\n", c);
}

// Only the stack (its pages come back eagerly) and raw syscalls.
static void ForkIdle(int out) {
  long c = syscall(SYS_fork);
  if (c == 0) {
    for (;;) syscall(SYS_pause);
  }
  char digits[16], line[16];
  int n = 0, len = 0;
  for (long v = c; v > 0; v /= 10) digits[n++] = (char)('0' + v % 10);
  while (n > 0) line[len++] = digits[--n];
  line[len++] = '\n';
  syscall(SYS_write, out, line, len);
  for (;;) syscall(SYS_pause);
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[3], "forkidle") == 0) {
    region = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    Fill(PAGES);
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    signal(SIGUSR1, OnUsr1);
    FILE* f = fopen(argv[1], "w");
    fprintf(f, "%d\n", getpid());
    fclose(f);
    while (!go) pause();
    ForkIdle(out);
  }
  if (argc != 3 && !(argc == 4 && (strcmp(argv[3], "race") == 0 || strcmp(argv[3], "fork") == 0)))
    return 2;
  int race = argc == 4 && strcmp(argv[3], "race") == 0;
  int forking = argc == 4 && !race;
  size_t pages = race ? 65536 : PAGES;
  region = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  Fill(pages);
  if (forking && (madvise(region + 1024 * PAGE, 64 * PAGE, MADV_WIPEONFORK) != 0 ||
                  madvise(region + 1088 * PAGE, 64 * PAGE, MADV_DONTFORK) != 0))
    return 3;
  signal(SIGUSR1, OnUsr1);
  FILE* f = fopen(argv[1], "w");
  fprintf(f, "%d\n", getpid());
  fclose(f);
  while (!go) pause();

  char result[256] = "PASS\n";
  if (race || forking) {
    if (race) Race(result, sizeof result);
    if (forking) ForkCheck(result, sizeof result);
    f = fopen(argv[2], "w");
    fputs(result, f);
    fclose(f);
    while (forking) pause();  // the child lives as long as this process does
    return 0;
  }
  // Pages 100..163 move away; 200..231 are dropped; 300..315 are unmapped.
  uint8_t* moved = mremap(region + 100 * PAGE, 64 * PAGE, 64 * PAGE, MREMAP_MAYMOVE);
  madvise(region + 200 * PAGE, 32 * PAGE, MADV_DONTNEED);
  munmap(region + 300 * PAGE, 16 * PAGE);
  pthread_t th[4];
  for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, Reader, (void*)(intptr_t)i);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);

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
