#include "dump/dump.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "base/clock.h"
#include "base/cpu.h"
#include "base/file_util.h"
#include "base/held_signals.h"
#include "base/log.h"
#include "base/proc.h"
#include "base/sys.h"
#include "dump/freezer.h"
#include "dump/parasite_session.h"
#include "dump/task_dump.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/page_server_client.h"
#include "images/page_server_protocol.h"

namespace lz {
namespace {

Status CheckDeadline(const Deadline& d, const char* step) {
  if (d.Expired()) {
    return Fail(ETIMEDOUT, "dump", std::string("timed out while ") + step);
  }
  return CheckInterrupted(step);
}

// Before any remote syscall: under seccomp one may kill the task, or make the kernel reset its
// SIGSYS handler for good, so such a task is refused while it is still untouched. The mode is
// per thread.
Status RefuseSeccomp(const FrozenTask& t) {
  for (const PtraceAttachment& a : t.threads) {
    LZ_ASSIGN_OR_RETURN(
        std::string text,
        ReadFileToString(ProcPath(t.pid, "task/" + std::to_string(a.tid()) + "/status")));
    LZ_ASSIGN_OR_RETURN(ProcStatus st, ParseStatus(text));
    if (st.seccomp != 0) {
      return Invalid("tid " + std::to_string(a.tid()) + " runs under seccomp (mode " +
                     std::to_string(st.seccomp) + "): seccomp filters are not supported yet");
    }
  }
  return Ok();
}

// A connected unix socket comes back as a socketpair, so its peer must be in the tree and
// connected back to it. A datagram socket connected to a named socket, outside the tree or in
// it but not connected back (a client of a log server), is connected again by name instead.
Status LinkUnixPeers(const std::vector<pb::TaskCore>& cores, std::vector<pb::FdTable>& fds) {
  std::map<uint64_t, uint64_t> peer_of;  // socket inode -> its peer's
  for (const pb::FdTable& t : fds) {
    for (const pb::OpenFile& f : t.files()) {
      if (f.type() == pb::FILE_UNIX) {
        peer_of[f.ino()] = f.unix_socket().peer_ino();
      }
    }
  }
  for (size_t i = 0; i < fds.size(); i++) {
    for (pb::OpenFile& f : *fds[i].mutable_files()) {
      pb::UnixInfo* u = f.mutable_unix_socket();
      if (f.type() != pb::FILE_UNIX || u->peer_ino() == 0) {
        continue;
      }
      auto where = [&] {
        return "fd " + std::to_string(img::FirstFdOf(fds[i], f.id())) + " of " +
               std::to_string(cores[i].pid()) + ": ";
      };
      auto peer = peer_of.find(u->peer_ino());
      if (peer == peer_of.end()) {
        if (u->type() == SOCK_DGRAM && !u->peer_name().empty() && u->messages_size() == 0) {
          u->set_peer_ino(0);  // outside: reconnected by name, as a client of /dev/log is
          continue;
        }
        if (u->messages_size() > 0) {
          return Invalid(where() +
                         "unix socket connected outside the dumped tree with messages queued "
                         "is not supported yet");
        }
        return Invalid(where() +
                       "unix socket connected outside the dumped tree is not supported yet");
      }
      if (peer->second != f.ino()) {
        // A server's socket, itself unconnected, comes back bound to its name: connected
        // again by that name. One connected elsewhere would come back without it.
        if (u->type() == SOCK_DGRAM && !u->peer_name().empty() && u->messages_size() == 0 &&
            peer->second == 0) {
          u->set_peer_ino(0);
          u->set_peer_in_tree(true);
          continue;
        }
        return Invalid(where() +
                       (u->messages_size() > 0
                            ? "unix datagram socket connected to a socket of the tree holds "
                              "messages queued from it, which is not supported"
                            : "unix datagram socket connected to a socket of the tree that is "
                              "connected elsewhere or has no address is not supported"));
      }
      u->clear_peer_name();
    }
  }
  return Ok();
}

// Gives every open file that several processes of the tree share (kcmp says it is the same
// struct file) one tree-wide id, so that the restore opens it once and hands it down, instead
// of giving each process its own copy with its own offset, or cutting a pipe in two.
Status LinkSharedFiles(const std::vector<pb::TaskCore>& cores, std::vector<pb::FdTable>& fds) {
  struct Seen {
    size_t task;
    pb::OpenFile* file;
  };
  std::map<std::pair<uint64_t, uint64_t>, std::vector<Seen>> by_inode;  // (dev, ino)
  uint32_t next_id = 1;
  for (size_t i = 0; i < fds.size(); i++) {
    for (pb::OpenFile& f : *fds[i].mutable_files()) {
      if (f.type() == pb::FILE_TTY) {
        continue;  // every terminal fd becomes the restoring terminal anyway
      }
      std::vector<Seen>& seen = by_inode[{f.dev(), f.ino()}];
      for (const Seen& s : seen) {
        if (s.task == i) {
          continue;  // within one process, dup'ed fds already share an entry
        }
        LZ_ASSIGN_OR_RETURN(
            bool same, SameOpenFile(cores[s.task].pid(), img::FirstFdOf(fds[s.task], s.file->id()),
                                    cores[i].pid(), img::FirstFdOf(fds[i], f.id())));
        if (same) {
          if (s.file->tree_id() == 0) {
            s.file->set_tree_id(next_id++);
          }
          f.set_tree_id(s.file->tree_id());
          break;
        }
      }
      seen.push_back({i, &f});
    }
  }
  return LinkUnixPeers(cores, fds);
}

Status CheckShellJob(const std::vector<pb::TaskCore>& cores, const std::vector<pb::FdTable>& fds,
                     bool shell_job) {
  if (shell_job) {
    return Ok();
  }
  const pb::TaskCore& root = cores.front();
  auto in_tree = [&](pid_t p) {
    return std::any_of(cores.begin(), cores.end(),
                       [p](const pb::TaskCore& c) { return c.pid() == p; });
  };
  if (!in_tree(root.sid())) {
    return Invalid(
        "dump", "the session leader of pid " + std::to_string(root.pid()) + " (" +
                    std::to_string(root.sid()) +
                    ") is outside the dumped tree; use --shell-job (-j) or start it with setsid");
  }
  for (size_t i = 0; i < fds.size(); i++) {
    for (const pb::OpenFile& f : fds[i].files()) {
      if (f.type() == pb::FILE_TTY) {
        return Invalid("dump", "pid " + std::to_string(cores[i].pid()) + " has terminal " +
                                   f.path() + " open; use --shell-job (-j)");
      }
    }
  }
  return Ok();
}

void AddStats(const MemoryStats& m, pb::DumpStats* stats) {
  stats->set_pages_scanned(stats->pages_scanned() + m.pages_scanned);
  stats->set_pages_present(stats->pages_present() + m.pages_present);
  stats->set_pages_zero(stats->pages_zero() + m.pages_zero);
  stats->set_pages_written(stats->pages_written() + m.pages_written);
  stats->set_bytes_in(stats->bytes_in() + m.bytes_in);
  stats->set_bytes_out(stats->bytes_out() + m.bytes_out);
}

class TreeDumper {
 public:
  TreeDumper(const DumpOptions& opts, FrozenTree& tree, const Deadline& deadline,
             PageServerClient* page_server)
      : opts_(opts), tree_(tree), deadline_(deadline), page_server_(page_server) {}

  Status DumpAll(pb::DumpStats* stats) {
    for (FrozenTask& t : tree_.tasks()) {
      LZ_TRY_CTX(DumpMeta(t), "dump pid " + std::to_string(t.pid));
      LZ_TRY(CheckDeadline(deadline_, "collecting task state"));
    }
    LZ_TRY(CheckShellJob(cores_, fds_, opts_.shell_job));
    LZ_TRY(LinkSharedFiles(cores_, fds_));
    ShmemCollector shmem;
    for (size_t i = 0; i < cores_.size(); i++) {
      LZ_TRY(shmem.Add(cores_[i].pid(), mms_[i], fds_[i]));
    }
    for (size_t i = 0; i < cores_.size(); i++) {
      pid_t pid = cores_[i].pid();
      LZ_TRY(
          img::WriteSingleMessage(img::CorePath(opts_.dir, pid), img::ImageKind::kCore, cores_[i]));
      if (cores_[i].zombie()) {
        continue;  // a zombie has no memory or files left
      }
      LZ_TRY(img::WriteSingleMessage(img::MmPath(opts_.dir, pid), img::ImageKind::kMm, mms_[i]));
      LZ_TRY(img::WriteSingleMessage(img::FdsPath(opts_.dir, pid), img::ImageKind::kFds, fds_[i]));
    }
    uint64_t t0 = MonotonicNs();
    // Kept in the directory even with --page-server: the restore front-end makes these
    // objects before any task runs, and they are small next to the tasks' own memory.
    MemoryStats shm_stats;
    LZ_TRY(shmem.Write(opts_.dir, opts_.store, shm_stats));
    AddStats(shm_stats, stats);
    Progress progress("lazarus dump: memory");
    for (size_t i = 0; i < cores_.size(); i++) {
      if (cores_[i].zombie()) {
        continue;
      }
      LZ_ASSIGN_OR_RETURN(MemoryStats m, DumpPages(cores_[i].pid(), mms_[i], opts_.dir, opts_.store,
                                                   HotPagesOf(cores_[i]), &progress, page_server_));
      AddStats(m, stats);
      stats->set_threads(stats->threads() + cores_[i].threads_size());
    }
    stats->set_memdump_ns(MonotonicNs() - t0);
    stats->set_tasks(static_cast<uint32_t>(cores_.size()));
    return Ok();
  }

  const std::vector<pb::TaskCore>& cores() const { return cores_; }

 private:
  Status DumpZombie(const FrozenTask& t) {
    LZ_ASSIGN_OR_RETURN(ProcStat st, ReadProcStat(t.pid));
    pb::TaskCore core;
    FillTreeLinks(t.pid, st, &core);
    core.set_zombie(true);
    core.set_exit_code(st.exit_code);
    cores_.push_back(std::move(core));
    mms_.emplace_back();
    fds_.emplace_back();
    return Ok();
  }

  Status DumpMeta(FrozenTask& t) {
    if (t.zombie) {
      return DumpZombie(t);
    }
    std::vector<pid_t> tids;
    for (const PtraceAttachment& a : t.threads) {
      tids.push_back(a.tid());
    }
    LZ_ASSIGN_OR_RETURN(std::vector<ProcVma> vmas, ReadSmaps(t.pid));
    LZ_TRY(RefuseSeccomp(t));
    LZ_ASSIGN_OR_RETURN(auto parasite, ParasiteSession::Start(t.pid, tids));
    LZ_ASSIGN_OR_RETURN(pb::TaskCore core, DumpCore(t, *parasite));
    LZ_ASSIGN_OR_RETURN(pb::Mm mm, DumpMm(t.pid, vmas, *parasite));
    LZ_TRY(parasite->Finish());
    // smaps was read before the parasite mapped its scratch page, so the page is not among
    // the VMAs; Finish() has unmapped it again.
    LZ_ASSIGN_OR_RETURN(pb::FdTable fds, DumpFds(t.pid, opts_.dir, opts_.file_locks));
    cores_.push_back(std::move(core));
    mms_.push_back(std::move(mm));
    fds_.push_back(std::move(fds));
    return Ok();
  }

  const DumpOptions& opts_;
  FrozenTree& tree_;
  const Deadline& deadline_;
  PageServerClient* page_server_;  // --page-server: where page stores go; null: the directory
  std::vector<pb::TaskCore> cores_;
  std::vector<pb::Mm> mms_;
  std::vector<pb::FdTable> fds_;
};

pb::Inventory MakeInventory(const DumpOptions& opts, const std::vector<pb::TaskCore>& cores,
                            uint64_t frozen_ns) {
  pb::Inventory inv;
  inv.set_format_version(img::kFormatVersion);
  inv.set_root_pid(opts.pid);
  for (const pb::TaskCore& c : cores) {
    inv.add_pids(c.pid());
  }
  utsname u;
  if (uname(&u) == 0) {
    inv.set_kernel_release(u.release);
    inv.set_machine(u.machine);
  }
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  inv.set_dumped_at_unix_ns(ts.tv_sec * 1000000000ull + ts.tv_nsec);
  inv.set_chunk_pages(opts.store.chunk_pages);
  inv.set_compression(opts.store.compression == img::Compression::kNone
                          ? "none"
                          : "zstd:" + std::to_string(opts.store.level));
  inv.set_xsave_features(XsaveFeatures());
  if (!cores.empty() && cores[0].threads_size() > 0) {
    inv.set_xsave_size(static_cast<uint32_t>(cores[0].threads(0).xsave().size()));
  }
  inv.set_tool_version(LAZARUS_VERSION);
  for (const std::string& a : opts.command_line) {
    inv.add_command_line(a);
  }
  inv.set_shell_job(opts.shell_job);
  inv.set_frozen_ns(frozen_ns);
  return inv;
}

}  // namespace

Result<pb::DumpStats> RunDump(const DumpOptions& opts) {
  uint64_t start = MonotonicNs();
  if (opts.pid <= 0 || ::kill(opts.pid, 0) != 0) {
    return Fail(ESRCH, "dump", "no process with pid " + std::to_string(opts.pid));
  }
  if (::mkdir(opts.dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return FailErrno("mkdir", opts.dir);
  }
  LZ_TRY(img::MarkIncomplete(opts.dir));
  ::unlink((opts.dir + "/" + img::kInventoryFile).c_str());
  // Connected before anything is frozen: a missing page server costs the tree nothing.
  std::unique_ptr<PageServerClient> page_server;
  if (opts.to_page_server) {
    LZ_ASSIGN_OR_RETURN(page_server, PageServerClient::Connect(opts.ps_address, opts.ps_port,
                                                               ps::kRoleWrite, opts.ps_token));
  }

  // Declared before the tree: still held while the tree's destructor lets the tasks go.
  HeldSignals held;
  Deadline deadline(opts.timeout_sec * 1000000000ull);
  uint64_t freeze_start = MonotonicNs();
  LZ_ASSIGN_OR_RETURN(
      std::unique_ptr<FrozenTree> tree,
      FrozenTree::Freeze(opts.pid, deadline.at() != 0 ? deadline.at() : UINT64_MAX));
  // From here on an early return destroys `tree`, which resumes every task.
  pb::DumpStats stats;
  TreeDumper dumper(opts, *tree, deadline, page_server.get());
  LZ_TRY(dumper.DumpAll(&stats));
  uint64_t frozen_ns = MonotonicNs() - freeze_start;
  LZ_TRY(img::WriteSingleMessage(opts.dir + "/" + img::kInventoryFile, img::ImageKind::kInventory,
                                 MakeInventory(opts, dumper.cores(), frozen_ns)));
  if (page_server) {
    LZ_TRY(page_server->Bye());
  }
  LZ_TRY(img::ClearIncomplete(opts.dir));
  switch (opts.after) {
    case DumpOptions::After::kKill:
      tree->Kill();
      break;
    case DumpOptions::After::kLeaveRunning:
      tree->Resume();
      break;
    case DumpOptions::After::kLeaveStopped:
      tree->LeaveStopped();
      break;
  }
  stats.set_frozen_ns(MonotonicNs() - freeze_start);
  stats.set_total_ns(MonotonicNs() - start);
  // The dump is complete and the tree has ended as asked: a stats file that cannot be written
  // is worth a warning, not a failed dump.
  Status st = img::WriteSingleMessage(opts.dir + "/stats-dump", img::ImageKind::kStats, stats);
  if (!st) {
    LZ_WARN("could not write stats-dump: %s", st.error().Message().c_str());
  }
  return stats;
}

}  // namespace lz
