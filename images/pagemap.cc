#include "images/pagemap.h"

#include <algorithm>

#include "base/file_util.h"
#include "images/image_file.h"
#include "images/pagemap.pb.h"

namespace lz::img {

bool IsPlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

void Pagemap::Append(const PageRun& run, bool may_merge) {
  if (!runs_.empty() && may_merge) {
    PageRun& last = runs_.back();
    bool contiguous = last.end() == run.vaddr && last.flags == run.flags;
    bool index_follows = !run.present() || last.page_index + last.nr_pages == run.page_index;
    if (contiguous && index_follows && uint64_t{last.nr_pages} + run.nr_pages <= UINT32_MAX) {
      last.nr_pages += run.nr_pages;
      if (run.present()) {
        stored_pages_ += run.nr_pages;
      }
      return;
    }
  }
  runs_.push_back(run);
  if (run.present()) {
    present_.push_back(runs_.size() - 1);
    stored_pages_ += run.nr_pages;
  }
}

size_t Pagemap::LowerBound(uint64_t addr) const {
  auto it = std::upper_bound(runs_.begin(), runs_.end(), addr,
                             [](uint64_t a, const PageRun& r) { return a < r.end(); });
  return static_cast<size_t>(it - runs_.begin());
}

const PageRun* Pagemap::Find(uint64_t addr) const {
  size_t i = LowerBound(addr);
  if (i < runs_.size() && runs_[i].vaddr <= addr) {
    return &runs_[i];
  }
  return nullptr;
}

std::optional<uint64_t> Pagemap::StoredIndexOf(uint64_t addr) const {
  const PageRun* r = Find(addr);
  if (r == nullptr || !r->present()) {
    return std::nullopt;
  }
  return r->page_index + (addr - r->vaddr) / kPageSize;
}

size_t Pagemap::FirstPresentRunFromIndex(uint64_t index) const {
  auto it = std::upper_bound(present_.begin(), present_.end(), index, [this](uint64_t i, size_t r) {
    return i < runs_[r].page_index + runs_[r].nr_pages;
  });
  return it == present_.end() ? runs_.size() : *it;
}

uint64_t Pagemap::total_pages() const {
  uint64_t n = 0;
  for (const PageRun& r : runs_) {
    n += r.nr_pages;
  }
  return n;
}

Status Pagemap::Validate(const std::string& name, uint64_t stored_pages) const {
  uint64_t prev_end = 0;
  uint64_t next_index = 0;
  for (size_t i = 0; i < runs_.size(); i++) {
    const PageRun& r = runs_[i];
    std::string where = name + ": run " + std::to_string(i);
    if (r.nr_pages == 0 || r.vaddr % kPageSize != 0) {
      return Invalid(where + " is empty or unaligned");
    }
    if (r.vaddr > (uint64_t{1} << 57)) {
      return Invalid(where + " lies outside the user address space");
    }
    if (r.vaddr < prev_end) {
      return Invalid(where + " overlaps or is out of order");
    }
    // Exactly one of present and zero: a run whose content is elsewhere (in-parent, for
    // incremental dumps) cannot be restored by this version and must not read as zeros.
    if ((r.flags & ~uint32_t{kPagePresent | kPageZero | kPageLazy}) != 0 ||
        ((r.flags & kPagePresent) != 0) == ((r.flags & kPageZero) != 0)) {
      return Invalid(where + " has invalid flags " + std::to_string(r.flags));
    }
    if (r.present()) {
      if (r.page_index < next_index || r.page_index > stored_pages ||
          r.nr_pages > stored_pages - r.page_index) {
        return Invalid(where + " points outside the page store");
      }
      next_index = r.page_index + r.nr_pages;
    }
    prev_end = r.end();
  }
  return Ok();
}

Status WritePagemap(const std::string& path, const PagemapFile& pm) {
  LZ_ASSIGN_OR_RETURN(RecordWriter w, RecordWriter::Create(path, ImageKind::kPagemap));
  pb::PagemapHead head;
  head.set_pages_file(pm.pages_file);
  head.set_chunk_pages(pm.chunk_pages);
  head.set_stored_pages(pm.pagemap.stored_pages());
  LZ_TRY(w.Append(head));
  pb::PageRun m;
  for (const PageRun& r : pm.pagemap.runs()) {
    m.set_vaddr(r.vaddr);
    m.set_nr_pages(r.nr_pages);
    m.set_flags(r.flags);
    m.set_page_index(r.page_index);
    LZ_TRY(w.Append(m));
  }
  return w.Finish();
}

Result<PagemapFile> ReadPagemap(const std::string& path) {
  LZ_ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path, size_t{1} << 31));
  return ParsePagemap(path, std::move(bytes));
}

Result<PagemapFile> ParsePagemap(const std::string& path, std::string bytes) {
  LZ_ASSIGN_OR_RETURN(RecordReader r,
                      RecordReader::FromBytes(path, std::move(bytes), ImageKind::kPagemap));
  pb::PagemapHead head;
  LZ_ASSIGN_OR_RETURN(bool got, r.NextMessage(&head));
  if (!got) {
    return Invalid(path + ": missing pagemap head");
  }
  if (head.chunk_pages() == 0 || head.chunk_pages() > kMaxChunkPages) {
    return Invalid(path + ": chunk size " + std::to_string(head.chunk_pages()) + " out of range");
  }
  if (!IsPlainFileName(head.pages_file())) {
    return Invalid(path + ": page store name '" + head.pages_file() + "' is not a plain file name");
  }
  PagemapFile pm;
  pm.pages_file = head.pages_file();
  pm.chunk_pages = head.chunk_pages();
  pb::PageRun m;
  for (;;) {
    LZ_ASSIGN_OR_RETURN(bool more, r.NextMessage(&m));
    if (!more) {
      break;
    }
    if (m.nr_pages() == 0) {
      return Invalid(path + ": empty page run");
    }
    PageRun run{m.vaddr(), m.nr_pages(), m.flags(), m.page_index()};
    // Append() merges adjacent runs; check order first so a hostile file cannot make it merge
    // overlapping ones.
    if (!pm.pagemap.runs().empty() && run.vaddr < pm.pagemap.runs().back().end()) {
      return Invalid(path + ": page runs overlap or are out of order at " +
                     std::to_string(run.vaddr));
    }
    pm.pagemap.Append(run, /*may_merge=*/false);  // runs come as the dumper cut them
  }
  LZ_TRY(pm.pagemap.Validate(path, head.stored_pages()));
  if (pm.pagemap.stored_pages() != head.stored_pages()) {
    return Invalid(path + ": head announces " + std::to_string(head.stored_pages()) +
                   " stored pages, runs hold " + std::to_string(pm.pagemap.stored_pages()));
  }
  return pm;
}

std::vector<uint64_t> EagerChunks(const PagemapFile& pm) {
  std::vector<uint64_t> out;
  for (const PageRun& r : pm.pagemap.runs()) {
    if (!r.present() || (r.flags & kPageLazy) || r.nr_pages == 0 || pm.chunk_pages == 0) {
      continue;
    }
    for (uint64_t k = r.page_index / pm.chunk_pages;
         k <= (r.page_index + r.nr_pages - 1) / pm.chunk_pages; k++) {
      out.push_back(k);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace lz::img
