#include "dump/parasite_session.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/file_util.h"
#include "base/log.h"
#include "base/proc.h"

namespace lz {

namespace {

// Whether a SIGCONT is pending anywhere in `pid` (every signal is blocked while the session
// drives its threads): sent after the last SIGSTOP (a SIGSTOP flushes pending SIGCONTs), it
// says the task is to run, so a SIGSTOP taken meanwhile is not sent again.
bool ContinuedSince(pid_t pid) {
  uint64_t pending = 0;
  auto tids = ListNumericDir(ProcPath(pid, "task"));
  for (int tid : tids ? *tids : std::vector<int>{}) {
    auto text = ReadFileToString(ProcPath(pid, "task/" + std::to_string(tid) + "/status"));
    auto st = text ? ParseStatus(*text) : Result<ProcStatus>(Unexpected{text.error()});
    if (st) {
      pending |= st->sig_pending | st->shared_pending;
    }
  }
  return (pending & (uint64_t{1} << (SIGCONT - 1))) != 0;
}

}  // namespace

Result<std::unique_ptr<ParasiteSession>> ParasiteSession::Start(pid_t pid,
                                                                std::span<const pid_t> tids) {
  auto s = std::unique_ptr<ParasiteSession>(new ParasiteSession(pid));
  LZ_ASSIGN_OR_RETURN(uint64_t insn, FindVdsoSyscallInsn(pid));
  for (pid_t tid : tids) {
    LZ_ASSIGN_OR_RETURN(Regs regs, GetRegs(tid));
    LZ_ASSIGN_OR_RETURN(uint64_t mask, GetSigmask(tid));
    LZ_ASSIGN_OR_RETURN(RseqConfig rseq, GetRseqConfig(tid));
    LZ_ASSIGN_OR_RETURN(std::optional<uint64_t> abort_ip, RseqAbortTargetOf(tid, rseq, regs.rip));
    s->threads_.push_back(Thread{RemoteThread(tid, insn), regs, mask, abort_ip});
    // Blocked signals stay queued instead of interrupting our syscalls; the mask comes back
    // in Finish().
    LZ_TRY(SetSigmask(tid, ~uint64_t{0}));
  }
  LZ_ASSIGN_OR_RETURN(
      long addr, s->leader().Syscall("mmap", SYS_mmap, 0, kScratchSize, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, static_cast<uint64_t>(-1), 0));
  s->scratch_ = static_cast<uint64_t>(addr);
  return s;
}

Status ParasiteSession::ReadScratch(std::span<std::byte> out) const {
  return ReadRemote(pid_, scratch_, out);
}

Status ParasiteSession::Finish() {
  if (finished_) {
    return Ok();
  }
  finished_ = true;
  Status result = Ok();
  if (scratch_ != 0) {
    auto r = leader().Syscall("munmap", SYS_munmap, scratch_, kScratchSize);
    if (!r) {
      result = Unexpected{r.error()};
    }
  }
  for (Thread& t : threads_) {
    // The registers go back exactly as they were, an interrupted syscall's -ERESTART* code
    // included: detaching from a ptrace stop sets TIF_SIGPENDING, so on its way out the thread
    // passes the kernel's own restart logic, which restarts the syscall or, if a signal with a
    // handler is delivered first, turns it into EINTR. Rewinding by hand would lose the latter
    // (a pause() would sleep again after its handler ran).
    // Inside an rseq critical section, the thread goes to the abort handler, where the kernel
    // would have sent it after the stop had we not cleared its rseq_cs meanwhile.
    Regs regs = t.regs;
    if (t.rseq_abort) {
      regs.rip = *t.rseq_abort;
    }
    Status a = SetRegs(t.remote.tid(), regs);
    Status b = SetSigmask(t.remote.tid(), t.sigmask);
    if (t.remote.stopped_meanwhile() && !ContinuedSince(pid_)) {
      // Pending again, it stops the task once it is let go, as it would have.
      (void)::syscall(SYS_tgkill, pid_, t.remote.tid(), SIGSTOP);
    }
    if (result && !a) {
      result = a;
    }
    if (result && !b) {
      result = b;
    }
  }
  return result;
}

ParasiteSession::~ParasiteSession() {
  if (!finished_) {
    Status st = Finish();
    if (!st) {
      LZ_ERROR("could not cure pid %d: %s", pid_, st.error().Message().c_str());
    }
  }
}

}  // namespace lz
