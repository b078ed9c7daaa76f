// Shared memory between the processes of a tree, the ways programs share it:
//  - a memfd ("lz-data", sealed against shrinking and growing, with a hole in the middle),
//    mapped shared by the parent before it forks, and kept open at a known offset;
//  - anonymous shared memory (MAP_SHARED | MAP_ANONYMOUS) inherited by the child;
//  - a memfd that only a mapping keeps alive (its fd was closed);
//  - a private mapping of a memfd whose pages the parent changed (copies only it sees);
//  - a SysV segment with a key, mode 0640 and a size that ends inside a page, attached before
//    the fork (so by both), and a private one attached read-only and removed (IPC_RMID) while
//    attached, as programs do so that it goes with them.
// After SIGUSR1 (to the parent, after restore) the child writes into both shared areas and
// exits; the parent checks it sees those writes through its own mappings and through the fd,
// that the rest of the content, the size, seals, offset and name are as they were, and that
// the SysV segments have their ids, keys, modes, attach counts and read-only attachment.
// Writes PASS or FAIL: ... to RESULT_FILE.
//
// usage: shmem READY_FILE RESULT_FILE
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "go.h"

#define PAGE 4096
#define DATA_PAGES 768  // 3 MiB; pages 256..511 are a hole
#define ANON_PAGES 512

static uint8_t Pattern(uint64_t i, uint8_t salt) { return (uint8_t)(i * 131 + (i >> 12) + salt); }

static void Fill(uint8_t* p, size_t n, uint8_t salt) {
  for (size_t i = 0; i < n; i++) p[i] = Pattern(i, salt);
}

// Bytes [from, to) of an area Fill(p, ..., salt) wrote.
static int Same(const uint8_t* p, size_t from, size_t to, uint8_t salt) {
  for (size_t i = from; i < to; i++)
    if (p[i] != Pattern(i, salt)) return 0;
  return 1;
}

static int IsZero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return 0;
  return 1;
}

static const char kChildNote[] = "the child wrote this after the restore";
#define N sizeof kChildNote

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  SetUpGo();

  int data_fd = memfd_create("lz-data", MFD_ALLOW_SEALING);
  if (data_fd < 0 || ftruncate(data_fd, (off_t)DATA_PAGES * PAGE)) return 3;
  uint8_t* data =
      mmap(NULL, (size_t)DATA_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, data_fd, 0);
  if (data == MAP_FAILED) return 4;
  Fill(data, 256 * PAGE, 1);
  Fill(data + 512 * PAGE, 256 * PAGE, 2);
  if (fcntl(data_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW)) return 5;
  if (lseek(data_fd, 12345, SEEK_SET) != 12345) return 6;

  uint8_t* anon =
      mmap(NULL, ANON_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (anon == MAP_FAILED) return 7;
  Fill(anon, ANON_PAGES * PAGE, 3);

  int gone_fd = memfd_create("lz-mapped-only", 0);
  if (gone_fd < 0 || ftruncate(gone_fd, 64 * PAGE)) return 8;
  uint8_t* gone = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, gone_fd, 0);
  if (gone == MAP_FAILED) return 9;
  close(gone_fd);
  Fill(gone, 64 * PAGE, 4);

  int priv_fd = memfd_create("lz-private", 0);
  if (priv_fd < 0 || ftruncate(priv_fd, 32 * PAGE)) return 10;
  uint8_t* file_view = mmap(NULL, 32 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, priv_fd, 0);
  if (file_view == MAP_FAILED) return 11;
  Fill(file_view, 32 * PAGE, 5);
  uint8_t* priv = mmap(NULL, 32 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, priv_fd, 0);
  if (priv == MAP_FAILED) return 12;
  Fill(priv, 8 * PAGE, 6);  // the first 8 pages become private copies
  munmap(file_view, 32 * PAGE);
  close(priv_fd);

  // Sealed against writes, then shared read-only: the usual way to hand out immutable data.
  int sealed_fd = memfd_create("lz-sealed", MFD_ALLOW_SEALING);
  if (sealed_fd < 0 || ftruncate(sealed_fd, 4 * PAGE)) return 13;
  uint8_t* tmp = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, sealed_fd, 0);
  if (tmp == MAP_FAILED) return 14;
  Fill(tmp, 4 * PAGE, 7);
  munmap(tmp, 4 * PAGE);
  if (fcntl(sealed_fd, F_ADD_SEALS, F_SEAL_WRITE)) return 15;
  uint8_t* sealed = mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, sealed_fd, 0);
  if (sealed == MAP_FAILED) return 16;

  key_t key = (key_t)(0x6c7a0000 | (getpid() & 0xffff));
  size_t sysv_size = 3 * PAGE + 100;
  int sysv_id = shmget(key, sysv_size, IPC_CREAT | IPC_EXCL | 0640);
  if (sysv_id < 0) return 17;
  uint8_t* sysv = shmat(sysv_id, NULL, 0);
  if (sysv == (void*)-1 || shmctl(sysv_id, SHM_LOCK, NULL)) return 18;
  Fill(sysv, sysv_size, 8);
  int gone_id = shmget(IPC_PRIVATE, PAGE, IPC_CREAT | 0600);
  uint8_t* tmp_w = gone_id < 0 ? (void*)-1 : shmat(gone_id, NULL, 0);
  if (tmp_w == (void*)-1) return 19;
  Fill(tmp_w, PAGE, 9);
  shmdt(tmp_w);
  uint8_t* sysv_ro = shmat(gone_id, NULL, SHM_RDONLY);
  if (sysv_ro == (void*)-1 || shmctl(gone_id, IPC_RMID, NULL)) return 20;

  pid_t kid = fork();
  if (kid == 0) {
    WaitForGo();
    memcpy(sysv + 2 * PAGE + 5, kChildNote, sizeof kChildNote);
    memcpy(data + 100 * PAGE, kChildNote, sizeof kChildNote);
    memcpy(anon + 7 * PAGE + 3, kChildNote, sizeof kChildNote);
    memcpy(gone + 2 * PAGE, kChildNote, sizeof kChildNote);
    _exit(0);
  }

  FILE* f = fopen(argv[1], "w");
  fprintf(f, "%d %d\n", getpid(), kid);
  fclose(f);
  WaitForGo();

  char result[256] = "PASS\n";
  int status = -1;
  char note[sizeof kChildNote];
  char link[256] = "";
  char fdpath[64];
  snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", data_fd);
  ssize_t ln = readlink(fdpath, link, sizeof link - 1);
  if (ln > 0) link[ln] = 0;
  struct stat st;
  struct shmid_ds ds_before, ds, ds_gone;
  int attached_before = shmctl(sysv_id, IPC_STAT, &ds_before);
  kill(kid, SIGUSR1);
  if (waitpid(kid, &status, 0) != kid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    snprintf(result, sizeof result, "FAIL: child status %#x\n", status);
  } else if (attached_before != 0 || ds_before.shm_nattch != 2) {
    snprintf(result, sizeof result, "FAIL: SysV segment %d: %s, %lu attached\n", sysv_id,
             attached_before ? strerror(errno) : "there", (unsigned long)ds_before.shm_nattch);
  } else if (shmctl(sysv_id, IPC_STAT, &ds) || ds.shm_perm.__key != key ||
             ds.shm_segsz != sysv_size || (ds.shm_perm.mode & 0777) != 0640 || ds.shm_nattch != 1) {
    snprintf(result, sizeof result, "FAIL: SysV segment key, size, mode or attach count differ\n");
  } else if (!(ds.shm_perm.mode & SHM_LOCKED)) {
    snprintf(result, sizeof result, "FAIL: the locked SysV segment is not locked\n");
  } else if (memcmp(sysv + 2 * PAGE + 5, kChildNote, sizeof kChildNote) != 0 ||
             !Same(sysv, 0, 2 * PAGE + 5, 8) || !Same(sysv, 2 * PAGE + 5 + N, sysv_size, 8)) {
    snprintf(result, sizeof result, "FAIL: SysV segment content, or the child's write, differ\n");
  } else if (!Same(sysv_ro, 0, PAGE, 9) || mprotect(sysv_ro, PAGE, PROT_READ | PROT_WRITE) == 0) {
    snprintf(result, sizeof result, "FAIL: the read-only SysV attachment differs\n");
  } else if (shmctl(gone_id, IPC_STAT, &ds_gone) || !(ds_gone.shm_perm.mode & SHM_DEST) ||
             (ds_gone.shm_perm.mode & SHM_LOCKED)) {
    snprintf(result, sizeof result,
             "FAIL: the removed SysV segment is not marked removed, or locked\n");
  } else if (memcmp(data + 100 * PAGE, kChildNote, sizeof kChildNote) != 0) {
    snprintf(result, sizeof result, "FAIL: the child's write to the memfd is not seen\n");
  } else if (memcmp(anon + 7 * PAGE + 3, kChildNote, sizeof kChildNote) != 0) {
    snprintf(result, sizeof result, "FAIL: the child's write to anonymous shared memory is lost\n");
  } else if (memcmp(gone + 2 * PAGE, kChildNote, sizeof kChildNote) != 0) {
    snprintf(result, sizeof result, "FAIL: the child's write to the mapped-only memfd is lost\n");
  } else if (pread(data_fd, note, sizeof note, 100 * PAGE) != (ssize_t)sizeof note ||
             memcmp(note, kChildNote, sizeof note) != 0) {
    snprintf(result, sizeof result, "FAIL: the memfd's fd and its mapping are different files\n");
  } else if (!Same(data, 0, 100 * PAGE, 1) || !Same(data, 100 * PAGE + N, 256 * PAGE, 1) ||
             !IsZero(data + 256 * PAGE, 256 * PAGE) || !Same(data + 512 * PAGE, 0, 256 * PAGE, 2)) {
    snprintf(result, sizeof result, "FAIL: memfd content differs\n");
  } else if (!Same(anon, 0, 7 * PAGE + 3, 3) ||
             !Same(anon, 7 * PAGE + 3 + N, ANON_PAGES * PAGE, 3)) {
    snprintf(result, sizeof result, "FAIL: anonymous shared memory content differs\n");
  } else if (!Same(gone, 0, 2 * PAGE, 4) || !Same(gone, 2 * PAGE + N, 64 * PAGE, 4)) {
    snprintf(result, sizeof result, "FAIL: mapped-only memfd content differs\n");
  } else if (!Same(priv, 0, 8 * PAGE, 6) || !Same(priv, 8 * PAGE, 32 * PAGE, 5)) {
    snprintf(result, sizeof result, "FAIL: private mapping of a memfd differs\n");
  } else if (!Same(sealed, 0, 4 * PAGE, 7) || fcntl(sealed_fd, F_GET_SEALS) != F_SEAL_WRITE ||
             pwrite(sealed_fd, "x", 1, 0) != -1) {
    snprintf(result, sizeof result, "FAIL: write-sealed memfd content or seals differ\n");
  } else if (fstat(data_fd, &st) || st.st_size != (off_t)DATA_PAGES * PAGE) {
    snprintf(result, sizeof result, "FAIL: memfd size %ld\n", (long)st.st_size);
  } else if (fcntl(data_fd, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
    snprintf(result, sizeof result, "FAIL: seals %#x\n", fcntl(data_fd, F_GET_SEALS));
  } else if (ftruncate(data_fd, PAGE) == 0) {
    snprintf(result, sizeof result, "FAIL: a sealed memfd could shrink\n");
  } else if (lseek(data_fd, 0, SEEK_CUR) != 12345) {
    snprintf(result, sizeof result, "FAIL: memfd offset %ld\n", (long)lseek(data_fd, 0, SEEK_CUR));
  } else if (strcmp(link, "/memfd:lz-data (deleted)") != 0) {
    snprintf(result, sizeof result, "FAIL: memfd is now '%s'\n", link);
  }
  shmctl(sysv_id, IPC_RMID, NULL);
  f = fopen(argv[2], "w");
  fputs(result, f);
  fclose(f);
  return 0;
}
