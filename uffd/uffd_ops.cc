#include "uffd/uffd_ops.h"

#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#include <cerrno>

namespace lz {
namespace {

CopyOutcome Sort(int e) {
  switch (e) {
    case EEXIST:
      return CopyOutcome::kAlreadyMapped;
    case EAGAIN:
      return CopyOutcome::kRetry;
    case ESRCH:
      return CopyOutcome::kTargetGone;
    case ENOENT:
      // The range left its VMA while we copied (munmap/mremap racing); the UNMAP or REMAP
      // event that follows settles it.
      return CopyOutcome::kRetry;
    default:
      return CopyOutcome::kError;
  }
}

}  // namespace

CopyOutcome UffdCopy(int uffd, uint64_t dst, const void* src, uint64_t len, uint64_t* copied,
                     int* err, bool wake) {
  uffdio_copy c{dst, reinterpret_cast<uint64_t>(src), len, wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE, 0};
  // Invariant: src holds len bytes of decoded pages; dst is page-aligned inside a range
  // registered on this uffd.
  if (ioctl(uffd, UFFDIO_COPY, &c) == 0) {
    *copied = len;
    return CopyOutcome::kCopied;
  }
  *err = errno;
  *copied = c.copy > 0 ? static_cast<uint64_t>(c.copy) : 0;
  return Sort(errno);
}

CopyOutcome UffdZero(int uffd, uint64_t dst, uint64_t len, int* err, bool wake) {
  uffdio_zeropage z{{dst, len}, wake ? 0 : UFFDIO_ZEROPAGE_MODE_DONTWAKE, 0};
  // Invariant: dst is page-aligned inside a range registered on this uffd.
  if (ioctl(uffd, UFFDIO_ZEROPAGE, &z) == 0) {
    return CopyOutcome::kCopied;
  }
  *err = errno;
  return Sort(errno);
}

void UffdWake(int uffd, uint64_t dst, uint64_t len) {
  uffdio_range r{dst, len};
  ioctl(uffd, UFFDIO_WAKE, &r);
}

}  // namespace lz
