// Benchmark service: holds MEGABYTES of memory and answers on 127.0.0.1:PORT. "PING\n" ->
// "PONG\n" touches almost nothing (time to first answer); "SUM\n" -> a checksum of all the
// memory (touches every page: full residency). KIND says what the memory holds: "mixed" (the
// default: half text-like, a quarter random, a quarter zero), "random", "text", or "halfzero"
// (half text-like, half zero pages). Every page is touched.
//
// usage: memservice PORT MEGABYTES READY_FILE [KIND]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static uint64_t Sum(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    h = (h ^ w) * 1099511628211ull;
  }
  return h;
}

static uint64_t x = 88172645463325252ull;

static void FillText(uint8_t* mem, size_t n) {
  static const char* words[] = {"user:", "1234 ", "session ", "GET /index.html ", "200 ", "\n"};
  for (size_t i = 0; i < n;) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    const char* w = words[x % 6];
    size_t l = strlen(w);
    if (i + l > n) l = n - i;
    memcpy(mem + i, w, l);
    i += l;
  }
}

static void FillRandom(uint8_t* mem, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    memcpy(mem + i, &x, 8);
  }
}

static void TouchZero(uint8_t* mem, size_t n) {
  for (size_t i = 0; i < n; i += 4096) mem[i] = 0;  // present, zero
}

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) return 2;
  const char* kind = argc == 5 ? argv[4] : "mixed";
  size_t len = (size_t)atol(argv[2]) << 20;
  uint8_t* mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 3;
  size_t half = len / 2, quarter = len / 4;
  if (strcmp(kind, "mixed") == 0) {
    FillText(mem, half);
    FillRandom(mem + half, quarter);
    TouchZero(mem + half + quarter, len - half - quarter);
  } else if (strcmp(kind, "random") == 0) {
    FillRandom(mem, len);
  } else if (strcmp(kind, "text") == 0) {
    FillText(mem, len);
  } else if (strcmp(kind, "halfzero") == 0) {
    FillText(mem, half);
    TouchZero(mem + half, len - half);
  } else {
    return 2;
  }

  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(atoi(argv[1])),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(s, (struct sockaddr*)&a, sizeof a) != 0 || listen(s, 64) != 0) return 4;
  FILE* r = fopen(argv[3], "w");
  fprintf(r, "%d\n", getpid());
  fclose(r);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    char buf[16] = {0};
    if (read(c, buf, sizeof buf - 1) > 0) {
      char out[64];
      if (strncmp(buf, "SUM", 3) == 0) {
        snprintf(out, sizeof out, "%016lx\n", (unsigned long)Sum(mem, len));
      } else {
        strcpy(out, "PONG\n");
      }
      if (write(c, out, strlen(out)) < 0) {
      }
    }
    close(c);
  }
}
