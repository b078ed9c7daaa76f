// A service whose first request touches a known, scattered set of pages, as a warmed-up
// server's first request touches its hot data. Memory: MIB MiB of pseudo-random pages.
//   "GET\n": FNV-1a over 300 pages spread over the whole area (the working set)
//   "SUM\n": FNV-1a over all of it
// Each answer is the hash in hex and a newline.
//
// usage: wsservice PORT MIB
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define PAGE 4096
#define HOT_PAGES 300

static uint64_t Fnv(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  size_t pages = (size_t)atoi(argv[2]) * 256;
  uint8_t* mem =
      mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 3;
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < pages * PAGE / 8; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    ((uint64_t*)mem)[i] = x;
  }
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)atoi(argv[1]));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr*)&a, sizeof a) || listen(s, 16)) return 4;
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    char cmd[16] = "";
    ssize_t n = read(c, cmd, sizeof cmd - 1);
    uint64_t h = 14695981039346656037ull;
    if (n > 0 && strncmp(cmd, "GET", 3) == 0) {
      for (size_t i = 0; i < HOT_PAGES; i++) {
        size_t page = (i * 7919 * 13 + i * i) % pages;  // spread, not in address order
        h = Fnv(h, mem + page * PAGE, PAGE);
      }
    } else if (n > 0 && strncmp(cmd, "SUM", 3) == 0) {
      h = Fnv(h, mem, pages * PAGE);
    }
    char out[32];
    int len = snprintf(out, sizeof out, "%016lx\n", (unsigned long)h);
    (void)!write(c, out, (size_t)len);
    close(c);
  }
}
