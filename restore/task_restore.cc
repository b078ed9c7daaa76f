// RestoreTaskState: everything after the address space, from outside: threads (clone3 with
// their tids), per-thread kernel state, signal handlers, timers, limits, pending signals,
// credentials, and at last the registers the dump saw.
#include <linux/capability.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>

#include "base/file_util.h"
#include "base/kernel_features.h"
#include "base/log.h"
#include "base/proc.h"
#include "restore/files_restore.h"
#include "restore/restore_internal.h"

namespace lz {
namespace {

struct KernelSigaction {
  uint64_t handler;
  uint64_t flags;
  uint64_t restorer;
  uint64_t mask;
};

// Scratch layout: [0, 4096) arguments, [4096, 8192) clone args and tid arrays.
constexpr size_t kArgOff = 0;
constexpr size_t kCloneOff = 4096;

Status CreateThreads(RestoredTask& t, RemoteThread& main) {
  const pb::TaskCore& core = t.img->core;
  for (int i = 1; i < core.threads_size(); i++) {
    pid_t tid = core.threads(i).tid();
    pid_t set_tid[1] = {tid};
    clone_args args{};
    args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
    args.set_tid = t.scratch + kCloneOff + sizeof(clone_args);
    args.set_tid_size = 1;
    LZ_TRY(WriteScratch(t, kCloneOff, &args, sizeof args));
    LZ_TRY(WriteScratch(t, kCloneOff + sizeof(clone_args), set_tid, sizeof set_tid));
    LZ_ASSIGN_OR_RETURN(long r, main.Syscall("clone3 thread", SYS_clone3, t.scratch + kCloneOff,
                                             sizeof(clone_args)));
    if (r != tid) {
      return Invalid("thread came back as tid " + std::to_string(r) + ", wanted " +
                     std::to_string(tid));
    }
    // PTRACE_O_TRACECLONE attached the new thread; it reports a stop of its own.
    LZ_TRY(WaitForStop(tid));
    t.threads.emplace_back(tid);
  }
  return Ok();
}

// The calls of one thread go in one batch (one ptrace stop): their arguments sit at distinct
// places of the scratch pages.
Status RestoreThreadKernelState(RestoredTask& t, RemoteThread& rt, const pb::ThreadCore& th) {
  constexpr size_t kStackOff = kArgOff;
  constexpr size_t kCommOff = kArgOff + 64;
  std::vector<RemoteCall> calls;
  if (th.robust_list() != 0) {
    calls.push_back(
        {"set_robust_list", SYS_set_robust_list, {th.robust_list(), th.robust_list_len()}});
  }
  if (th.rseq_addr() != 0) {
    calls.push_back({"rseq", SYS_rseq, {th.rseq_addr(), th.rseq_len(), 0, th.rseq_sig()}});
  }
  if (!(th.altstack_flags() & SS_DISABLE)) {
    // SS_ONSTACK is state, not a setting; SS_AUTODISARM is a setting and comes back.
    constexpr int kSsAutodisarm = static_cast<int>(1u << 31);  // linux/signal.h
    stack_t ss{reinterpret_cast<void*>(th.altstack_sp()), th.altstack_flags() & kSsAutodisarm,
               th.altstack_size()};
    LZ_TRY(WriteScratch(t, kStackOff, &ss, sizeof ss));
    calls.push_back({"sigaltstack", SYS_sigaltstack, {t.scratch + kStackOff, 0}});
  }
  calls.push_back({"set_tid_address", SYS_set_tid_address, {th.clear_child_tid()}});
  std::string comm = th.comm().substr(0, 15);
  LZ_TRY(WriteScratch(t, kCommOff, comm.c_str(), comm.size() + 1));
  calls.push_back({"prctl PR_SET_NAME", SYS_prctl, {PR_SET_NAME, t.scratch + kCommOff}});
  std::vector<long> results;
  LZ_TRY(rt.RunBatch(calls, t.scratch + kScratchBatchOff, &results));
  for (const std::string& si : th.pending_signals()) {
    siginfo_t info;
    std::memcpy(&info, si.data(), std::min(si.size(), sizeof info));
    LZ_TRY(WriteScratch(t, kArgOff, &info, sizeof info));
    LZ_TRY(rt.Syscall("rt_tgsigqueueinfo", SYS_rt_tgsigqueueinfo, t.pid, th.tid(), info.si_signo,
                      t.scratch + kArgOff));
  }
  return Ok();
}

Status RestoreSignals(RestoredTask& t, RemoteThread& main) {
  const pb::TaskCore& core = t.img->core;
  std::vector<RemoteCall> calls;  // one batch: each action at its own place in the scratch
  // Reset what lazarus's own handlers left, then install the dumped ones.
  for (int sig = 1; sig <= 64; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) {
      continue;
    }
    KernelSigaction sa{0, 0, 0, 0};
    for (const pb::SigAction& d : core.sigactions()) {
      if (static_cast<int>(d.signo()) == sig) {
        sa = {d.handler(), d.flags(), d.restorer(), d.mask()};
      }
    }
    // The task inherited lazarus's dispositions: where both are the default, there is nothing
    // to do (each remote syscall costs two ptrace stops).
    struct sigaction ours;
    if (sa.handler == 0 && sa.flags == 0 && sa.mask == 0 && ::sigaction(sig, nullptr, &ours) == 0 &&
        ours.sa_handler == SIG_DFL && ours.sa_flags == 0) {
      continue;
    }
    size_t off = kArgOff + static_cast<size_t>(sig) * sizeof sa;  // 65 * 32 < 4096
    LZ_TRY(WriteScratch(t, off, &sa, sizeof sa));
    calls.push_back(
        {"rt_sigaction", SYS_rt_sigaction, {static_cast<uint64_t>(sig), t.scratch + off, 0, 8}});
  }
  std::vector<long> results;
  LZ_TRY(main.RunBatch(calls, t.scratch + kScratchBatchOff, &results));
  for (const pb::Itimer& it : core.itimers()) {
    itimerval tv{};
    tv.it_interval.tv_sec = it.interval_us() / 1000000;
    tv.it_interval.tv_usec = it.interval_us() % 1000000;
    tv.it_value.tv_sec = it.value_us() / 1000000;
    tv.it_value.tv_usec = it.value_us() % 1000000;
    LZ_TRY(WriteScratch(t, kArgOff, &tv, sizeof tv));
    LZ_TRY(main.Syscall("setitimer", SYS_setitimer, it.which(), t.scratch + kArgOff, 0));
  }
  for (const std::string& si : core.shared_pending()) {
    siginfo_t info;
    std::memcpy(&info, si.data(), std::min(si.size(), sizeof info));
    LZ_TRY(WriteScratch(t, kArgOff, &info, sizeof info));
    LZ_TRY(main.Syscall("rt_sigqueueinfo", SYS_rt_sigqueueinfo, t.pid, info.si_signo,
                        t.scratch + kArgOff));
  }
  return Ok();
}

// timer_create timers with their ids: with PR_TIMER_CREATE_RESTORE_IDS on, the kernel takes
// the id from *timerid instead of choosing one. Re-armed relative to now with the time left.
Status RestorePosixTimers(RestoredTask& t, RemoteThread& main) {
  const auto& timers = t.img->core.posix_timers();
  if (timers.empty()) {
    return Ok();
  }
  LZ_ASSIGN_OR_RETURN(
      long on, main.RawSyscall(SYS_prctl, kPrTimerCreateRestoreIds, kPrTimerCreateRestoreIdsOn));
  if (on < 0) {
    return Fail(static_cast<int>(-on), "restore POSIX timers",
                "this kernel cannot create a timer with a given id (PR_TIMER_CREATE_RESTORE_IDS, "
                "Linux 6.15)");
  }
  constexpr size_t kIdOff = kArgOff + sizeof(sigevent);
  constexpr size_t kSpecOff = kIdOff + 8;
  for (const pb::PosixTimer& pt : timers) {
    sigevent se{};
    se.sigev_notify = pt.notify();
    se.sigev_signo = pt.signo();
    se.sigev_value.sival_ptr = reinterpret_cast<void*>(pt.sigval());
    se._sigev_un._tid = pt.notify_tid();
    int id = pt.id();
    itimerspec its{};
    its.it_value.tv_sec = static_cast<time_t>(pt.value_ns() / 1000000000);
    its.it_value.tv_nsec = static_cast<long>(pt.value_ns() % 1000000000);
    its.it_interval.tv_sec = static_cast<time_t>(pt.interval_ns() / 1000000000);
    its.it_interval.tv_nsec = static_cast<long>(pt.interval_ns() % 1000000000);
    LZ_TRY(WriteScratch(t, kArgOff, &se, sizeof se));
    LZ_TRY(WriteScratch(t, kIdOff, &id, sizeof id));
    LZ_TRY(WriteScratch(t, kSpecOff, &its, sizeof its));
    std::string what = "timer " + std::to_string(id);
    LZ_TRY_CTX(main.Syscall("timer_create", SYS_timer_create, pt.clockid(), t.scratch + kArgOff,
                            t.scratch + kIdOff),
               what);
    if (pt.value_ns() != 0) {
      LZ_TRY_CTX(main.Syscall("timer_settime", SYS_timer_settime, id, 0, t.scratch + kSpecOff, 0),
                 what);
    }
  }
  LZ_TRY(main.Syscall("prctl PR_TIMER_CREATE_RESTORE_IDS", SYS_prctl, kPrTimerCreateRestoreIds,
                      kPrTimerCreateRestoreIdsOff));
  return Ok();
}

// One batch: every limit (each at its own place in the scratch), personality, subreaper.
Status RestoreProcessMisc(RestoredTask& t, RemoteThread& main) {
  const pb::TaskCore& core = t.img->core;
  std::vector<RemoteCall> calls;
  for (int i = 0; i < core.rlimits_size(); i++) {
    const pb::Rlimit& l = core.rlimits(i);
    rlimit64 r{l.cur(), l.max()};
    size_t off = kArgOff + static_cast<size_t>(i) * sizeof r;
    LZ_TRY(WriteScratch(t, off, &r, sizeof r));
    // Raising a hard limit needs CAP_SYS_RESOURCE, which this root may lack: only a warning.
    calls.push_back({"prlimit64", SYS_prlimit64, {0, l.resource(), t.scratch + off, 0}, true});
  }
  calls.push_back({"personality", SYS_personality, {core.personality()}});
  if (core.child_subreaper()) {
    calls.push_back({"prctl PR_SET_CHILD_SUBREAPER", SYS_prctl, {PR_SET_CHILD_SUBREAPER, 1}});
  }
  std::vector<long> results;
  LZ_TRY(main.RunBatch(calls, t.scratch + kScratchBatchOff, &results));
  for (int i = 0; i < core.rlimits_size(); i++) {
    const pb::Rlimit& l = core.rlimits(i);
    if (long rc = results[static_cast<size_t>(i)]; rc < 0) {
      LZ_WARN("pid %d: cannot restore rlimit %u (%lu/%lu): %s", t.pid, l.resource(), l.cur(),
              l.max(), std::strerror(static_cast<int>(-rc)));
    }
  }
  return Ok();
}

// Whether `c` is exactly what this lazarus runs with (then nothing needs changing).
bool SameAsOurs(const pb::Creds& c) {
  auto text = ReadFileToString("/proc/self/status");
  if (!text) {
    return false;
  }
  auto st = ParseStatus(*text);
  if (!st) {
    return false;
  }
  std::vector<uint32_t> groups(c.groups().begin(), c.groups().end());
  return st->uid[0] == c.uid() && st->uid[1] == c.euid() && st->uid[2] == c.suid() &&
         st->uid[3] == c.fsuid() && st->gid[0] == c.gid() && st->gid[1] == c.egid() &&
         st->gid[2] == c.sgid() && st->gid[3] == c.fsgid() && st->groups == groups &&
         st->cap_inh == c.cap_inh() && st->cap_prm == c.cap_prm() && st->cap_eff == c.cap_eff() &&
         st->cap_bnd == c.cap_bnd() && st->cap_amb == c.cap_amb() && c.securebits() == 0 &&
         !c.no_new_privs();
}

Status Capset(RestoredTask& t, RemoteThread& rt, uint64_t eff, uint64_t prm, uint64_t inh) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {
      {static_cast<__u32>(eff), static_cast<__u32>(prm), static_cast<__u32>(inh)},
      {static_cast<__u32>(eff >> 32), static_cast<__u32>(prm >> 32),
       static_cast<__u32>(inh >> 32)}};
  LZ_TRY(WriteScratch(t, kArgOff, &hdr, sizeof hdr));
  LZ_TRY(WriteScratch(t, kArgOff + 64, data, sizeof data));
  LZ_TRY(rt.Syscall("capset", SYS_capset, t.scratch + kArgOff, t.scratch + kArgOff + 64));
  return Ok();
}

// Credentials are per thread; each thread sets its own, last, once nothing needs privilege.
// Order matters: capabilities must survive the uid change (SECBIT_NO_SETUID_FIXUP), the bounding
// set and securebits need CAP_SETPCAP while it is still effective, and capabilities are only
// ever narrowed from there.
Status RestoreCreds(RestoredTask& t, RemoteThread& rt) {
  const pb::Creds& c = t.img->core.creds();
  if (SameAsOurs(c)) {
    return Ok();
  }
  constexpr uint64_t kSetpcap = uint64_t{1} << CAP_SETPCAP;
  constexpr uint64_t kNoSetuidFixup = 1u << 2;  // SECBIT_NO_SETUID_FIXUP
  LZ_TRY(rt.Syscall("prctl PR_SET_SECUREBITS", SYS_prctl, PR_SET_SECUREBITS, kNoSetuidFixup));
  for (int cap = 0; cap < 64; cap++) {
    if (!(c.cap_bnd() >> cap & 1)) {
      LZ_ASSIGN_OR_RETURN(long r, rt.RawSyscall(SYS_prctl, PR_CAPBSET_DROP, cap));
      (void)r;  // EINVAL past the last capability this kernel knows
    }
  }
  std::vector<gid_t> groups(c.groups().begin(), c.groups().end());
  LZ_TRY(WriteScratch(t, kArgOff, groups.data(), groups.size() * sizeof(gid_t)));
  LZ_TRY(rt.Syscall("setgroups", SYS_setgroups, groups.size(), t.scratch + kArgOff));
  LZ_TRY(rt.Syscall("setresgid", SYS_setresgid, c.gid(), c.egid(), c.sgid()));
  LZ_TRY(rt.RawSyscall(SYS_setfsgid, c.fsgid()));
  LZ_TRY(rt.Syscall("setresuid", SYS_setresuid, c.uid(), c.euid(), c.suid()));
  LZ_TRY(rt.RawSyscall(SYS_setfsuid, c.fsuid()));
  LZ_TRY(Capset(t, rt, c.cap_eff() | kSetpcap, c.cap_prm() | kSetpcap, c.cap_inh()));
  LZ_TRY(rt.Syscall("prctl PR_SET_SECUREBITS", SYS_prctl, PR_SET_SECUREBITS, c.securebits()));
  LZ_TRY(Capset(t, rt, c.cap_eff(), c.cap_prm(), c.cap_inh()));
  for (int cap = 0; cap < 64; cap++) {
    if (c.cap_amb() >> cap & 1) {
      LZ_TRY(
          rt.Syscall("prctl PR_CAP_AMBIENT", SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap));
    }
  }
  if (c.no_new_privs()) {
    LZ_TRY(rt.Syscall("prctl PR_SET_NO_NEW_PRIVS", SYS_prctl, PR_SET_NO_NEW_PRIVS, 1));
  }
  return Ok();
}

// The kernel's internal syscall restart codes (include/linux/errno.h), as a thread stopped in
// a syscall holds them in rax.
constexpr int64_t kErestartNohand = 514;
constexpr int64_t kErestartRestartblock = 516;

Status SetFinalRegisters(pid_t tid, const pb::ThreadCore& th) {
  Regs regs;
  if (th.gpregs().size() != sizeof regs) {
    return Invalid("thread " + std::to_string(tid) + ": register image has the wrong size");
  }
  std::memcpy(&regs, th.gpregs().data(), sizeof regs);
  // As dumped, -ERESTART* code and orig_rax included: the detach that follows sets
  // TIF_SIGPENDING, so the kernel's own restart logic runs before the thread returns to user
  // mode (see ParasiteSession::Finish). But a syscall that left its rest to a restart block
  // (poll, nanosleep, a futex wait with a timeout) would run restart_syscall in a task whose
  // restart block is empty, which fails with EINTR: it runs again from the start instead, with
  // the arguments it was called with (a timeout counts again from the restore). Unless it was
  // restart_syscall itself (a task stopped twice in one sleep, e.g. dumped again after a
  // dump -R): the syscall it continued is not known, and it returns EINTR, as in CRIU.
  if (static_cast<int64_t>(regs.orig_rax) >= 0 && regs.orig_rax != SYS_restart_syscall &&
      static_cast<int64_t>(regs.rax) == -kErestartRestartblock) {
    regs.rax = static_cast<uint64_t>(-kErestartNohand);
  }
  LZ_TRY(SetRegs(tid, regs));
  LZ_TRY(SetXstate(tid, th.xsave()));
  return SetSigmask(tid, th.blocked());
}

// POSIX locks belong to the process, and a close of any of its descriptors of the file drops
// them: taken last, from inside the task, through the descriptor it held them by.
Status RestorePosixLocks(RestoredTask& t, RemoteThread& main) {
  for (const pb::OpenFile& f : t.img->fds.files()) {
    for (const pb::FileLock& l : f.locks()) {
      if (l.kind() != pb::LOCK_POSIX) {
        continue;
      }
      struct flock fl = PosixRange(l);
      LZ_TRY(WriteScratch(t, kArgOff, &fl, sizeof fl));
      int fd = img::FirstFdOf(t.img->fds, f.id());
      auto r = main.Syscall("fcntl F_SETLK", SYS_fcntl, fd, F_SETLK, t.scratch + kArgOff);
      if (!r) {
        return r.error().code == EAGAIN
                   ? Invalid("the lock on " + f.path() + " is held by another process now")
                   : Unexpected{r.error()};
      }
    }
  }
  return Ok();
}

}  // namespace

Status RestoreTaskState(RestoredTask& t) {
  const pb::TaskCore& core = t.img->core;
  RemoteThread main(t.pid, t.syscall_insn);
  // Signals stay blocked until the final mask is set, so that queued ones wait.
  LZ_TRY(SetSigmask(t.pid, ~uint64_t{0}));
  LZ_TRY(CreateThreads(t, main));
  LZ_TRY(RestoreSignals(t, main));
  LZ_TRY(RestoreProcessMisc(t, main));
  LZ_TRY(RestorePosixTimers(t, main));
  for (int i = 0; i < core.threads_size(); i++) {
    RemoteThread rt(core.threads(i).tid(), t.syscall_insn);
    LZ_TRY(SetSigmask(rt.tid(), ~uint64_t{0}));
    LZ_TRY_CTX(RestoreThreadKernelState(t, rt, core.threads(i)),
               "thread " + std::to_string(rt.tid()));
  }
  for (int i = 0; i < core.threads_size(); i++) {
    RemoteThread rt(core.threads(i).tid(), t.syscall_insn);
    LZ_TRY_CTX(RestoreCreds(t, rt), "credentials of thread " + std::to_string(rt.tid()));
  }
  // A change of credentials clears both of these, so they come after.
  LZ_TRY(main.Syscall("prctl PR_SET_DUMPABLE", SYS_prctl, PR_SET_DUMPABLE, core.dumpable()));
  LZ_TRY(main.Syscall("prctl PR_SET_PDEATHSIG", SYS_prctl, PR_SET_PDEATHSIG, core.pdeath_sig()));
  LZ_TRY(RestorePosixLocks(t, main));
  LZ_TRY(main.Syscall("munmap scratch", SYS_munmap, t.scratch, kScratchSize));
  for (int i = 0; i < core.threads_size(); i++) {
    LZ_TRY(SetFinalRegisters(core.threads(i).tid(), core.threads(i)));
  }
  return Ok();
}

}  // namespace lz
