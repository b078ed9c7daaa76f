#include "uffd/range_set.h"

#include <algorithm>

namespace lz {

RangeSet& RangeSet::operator=(const RangeSet& o) {
  if (this != &o) {
    ranges_.clear();
    ranges_.insert(o.ranges_.begin(), o.ranges_.end());  // into this set's own pool
    moved_ = o.moved_;
  }
  return *this;
}

void RangeSet::Add(uint64_t image_start, uint64_t image_end) {
  if (image_start >= image_end) {
    return;
  }
  RemoveImage(image_start, image_end);
  ranges_[image_start] = PendingRange{image_start, image_end, 0};
}

void RangeSet::SplitAt(uint64_t a) {
  auto it = ranges_.upper_bound(a);
  if (it == ranges_.begin()) {
    return;
  }
  --it;
  PendingRange& r = it->second;
  if (r.image_start < a && a < r.image_end) {
    PendingRange tail{a, r.image_end, r.delta};
    r.image_end = a;
    ranges_[a] = tail;
  }
}

std::optional<uint64_t> RangeSet::ImageOf(uint64_t live) const {
  if (!moved_) {
    auto it = ranges_.upper_bound(live);
    if (it == ranges_.begin()) {
      return std::nullopt;
    }
    --it;
    if (live < it->second.image_end) {
      return live;
    }
    return std::nullopt;
  }
  // After an mremap the live order may differ from the image order; remaps are rare, so a
  // scan is acceptable here.
  for (const auto& [k, r] : ranges_) {
    if (r.live_start() <= live && live < r.live_end()) {
      return live - r.delta;
    }
  }
  return std::nullopt;
}

bool RangeSet::ContainsImage(uint64_t image_addr) const {
  auto it = ranges_.upper_bound(image_addr);
  return it != ranges_.begin() && image_addr < std::prev(it)->second.image_end;
}

void RangeSet::Intersect(uint64_t start, uint64_t end, std::vector<PendingRange>* out) const {
  auto it = ranges_.upper_bound(start);
  if (it != ranges_.begin()) {
    --it;
  }
  for (; it != ranges_.end() && it->second.image_start < end; ++it) {
    const PendingRange& r = it->second;
    uint64_t s = std::max(start, r.image_start);
    uint64_t e = std::min(end, r.image_end);
    if (s < e) {
      out->push_back({s, e, r.delta});
    }
  }
}

void RangeSet::RemoveImage(uint64_t start, uint64_t end) {
  if (start >= end) {
    return;
  }
  SplitAt(start);
  SplitAt(end);
  auto it = ranges_.lower_bound(start);
  while (it != ranges_.end() && it->second.image_start < end) {
    it = ranges_.erase(it);
  }
}

void RangeSet::RemoveLive(uint64_t live_start, uint64_t live_end) {
  if (!moved_) {
    RemoveImage(live_start, live_end);
    return;
  }
  std::vector<std::pair<uint64_t, uint64_t>> drop;
  for (const auto& [k, r] : ranges_) {
    uint64_t s = std::max(live_start, r.live_start());
    uint64_t e = std::min(live_end, r.live_end());
    if (s < e) {
      drop.emplace_back(s - r.delta, e - r.delta);
    }
  }
  for (auto [s, e] : drop) {
    RemoveImage(s, e);
  }
}

void RangeSet::Remap(uint64_t from, uint64_t to, uint64_t len) {
  std::vector<PendingRange> moved;
  for (const auto& [k, r] : ranges_) {
    uint64_t s = std::max(from, r.live_start());
    uint64_t e = std::min(from + len, r.live_end());
    if (s < e) {
      moved.push_back({s - r.delta, e - r.delta, r.delta});
    }
  }
  for (const PendingRange& m : moved) {
    RemoveImage(m.image_start, m.image_end);
  }
  int64_t shift = static_cast<int64_t>(to) - static_cast<int64_t>(from);
  for (PendingRange m : moved) {
    m.delta += shift;
    ranges_[m.image_start] = m;
    moved_ = true;
  }
}

uint64_t RangeSet::bytes() const {
  uint64_t n = 0;
  for (const auto& [k, r] : ranges_) {
    n += r.image_end - r.image_start;
  }
  return n;
}

std::optional<PendingRange> RangeSet::NextFrom(uint64_t image_addr) const {
  if (ranges_.empty()) {
    return std::nullopt;
  }
  auto it = ranges_.upper_bound(image_addr);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (image_addr < prev->second.image_end) {
      PendingRange from = prev->second;
      from.image_start = image_addr;  // the rest of the piece that holds it
      return from;
    }
  }
  if (it == ranges_.end()) {
    it = ranges_.begin();
  }
  return it->second;
}

}  // namespace lz
