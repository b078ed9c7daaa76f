// What a remote syscall costs on this machine: one syscall driven through two ptrace stops,
// a batch of N run by the loop copied into the task (one stop), and the ptrace primitives
// underneath. The restore's time is mostly a count of these, so this is its unit price.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <vector>

#include "parasite/ptrace.h"
#include "parasite/remote.h"

namespace lz {
namespace {

// A child that sleeps until killed, seized and stopped for the benchmark's lifetime.
class StoppedChild {
 public:
  StoppedChild() {
    pid_ = fork();
    if (pid_ == 0) {
      for (;;) {
        pause();
      }
    }
    auto att = SeizeAndStop(pid_, PTRACE_O_TRACESYSGOOD);
    auto insn = FindVdsoSyscallInsn(pid_);
    if (!att || !insn) {
      std::fprintf(stderr, "cannot seize the benchmark child\n");
      std::abort();
    }
    att_ = std::move(*att);
    rt_.emplace(pid_, *insn);
    auto area =
        rt_->Syscall("mmap", SYS_mmap, 0, kBatchAreaSize, PROT_READ | PROT_WRITE | PROT_EXEC,
                     MAP_PRIVATE | MAP_ANONYMOUS, static_cast<uint64_t>(-1), 0);
    if (!area) {
      std::abort();
    }
    area_ = static_cast<uint64_t>(*area);
  }
  ~StoppedChild() {
    att_.Detach();
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  RemoteThread& rt() { return *rt_; }
  pid_t pid() const { return pid_; }
  uint64_t area() const { return area_; }

 private:
  pid_t pid_;
  PtraceAttachment att_;
  std::optional<RemoteThread> rt_;
  uint64_t area_ = 0;
};

StoppedChild& Child() {
  static StoppedChild* child = new StoppedChild();  // lives until the process exits
  return *child;
}

void BM_RemoteSyscall(benchmark::State& state) {
  RemoteThread& rt = Child().rt();
  for (auto _ : state) {
    benchmark::DoNotOptimize(rt.RawSyscall(SYS_getppid));
  }
}
BENCHMARK(BM_RemoteSyscall)->UseRealTime();

void BM_RemoteBatch(benchmark::State& state) {
  StoppedChild& c = Child();
  std::vector<RemoteCall> calls(static_cast<size_t>(state.range(0)),
                                RemoteCall{"getppid", SYS_getppid, {}});
  std::vector<long> results;
  for (auto _ : state) {
    if (!c.rt().RunBatch(calls, c.area(), &results)) {
      state.SkipWithError("batch failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RemoteBatch)->Arg(1)->Arg(16)->Arg(128)->UseRealTime();

void BM_GetSetRegs(benchmark::State& state) {
  pid_t pid = Child().pid();
  for (auto _ : state) {
    auto r = GetRegs(pid);
    if (!r || !SetRegs(pid, *r)) {
      state.SkipWithError("regs");
      break;
    }
  }
}
BENCHMARK(BM_GetSetRegs)->UseRealTime();

void BM_WriteRemote512(benchmark::State& state) {
  StoppedChild& c = Child();
  std::vector<std::byte> buf(512);
  for (auto _ : state) {
    if (!WriteRemote(c.pid(), c.area(), buf)) {
      state.SkipWithError("write");
      break;
    }
  }
}
BENCHMARK(BM_WriteRemote512)->UseRealTime();

}  // namespace
}  // namespace lz

BENCHMARK_MAIN();
