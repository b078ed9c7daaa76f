// DumpCore: everything per-process and per-thread that is not memory or files.
#include <linux/capability.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "base/file_util.h"
#include "base/log.h"
#include "base/proc.h"
#include "dump/task_dump.h"

namespace lz {
namespace {

// The kernel's struct sigaction for rt_sigaction on x86-64.
struct KernelSigaction {
  uint64_t handler;
  uint64_t flags;
  uint64_t restorer;
  uint64_t mask;
};
static_assert(sizeof(KernelSigaction) == 32);

template <class T>
Result<T> ReadScratchAs(ParasiteSession& p) {
  T v;
  LZ_TRY(p.ReadScratch(std::as_writable_bytes(std::span(&v, 1))));
  return v;
}

Status DumpSigactions(ParasiteSession& p, pb::TaskCore* core) {
  for (int sig = 1; sig <= 64; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) {
      continue;
    }
    LZ_TRY(p.leader().Syscall("rt_sigaction", SYS_rt_sigaction, sig, 0, p.scratch(), 8));
    LZ_ASSIGN_OR_RETURN(KernelSigaction sa, ReadScratchAs<KernelSigaction>(p));
    if (sa.handler == 0 && sa.flags == 0 && sa.mask == 0) {
      continue;  // default disposition: nothing to restore
    }
    pb::SigAction* out = core->add_sigactions();
    out->set_signo(sig);
    out->set_handler(sa.handler);
    out->set_flags(sa.flags);
    out->set_restorer(sa.restorer);
    out->set_mask(sa.mask);
  }
  return Ok();
}

Status DumpProcessMisc(ParasiteSession& p, pb::TaskCore* core) {
  for (int which : {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF}) {
    LZ_TRY(p.leader().Syscall("getitimer", SYS_getitimer, which, p.scratch()));
    LZ_ASSIGN_OR_RETURN(itimerval tv, ReadScratchAs<itimerval>(p));
    if (tv.it_value.tv_sec == 0 && tv.it_value.tv_usec == 0) {
      continue;
    }
    pb::Itimer* t = core->add_itimers();
    t->set_which(which);
    t->set_interval_us(tv.it_interval.tv_sec * 1000000ull + tv.it_interval.tv_usec);
    t->set_value_us(tv.it_value.tv_sec * 1000000ull + tv.it_value.tv_usec);
  }
  LZ_ASSIGN_OR_RETURN(long dumpable, p.leader().Syscall("prctl", SYS_prctl, PR_GET_DUMPABLE));
  core->set_dumpable(static_cast<uint32_t>(dumpable));
  LZ_TRY(p.leader().Syscall("prctl", SYS_prctl, PR_GET_PDEATHSIG, p.scratch()));
  LZ_ASSIGN_OR_RETURN(int pdeath, ReadScratchAs<int>(p));
  core->set_pdeath_sig(pdeath);
  LZ_TRY(p.leader().Syscall("prctl", SYS_prctl, PR_GET_CHILD_SUBREAPER, p.scratch()));
  LZ_ASSIGN_OR_RETURN(int subreaper, ReadScratchAs<int>(p));
  core->set_child_subreaper(subreaper != 0);
  LZ_ASSIGN_OR_RETURN(long securebits, p.leader().Syscall("prctl", SYS_prctl, PR_GET_SECUREBITS));
  core->mutable_creds()->set_securebits(static_cast<uint32_t>(securebits));
  LZ_ASSIGN_OR_RETURN(long persona, p.leader().Syscall("personality", SYS_personality, 0xffffffff));
  core->set_personality(static_cast<uint32_t>(persona));
  return Ok();
}

uint64_t TimespecNs(const timespec& ts) {
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// timer_create timers: what they notify from /proc, the time left from the task itself.
Status DumpPosixTimers(ParasiteSession& p, pid_t pid, pb::TaskCore* core) {
  LZ_ASSIGN_OR_RETURN(std::string text, ReadFileToString(ProcPath(pid, "timers")));
  LZ_ASSIGN_OR_RETURN(std::vector<ProcPosixTimer> timers, ParsePosixTimers(text));
  for (const ProcPosixTimer& pt : timers) {
    LZ_TRY(p.leader().Syscall("timer_gettime", SYS_timer_gettime, pt.id, p.scratch()));
    LZ_ASSIGN_OR_RETURN(itimerspec its, ReadScratchAs<itimerspec>(p));
    pb::PosixTimer* t = core->add_posix_timers();
    t->set_id(pt.id);
    t->set_clockid(pt.clockid);
    t->set_notify(pt.notify);
    t->set_signo(pt.signo);
    t->set_sigval(pt.sigval);
    if (pt.notify & SIGEV_THREAD_ID) {
      t->set_notify_tid(pt.notify_pid);
    }
    t->set_value_ns(TimespecNs(its.it_value));
    t->set_interval_ns(TimespecNs(its.it_interval));
  }
  return Ok();
}

Status DumpThread(ParasiteSession& p, size_t i, pid_t pid, pb::ThreadCore* t) {
  RemoteThread& rt = p.thread(i);
  pid_t tid = rt.tid();
  t->set_tid(tid);
  Regs regs = p.saved_regs(i);
  LZ_ASSIGN_OR_RETURN(RseqConfig rseq, GetRseqConfig(tid));
  // Stopped inside a restartable sequence: the image resumes it at its abort handler, as the
  // kernel would have on the way back to user space, since it will run on another CPU.
  std::optional<uint64_t> abort_ip = p.rseq_abort(i);
  if (abort_ip) {
    LZ_INFO("tid %d: inside an rseq critical section at %#llx, resumes at its abort handler %#lx",
            tid, regs.rip, *abort_ip);
    regs.rip = *abort_ip;
  }
  t->set_gpregs(std::string(reinterpret_cast<const char*>(&regs), sizeof regs));
  LZ_ASSIGN_OR_RETURN(std::string xsave, GetXstate(tid));
  t->set_xsave(std::move(xsave));
  t->set_blocked(p.saved_sigmask(i));
  t->set_rseq_addr(rseq.addr);
  t->set_rseq_len(rseq.len);
  t->set_rseq_sig(rseq.sig);
  uint64_t head = 0;
  size_t len = 0;
  if (::syscall(SYS_get_robust_list, tid, &head, &len) != 0) {
    return FailErrno("get_robust_list", "tid " + std::to_string(tid));
  }
  t->set_robust_list(head);
  t->set_robust_list_len(len);
  LZ_TRY(rt.Syscall("sigaltstack", SYS_sigaltstack, 0, p.scratch()));
  LZ_ASSIGN_OR_RETURN(stack_t ss, ReadScratchAs<stack_t>(p));
  t->set_altstack_sp(reinterpret_cast<uint64_t>(ss.ss_sp));
  t->set_altstack_size(ss.ss_size);
  t->set_altstack_flags(ss.ss_flags);
  LZ_TRY(rt.Syscall("prctl", SYS_prctl, PR_GET_TID_ADDRESS, p.scratch()));
  LZ_ASSIGN_OR_RETURN(uint64_t tid_addr, ReadScratchAs<uint64_t>(p));
  t->set_clear_child_tid(tid_addr);
  auto comm = ReadFileToString(ProcPath(pid, "task/" + std::to_string(tid) + "/comm"));
  if (comm) {
    t->set_comm(std::string(TrimSpace(*comm)));
  }
  LZ_ASSIGN_OR_RETURN(auto pending, PeekPendingSignals(tid, false));
  for (std::string& si : pending) {
    t->add_pending_signals(std::move(si));
  }
  return Ok();
}

Status DumpCreds(const ProcStatus& st, pb::TaskCore* core) {
  pb::Creds* c = core->mutable_creds();
  c->set_uid(st.uid[0]);
  c->set_euid(st.uid[1]);
  c->set_suid(st.uid[2]);
  c->set_fsuid(st.uid[3]);
  c->set_gid(st.gid[0]);
  c->set_egid(st.gid[1]);
  c->set_sgid(st.gid[2]);
  c->set_fsgid(st.gid[3]);
  for (uint32_t g : st.groups) {
    c->add_groups(g);
  }
  c->set_cap_inh(st.cap_inh);
  c->set_cap_prm(st.cap_prm);
  c->set_cap_eff(st.cap_eff);
  c->set_cap_bnd(st.cap_bnd);
  c->set_cap_amb(st.cap_amb);
  c->set_no_new_privs(st.no_new_privs);
  core->set_umask(st.umask);
  return Ok();  // seccomp: refused before the parasite ran (dump.cc, RefuseSeccomp)
}

}  // namespace

void FillTreeLinks(pid_t pid, const ProcStat& st, pb::TaskCore* core) {
  core->set_pid(pid);
  core->set_ppid(st.ppid);
  core->set_pgid(st.pgrp);
  core->set_sid(st.session);
  core->set_comm(st.comm);
  core->set_exit_signal(st.exit_signal);
}

Result<pb::TaskCore> DumpCore(FrozenTask& task, ParasiteSession& p) {
  pb::TaskCore core;
  pid_t pid = task.pid;
  LZ_ASSIGN_OR_RETURN(ProcStat st, ReadProcStat(pid));
  FillTreeLinks(pid, st, &core);
  LZ_ASSIGN_OR_RETURN(std::string status_text, ReadFileToString(ProcPath(pid, "status")));
  LZ_ASSIGN_OR_RETURN(ProcStatus status, ParseStatus(status_text));
  LZ_TRY(DumpCreds(status, &core));
  LZ_ASSIGN_OR_RETURN(std::string limits_text, ReadFileToString(ProcPath(pid, "limits")));
  LZ_ASSIGN_OR_RETURN(std::vector<ProcLimit> limits, ParseLimits(limits_text));
  for (const ProcLimit& l : limits) {
    pb::Rlimit* r = core.add_rlimits();
    r->set_resource(l.resource);
    r->set_cur(l.cur);
    r->set_max(l.max);
  }
  LZ_ASSIGN_OR_RETURN(std::string cwd, ReadLink(ProcPath(pid, "cwd")));
  LZ_ASSIGN_OR_RETURN(std::string root, ReadLink(ProcPath(pid, "root")));
  core.set_cwd(cwd);
  core.set_root(root);
  LZ_TRY(DumpSigactions(p, &core));
  LZ_TRY(DumpProcessMisc(p, &core));
  LZ_TRY(DumpPosixTimers(p, pid, &core));
  for (size_t i = 0; i < task.threads.size(); i++) {
    LZ_TRY(DumpThread(p, i, pid, core.add_threads()));
  }
  LZ_ASSIGN_OR_RETURN(auto shared, PeekPendingSignals(pid, true));
  for (std::string& si : shared) {
    core.add_shared_pending(std::move(si));
  }
  return core;
}

}  // namespace lz
