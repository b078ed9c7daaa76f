#include "parasite/ptrace.h"

#include <elf.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "base/clock.h"
#include "base/held_signals.h"
#include "base/proc.h"
#include "parasite/remote.h"

namespace lz {
namespace {

std::string Tid(pid_t tid) { return "tid " + std::to_string(tid); }

}  // namespace

PtraceAttachment& PtraceAttachment::operator=(PtraceAttachment&& o) noexcept {
  if (this != &o) {
    Detach();
    tid_ = o.tid_;
    o.tid_ = -1;
  }
  return *this;
}

void PtraceAttachment::Detach() {
  if (tid_ > 0) {
    ::ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
    tid_ = -1;
  }
}

Result<int> WaitForStop(pid_t tid) {
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(tid, &status, __WALL);
    if (r < 0 && errno == EINTR) {
      continue;
    }
    if (r < 0) {
      return FailErrno("waitpid", Tid(tid));
    }
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      return Fail(ESRCH, "wait for stop", Tid(tid) + " exited");
    }
    return status;
  }
}

namespace {

// WaitForStop with a deadline (UINT64_MAX: none, but held stop signals still end it). SIGCHLD
// is blocked and at its default action meanwhile (not ignored, no SA_NOCLDSTOP, whatever
// lazarus inherited) so that a stop's SIGCHLD is queued and ends the wait at once.
Result<int> WaitForStopUntil(pid_t tid, uint64_t deadline_ns) {
  if (deadline_ns == 0) {
    return WaitForStop(tid);
  }
  sigset_t chld;
  sigset_t old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &chld, &old);
  struct sigaction dfl {};
  struct sigaction old_action {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &dfl, &old_action);
  Result<int> result = Fail(ETIMEDOUT, "wait for stop", Tid(tid));
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(tid, &status, __WALL | WNOHANG);
    if (r == tid) {
      result = WIFEXITED(status) || WIFSIGNALED(status)
                   ? Fail(ESRCH, "wait for stop", Tid(tid) + " exited")
                   : Result<int>(status);
      break;
    }
    if (r < 0 && errno != EINTR) {
      result = FailErrno("waitpid", Tid(tid));
      break;
    }
    uint64_t now = MonotonicNs();
    if (now >= deadline_ns) {
      result =
          Fail(ETIMEDOUT, "freeze",
               Tid(tid) + " did not stop in time (state " + StateIn(ProcPath(tid, "stat")) + ")");
      break;
    }
    if (Status st = CheckInterrupted("freezing the tree"); !st) {
      result = Unexpected{st.error()};
      break;
    }
    uint64_t wait = std::min<uint64_t>(deadline_ns - now, 10'000'000);  // held signals: polled
    timespec ts{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    (void)sigtimedwait(&chld, nullptr, &ts);
  }
  sigaction(SIGCHLD, &old_action, nullptr);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return result;
}

}  // namespace

Result<PtraceAttachment> SeizeAndStop(pid_t tid, long options, uint64_t deadline_ns) {
  if (::ptrace(PTRACE_SEIZE, tid, nullptr, options) != 0) {
    return FailErrno("ptrace seize", Tid(tid));
  }
  PtraceAttachment att(tid);
  if (::ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
    return FailErrno("ptrace interrupt", Tid(tid));
  }
  for (;;) {
    LZ_ASSIGN_OR_RETURN(int status, WaitForStopUntil(tid, deadline_ns));
    if (status >> 16 == PTRACE_EVENT_STOP) {
      return att;
    }
    // A signal-delivery stop raced with the interrupt: let the signal be delivered as it
    // would have been (it stays pending if blocked) and wait for the interrupt's stop.
    int sig = WIFSTOPPED(status) ? WSTOPSIG(status) : 0;
    if (::ptrace(PTRACE_CONT, tid, nullptr, sig) != 0) {
      return FailErrno("ptrace cont", Tid(tid));
    }
  }
}

Result<Regs> GetRegs(pid_t tid) {
  Regs r;
  if (::ptrace(PTRACE_GETREGS, tid, nullptr, &r) != 0) {
    return FailErrno("ptrace getregs", Tid(tid));
  }
  return r;
}

Status SetRegs(pid_t tid, const Regs& regs) {
  if (::ptrace(PTRACE_SETREGS, tid, nullptr, &regs) != 0) {
    return FailErrno("ptrace setregs", Tid(tid));
  }
  return Ok();
}

Result<std::string> GetXstate(pid_t tid) {
  std::string buf(64 << 10, '\0');
  iovec iov{buf.data(), buf.size()};
  if (::ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &iov) != 0) {
    return FailErrno("ptrace getregset xstate", Tid(tid));
  }
  buf.resize(iov.iov_len);
  return buf;
}

Status SetXstate(pid_t tid, const std::string& xstate) {
  std::string copy = xstate;
  iovec iov{copy.data(), copy.size()};
  if (::ptrace(PTRACE_SETREGSET, tid, NT_X86_XSTATE, &iov) != 0) {
    return FailErrno("ptrace setregset xstate", Tid(tid));
  }
  return Ok();
}

Result<uint64_t> GetSigmask(pid_t tid) {
  uint64_t mask = 0;
  if (::ptrace(PTRACE_GETSIGMASK, tid, sizeof mask, &mask) != 0) {
    return FailErrno("ptrace getsigmask", Tid(tid));
  }
  return mask;
}

Status SetSigmask(pid_t tid, uint64_t mask) {
  if (::ptrace(PTRACE_SETSIGMASK, tid, sizeof mask, &mask) != 0) {
    return FailErrno("ptrace setsigmask", Tid(tid));
  }
  return Ok();
}

std::optional<uint64_t> RseqAbortTarget(uint64_t ip, const RseqCs& cs) {
  // As the kernel does on preemption: inside [start_ip, start_ip + post_commit_offset), the
  // sequence restarts from its abort handler. Version 0 is the only one defined.
  if (cs.version != 0 || ip < cs.start_ip || ip - cs.start_ip >= cs.post_commit_offset) {
    return std::nullopt;
  }
  return cs.abort_ip;
}

Result<std::optional<uint64_t>> RseqAbortTargetOf(pid_t tid, const RseqConfig& rseq, uint64_t ip) {
  if (rseq.addr == 0) {
    return std::optional<uint64_t>();
  }
  constexpr uint64_t kRseqCsOffset = 8;  // struct rseq: cpu_id_start, cpu_id, rseq_cs, ...
  uint64_t cs_addr = 0;
  LZ_TRY(
      ReadRemote(tid, rseq.addr + kRseqCsOffset, std::as_writable_bytes(std::span(&cs_addr, 1))));
  if (cs_addr == 0) {
    return std::optional<uint64_t>();
  }
  RseqCs cs;
  LZ_TRY(ReadRemote(tid, cs_addr, std::as_writable_bytes(std::span(&cs, 1))));
  return RseqAbortTarget(ip, cs);
}

Result<RseqConfig> GetRseqConfig(pid_t tid) {
  __ptrace_rseq_configuration conf{};
  long n = ::ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, sizeof conf, &conf);
  if (n < 0) {
    return FailErrno("ptrace get_rseq_configuration", Tid(tid));
  }
  return RseqConfig{conf.rseq_abi_pointer, conf.rseq_abi_size, conf.flags, conf.signature};
}

Result<std::vector<std::string>> PeekPendingSignals(pid_t tid, bool shared) {
  std::vector<std::string> out;
  for (uint64_t off = 0;; off++) {
    __ptrace_peeksiginfo_args args{
        off, shared ? static_cast<uint32_t>(PTRACE_PEEKSIGINFO_SHARED) : 0u, 1};
    siginfo_t si;
    long n = ::ptrace(PTRACE_PEEKSIGINFO, tid, &args, &si);
    if (n < 0) {
      return FailErrno("ptrace peeksiginfo", Tid(tid));
    }
    if (n == 0) {
      return out;
    }
    out.emplace_back(reinterpret_cast<const char*>(&si), sizeof si);
  }
}

}  // namespace lz
