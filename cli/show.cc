// `lazarus show`: images to JSON, or a summary table.
#include <dirent.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/file_util.h"
#include "cli/commands.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/page_store.h"
#include "images/pagemap.pb.h"
#include "images/stats.pb.h"

namespace lz {
namespace {

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  while (!out.empty() && out.back() == '\n') {
    out.pop_back();
  }
  return out;
}

std::unique_ptr<google::protobuf::Message> MessageFor(img::ImageKind kind,
                                                      const std::string& name) {
  switch (kind) {
    case img::ImageKind::kInventory:
      return std::make_unique<pb::Inventory>();
    case img::ImageKind::kCore:
      return std::make_unique<pb::TaskCore>();
    case img::ImageKind::kMm:
      return std::make_unique<pb::Mm>();
    case img::ImageKind::kFds:
      return std::make_unique<pb::FdTable>();
    case img::ImageKind::kShmem:
      return std::make_unique<pb::ShmemTable>();
    case img::ImageKind::kWorkingSet:
      return std::make_unique<pb::WorkingSet>();
    case img::ImageKind::kStats:
      if (name.find("stats-dump") != std::string::npos) return std::make_unique<pb::DumpStats>();
      if (name.find("stats-restore") != std::string::npos)
        return std::make_unique<pb::RestoreStats>();
      return std::make_unique<pb::LazyStats>();
    default:
      return nullptr;
  }
}

Result<std::string> ShowPages(const std::string& path) {
  LZ_ASSIGN_OR_RETURN(auto r, img::PageStoreReader::Open(path));
  std::string out =
      "{\n  \"magic\": \"PAGES\",\n  \"chunk_pages\": " + std::to_string(r->chunk_pages()) +
      ",\n  \"compression\": \"" +
      (r->compression() == img::Compression::kZstd ? "zstd:" + std::to_string(r->level())
                                                   : std::string("none")) +
      "\",\n  \"total_pages\": " + std::to_string(r->total_pages()) +
      ",\n  \"file_size\": " + std::to_string(r->file_size()) + ",\n  \"chunks\": [";
  for (uint64_t k = 0; k < r->chunk_count(); k++) {
    const img::ChunkIndexEntry& e = r->chunk(k);
    char buf[160];
    snprintf(buf, sizeof buf,
             "%s\n    {\"offset\": %lu, \"stored\": %u, \"pages\": %u, \"raw\": %s}", k ? "," : "",
             e.offset, e.stored_size, e.nr_pages, (e.flags & img::kChunkRaw) ? "true" : "false");
    out += buf;
  }
  out += "\n  ]\n}";
  return out;
}

Result<std::string> ShowPagemap(const std::string& path) {
  LZ_ASSIGN_OR_RETURN(img::PagemapFile pm, img::ReadPagemap(path));
  std::string out = "{\n  \"magic\": \"PAGEMAP\",\n  \"pages_file\": \"" + pm.pages_file +
                    "\",\n  \"chunk_pages\": " + std::to_string(pm.chunk_pages) +
                    ",\n  \"runs\": [";
  bool first = true;
  for (const img::PageRun& r : pm.pagemap.runs()) {
    char buf[200];
    snprintf(buf, sizeof buf,
             "%s\n    {\"vaddr\": \"0x%lx\", \"nr_pages\": %u, \"flags\": \"%s%s%s\", "
             "\"page_index\": %lu}",
             first ? "" : ",", r.vaddr, r.nr_pages, (r.flags & img::kPagePresent) ? "present" : "",
             (r.flags & img::kPageZero) ? "zero" : "", (r.flags & img::kPageLazy) ? ",lazy" : "",
             r.page_index);
    out += buf;
    first = false;
  }
  out += "\n  ]\n}";
  return out;
}

Result<std::string> ShowFile(const std::string& path) {
  LZ_ASSIGN_OR_RETURN(std::string head, ReadFileToString(path, size_t{1} << 32));
  if (head.size() < sizeof(img::FileHeader)) {
    return Invalid(path + ": truncated header (" + std::to_string(head.size()) + " bytes)");
  }
  img::FileHeader h;
  std::memcpy(&h, head.data(), sizeof h);
  LZ_TRY(img::CheckHeader(h, path, std::nullopt));
  auto kind = static_cast<img::ImageKind>(h.kind);
  if (kind == img::ImageKind::kPages) {
    LZ_TRY(img::ValidatePageStoreBytes(path, head));
    return ShowPages(path);
  }
  if (kind == img::ImageKind::kPagemap) {
    return ShowPagemap(path);
  }
  auto msg = MessageFor(kind, path);
  if (msg == nullptr) {
    return Invalid(path + ": no reader for a " + img::ImageKindName(kind) + " image");
  }
  LZ_TRY(img::ReadSingleMessage(path, kind, msg.get()));
  return "{\n  \"magic\": \"" + std::string(img::ImageKindName(kind)) +
         "\",\n  \"entry\": " + ToJson(*msg) + "\n}";
}

Result<std::vector<std::string>> ImageFiles(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return FailErrno("opendir", dir);
  }
  std::vector<std::string> out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if ((n.size() > 4 && n.compare(n.size() - 4, 4, ".img") == 0) || n.rfind("stats-", 0) == 0) {
      out.push_back(n);
    }
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::string> Summary(const std::string& dir) {
  LZ_ASSIGN_OR_RETURN(img::Dump d, img::LoadDump(dir));
  std::string out;
  char buf[256];
  snprintf(buf, sizeof buf, "%-8s %-16s %7s %5s %12s %12s %12s %12s %12s %7s\n", "PID", "COMM",
           "THREADS", "VMAS", "PAGES", "PRESENT", "ZERO", "STORED", "BYTES", "RATIO");
  out += buf;
  for (const img::TaskImages& t : d.tasks) {
    uint64_t present = 0, zero = 0;
    for (const img::PageRun& r : t.pagemap.pagemap.runs()) {
      (r.present() ? present : zero) += r.nr_pages;
    }
    uint64_t total = 0;
    for (const pb::Vma& v : t.mm.vmas()) {
      total += (v.end() - v.start()) / img::kPageSize;
    }
    LZ_ASSIGN_OR_RETURN(auto store, img::PageStoreReader::Open(dir + "/" + t.pagemap.pages_file));
    uint64_t stored_bytes = 0;
    for (uint64_t k = 0; k < store->chunk_count(); k++) {
      stored_bytes += store->chunk(k).stored_size;
    }
    double ratio = stored_bytes ? double(present * img::kPageSize) / double(stored_bytes) : 0.0;
    snprintf(buf, sizeof buf, "%-8d %-16s %7d %5d %12lu %12lu %12lu %12lu %12lu %6.2fx\n",
             t.core.pid(), t.core.comm().c_str(), t.core.threads_size(), t.mm.vmas_size(), total,
             present + zero, zero, present, stored_bytes, ratio);
    out += buf;
  }
  return out;
}

}  // namespace

int RunShowCommand(const CliOptions& o) {
  if (o.positional.size() != 1) {
    std::fprintf(stderr, "Error: show takes one DIR or FILE\n");
    return 1;
  }
  const std::string& target = o.positional[0];
  struct stat st;
  if (stat(target.c_str(), &st) != 0) {
    std::fprintf(stderr, "Error: %s: %s\n", target.c_str(), std::strerror(errno));
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    auto json = ShowFile(target);
    if (!json) {
      std::fprintf(stderr, "Error: %s\n", json.error().Message().c_str());
      return 1;
    }
    std::printf("%s\n", json->c_str());
    return 0;
  }
  if (o.summary) {
    auto s = Summary(target);
    if (!s) {
      std::fprintf(stderr, "Error: %s\n", s.error().Message().c_str());
      return 1;
    }
    std::fputs(s->c_str(), stdout);
    return 0;
  }
  auto files = ImageFiles(target);
  if (!files) {
    std::fprintf(stderr, "Error: %s\n", files.error().Message().c_str());
    return 1;
  }
  std::printf("{\n");
  int rc = 0;
  for (size_t i = 0; i < files->size(); i++) {
    auto json = ShowFile(target + "/" + (*files)[i]);
    if (!json) {
      std::fprintf(stderr, "Error: %s\n", json.error().Message().c_str());
      rc = 1;
      continue;
    }
    std::printf("\"%s\": %s%s\n", (*files)[i].c_str(), json->c_str(),
                i + 1 < files->size() ? "," : "");
  }
  std::printf("}\n");
  return rc;
}

}  // namespace lz
