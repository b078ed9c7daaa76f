// The userfaultfd ioctls the daemon uses, with their results sorted in one place.
#pragma once

#include <cstdint>

namespace lz {

enum class CopyOutcome {
  kCopied,         // the pages are in place and the waiters woken
  kAlreadyMapped,  // EEXIST: something is already there (copied before, or zero-filled)
  kRetry,          // EAGAIN/ENOENT: the address space is changing; try later
  kTargetGone,     // ESRCH: the task's mm is gone
  kError,          // anything else: errno kept by the caller
};

/// UFFDIO_COPY of `len` bytes at `dst` in the task behind `uffd`. On a partial copy,
/// `*copied` tells how far it got.
/// With `wake` false (UFFDIO_COPY_MODE_DONTWAKE) the caller wakes the range itself later.
CopyOutcome UffdCopy(int uffd, uint64_t dst, const void* src, uint64_t len, uint64_t* copied,
                     int* err, bool wake = true);
/// UFFDIO_ZEROPAGE: map the zero page over [dst, dst + len). With `wake` false
/// (UFFDIO_ZEROPAGE_MODE_DONTWAKE) nothing waiting there is woken.
CopyOutcome UffdZero(int uffd, uint64_t dst, uint64_t len, int* err, bool wake = true);
/// UFFDIO_WAKE: wake threads waiting on [dst, dst + len).
void UffdWake(int uffd, uint64_t dst, uint64_t len);

}  // namespace lz
