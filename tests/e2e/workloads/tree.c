// A process tree: the parent forks two children (one of them a new process group), each fills
// its own memory. After SIGUSR1 (to the parent, after restore) the parent passes it on, each
// child checks its memory and exits with the verdict, and the parent reaps them with waitpid:
// the tree links, pids and wait() must all have survived; a third child, a zombie at dump time,
// must still be a zombie with its exit status. Writes PASS or FAIL to RESULT_FILE.
//
// usage: tree READY_FILE RESULT_FILE
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "go.h"

static uint64_t Fill(uint8_t* p, size_t n, uint64_t seed) {
  uint64_t h = 0;
  for (size_t i = 0; i < n; i += 8) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    memcpy(p + i, &seed, 8);
    h ^= seed;
  }
  return h;
}

static uint64_t Sum(const uint8_t* p, size_t n) {
  uint64_t h = 0;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h ^= w;
  }
  return h;
}

static int Child(uint64_t seed) {
  size_t n = 8 << 20;
  uint8_t* m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uint64_t want = Fill(m, n, seed);
  WaitForGo();
  if (Sum(m, n) != want) return 10;
  if (getppid() == 1) return 11;
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  SetUpGo();
  pid_t kids[2];
  for (int i = 0; i < 2; i++) {
    kids[i] = fork();
    if (kids[i] == 0) {
      if (i == 1) setpgid(0, 0);
      _exit(Child(1000 + i));
    }
  }
  // A third child exits at once and stays a zombie until the parent reaps it after restore.
  pid_t zombie = fork();
  if (zombie == 0) _exit(7);
  while (1) {  // wait until it is a zombie, without reaping it
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, zombie, &si, WEXITED | WNOWAIT) == 0) break;
  }
  char ready[64];
  snprintf(ready, sizeof ready, "%d %d %d %d\n", getpid(), kids[0], kids[1], zombie);
  FILE* f = fopen(argv[1], "w");
  fputs(ready, f);
  fclose(f);
  WaitForGo();
  char result[256] = "PASS\n";
  for (int i = 0; i < 2; i++) {
    kill(kids[i], SIGUSR1);
    int status = -1;
    pid_t r = waitpid(kids[i], &status, 0);
    if (r != kids[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      snprintf(result, sizeof result, "FAIL: child %d: waitpid %d status %#x\n", kids[i], r,
               status);
      break;
    }
  }
  int zstatus = -1;
  if (result[0] == 'P' && (waitpid(zombie, &zstatus, 0) != zombie || !WIFEXITED(zstatus) ||
                           WEXITSTATUS(zstatus) != 7)) {
    snprintf(result, sizeof result, "FAIL: zombie %d: status %#x\n", zombie, zstatus);
  }
  f = fopen(argv[2], "w");
  fputs(result, f);
  fclose(f);
  return 0;
}
