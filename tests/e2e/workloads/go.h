// The "go" signal of the workloads: SIGUSR1, blocked until a workload waits for it, so that
// it is never lost between a check and the wait.
#pragma once

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t go;

static void OnGo(int s) {
  (void)s;
  go = 1;
}

// Installs the handler and blocks SIGUSR1; children forked afterwards inherit both.
static void SetUpGo(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnGo;
  sigaction(SIGUSR1, &sa, NULL);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigprocmask(SIG_BLOCK, &block, NULL);
}

static void WaitForGo(void) {
  sigset_t none;
  sigemptyset(&none);
  while (!go) sigsuspend(&none);
}
