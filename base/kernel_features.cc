#include "base/kernel_features.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/pagemap_scan.h"
#include "base/uffd_abi.h"

namespace lz {
namespace {

std::string Errno(int e) { return std::strerror(e); }

// A child that sleeps until killed; the probes look at it from outside.
class ProbeChild {
 public:
  ProbeChild() {
    pid_ = fork();
    if (pid_ == 0) {
      for (;;) {
        pause();
      }
    }
  }
  ~ProbeChild() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

Feature ProbePtrace(const ProbeChild& c) {
  Feature f{"ptrace_seize", false, true, ""};
  if (ptrace(PTRACE_SEIZE, c.pid(), nullptr, PTRACE_O_TRACESYSGOOD) != 0) {
    f.detail = "PTRACE_SEIZE: " + Errno(errno);
    return f;
  }
  ptrace(PTRACE_INTERRUPT, c.pid(), nullptr, nullptr);
  int status;
  waitpid(c.pid(), &status, __WALL);
  f.present = (status >> 16) == PTRACE_EVENT_STOP;
  f.detail = f.present ? "seize + interrupt" : "no PTRACE_EVENT_STOP";
  ptrace(PTRACE_DETACH, c.pid(), nullptr, nullptr);
  return f;
}

Feature ProbeVmReadv(const ProbeChild& c) {
  Feature f{"process_vm_readv", false, true, ""};
  static int probe_word = 42;
  int out = 0;
  iovec local{&out, sizeof out}, remote{&probe_word, sizeof probe_word};
  ssize_t n = process_vm_readv(c.pid(), &local, 1, &remote, 1, 0);
  f.present = n == sizeof out && out == 42;
  f.detail = f.present ? "" : Errno(errno);
  return f;
}

std::vector<Feature> ProbePidfd(const ProbeChild& c) {
  Feature open{"pidfd_open", false, true, ""};
  Feature getfd{"pidfd_getfd", false, true, ""};
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, c.pid(), 0));
  if (pidfd < 0) {
    open.detail = Errno(errno);
    getfd.detail = "needs pidfd_open";
    return {open, getfd};
  }
  open.present = true;
  int fd = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, 0, 0));
  getfd.present = fd >= 0;
  getfd.detail = fd >= 0 ? "" : Errno(errno);
  if (fd >= 0) close(fd);
  close(pidfd);
  return {open, getfd};
}

Feature ProbeClone3SetTid() {
  Feature f{"clone3_set_tid", false, true, ""};
  // set_tid = 1 in a new pid namespace is always free, so the probe cannot collide.
  pid_t tid = 1;
  clone_args args{};
  args.flags = CLONE_NEWPID;
  args.exit_signal = SIGCHLD;
  args.set_tid = reinterpret_cast<uint64_t>(&tid);
  args.set_tid_size = 1;
  long r = syscall(SYS_clone3, &args, sizeof args);
  if (r == 0) {
    _exit(getpid() == 1 ? 0 : 1);
  }
  if (r < 0) {
    f.detail = Errno(errno);
    return f;
  }
  int status;
  waitpid(static_cast<pid_t>(r), &status, 0);
  f.present = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return f;
}

std::vector<Feature> ProbeUffd(unsigned long long* features_out) {
  std::vector<Feature> out;
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  Feature base{"userfaultfd", fd >= 0, true, fd >= 0 ? "" : Errno(errno)};
  uffdio_api api{};
  if (fd >= 0) {
    api.api = UFFD_API;
    api.features = 0;
    if (ioctl(fd, UFFDIO_API, &api) != 0) {
      base.present = false;
      base.detail = "UFFDIO_API: " + Errno(errno);
    }
    close(fd);
  }
  out.push_back(base);
  *features_out = api.features;
  static const struct {
    const char* name;
    unsigned long long bit;
    bool required;
  } kBits[] = {
      {"uffd_event_fork", UFFD_FEATURE_EVENT_FORK, true},
      {"uffd_event_remap", UFFD_FEATURE_EVENT_REMAP, true},
      {"uffd_event_remove", UFFD_FEATURE_EVENT_REMOVE, true},
      {"uffd_event_unmap", UFFD_FEATURE_EVENT_UNMAP, true},
      {"uffd_missing_shmem", UFFD_FEATURE_MISSING_SHMEM, false},
      {"uffd_wp", UFFD_FEATURE_PAGEFAULT_FLAG_WP, false},
      {"uffd_wp_async", kUffdFeatureWpAsync, false},
      {"uffd_minor_shmem", UFFD_FEATURE_MINOR_SHMEM, false},
  };
  for (const auto& b : kBits) {
    bool has = base.present && (api.features & b.bit) != 0;
    out.push_back({b.name, has, b.required, has ? "" : "not offered by UFFDIO_API"});
  }
  return out;
}

Feature ProbeIoUring() {
  Feature f{"io_uring", false, true, ""};
  io_uring ring;
  int r = io_uring_queue_init(8, &ring, 0);
  if (r < 0) {
    f.detail = "io_uring_setup: " + Errno(-r);
    return f;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  std::string missing;
  if (probe == nullptr) {
    missing = "probe";
  } else {
    static const struct {
      int op;
      const char* name;
    } kOps[] = {{IORING_OP_READ, "READ"},
                {IORING_OP_POLL_ADD, "POLL_ADD"},
                {IORING_OP_READV, "READV"},
                {IORING_OP_RECVMSG, "RECVMSG"},
                {IORING_OP_ACCEPT, "ACCEPT"}};
    for (const auto& op : kOps) {
      if (!io_uring_opcode_supported(probe, op.op)) {
        missing += std::string(missing.empty() ? "" : ",") + op.name;
      }
    }
    io_uring_free_probe(probe);
  }
  io_uring_queue_exit(&ring);
  f.present = missing.empty();
  f.detail = f.present ? "READ POLL_ADD READV RECVMSG ACCEPT" : "missing ops: " + missing;
  return f;
}

Feature ProbePagemapScan() {
  Feature f{"pagemap_scan", false, false, ""};
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    f.detail = "open pagemap: " + Errno(errno);
    return f;
  }
  void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  static_cast<volatile char*>(page)[0] = 1;
  PageRegion regions[4];
  PmScanArg arg{};
  arg.size = sizeof arg;
  arg.start = reinterpret_cast<uint64_t>(page);
  arg.end = arg.start + 4096;
  arg.vec = reinterpret_cast<uint64_t>(regions);
  arg.vec_len = 4;
  arg.category_mask = kPageIsPresent;
  arg.return_mask = kPageIsPresent;
  long r = ioctl(fd, kPagemapScan, &arg);
  f.present = r == 1 && regions[0].start == arg.start;
  f.detail = f.present ? "" : (r < 0 ? Errno(errno) : "unexpected result");
  munmap(page, 4096);
  close(fd);
  return f;
}

Feature ProbeSoftDirty() {
  Feature f{"soft_dirty", false, false, ""};
  // A freshly written page carries the soft-dirty bit (55) only where the kernel has it.
  auto* page = static_cast<volatile char*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  page[0] = 1;
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  uint64_t e = 0;
  if (fd >= 0 && pread(fd, &e, 8, reinterpret_cast<uint64_t>(page) / 4096 * 8) == 8) {
    f.present = (e >> 55) & 1;
  }
  if (fd >= 0) close(fd);
  munmap(const_cast<char*>(page), 4096);
  f.detail = f.present ? ""
                       : "pagemap bit 55 never set (CONFIG_MEM_SOFT_DIRTY off); lazarus uses "
                         "uffd-wp and PAGEMAP_SCAN";
  return f;
}

Feature ProbeTimerRestoreIds() {
  // Asking for the current setting changes nothing; EINVAL means the kernel lacks it (< 6.15).
  Feature f{"timer_restore_ids", false, false, ""};
  long r = prctl(kPrTimerCreateRestoreIds, kPrTimerCreateRestoreIdsGet, 0, 0, 0);
  f.present = r >= 0;
  f.detail = f.present ? ""
                       : "prctl PR_TIMER_CREATE_RESTORE_IDS: " + Errno(errno) +
                             "; POSIX timers cannot be restored with their ids";
  return f;
}

}  // namespace

KernelFeatures KernelFeatures::Probe() {
  KernelFeatures k;
  {
    ProbeChild child;
    k.features_.push_back(ProbePtrace(child));
    k.features_.push_back(ProbeVmReadv(child));
    for (Feature& f : ProbePidfd(child)) {
      k.features_.push_back(std::move(f));
    }
  }
  k.features_.push_back(ProbeClone3SetTid());
  for (Feature& f : ProbeUffd(&k.uffd_features_)) {
    k.features_.push_back(std::move(f));
  }
  k.features_.push_back(ProbeIoUring());
  k.features_.push_back(ProbePagemapScan());
  k.features_.push_back(ProbeSoftDirty());
  k.features_.push_back(ProbeTimerRestoreIds());
  return k;
}

KernelFeatures KernelFeatures::ProbeForLazyPages() {
  KernelFeatures k;
  for (Feature& f : ProbeUffd(&k.uffd_features_)) {
    k.features_.push_back(std::move(f));
  }
  k.features_.push_back(ProbeIoUring());
  return k;
}

const Feature* KernelFeatures::Find(const std::string& name) const {
  for (const Feature& f : features_) {
    if (f.name == name) {
      return &f;
    }
  }
  return nullptr;
}

bool KernelFeatures::RequiredPresent() const {
  for (const Feature& f : features_) {
    if (f.required && !f.present) {
      return false;
    }
  }
  return true;
}

}  // namespace lz

namespace lz {

Status RequireFeatures(const KernelFeatures& k, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    const Feature* f = k.Find(n);
    if (f == nullptr || !f->present) {
      return Invalid(std::string("this kernel lacks ") + n +
                     (f != nullptr && !f->detail.empty() ? " (" + f->detail + ")" : "") +
                     "; see 'lazarus check'");
    }
  }
  return Ok();
}

}  // namespace lz
