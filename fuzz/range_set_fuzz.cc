// libFuzzer target for the daemon's pending-page arithmetic: random operation sequences
// checked against a page-by-page model.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>

#include "uffd/range_set.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint64_t P = 4096;
  lz::RangeSet set;
  std::map<uint64_t, uint64_t> model;  // live page -> image page
  auto arg = [&](size_t i) { return static_cast<uint64_t>(i < size ? data[i] % 64 : 0); };
  for (size_t i = 0; i + 4 <= size; i += 4) {
    uint64_t a = arg(i + 1) * P, b = a + (arg(i + 2) + 1) * P, c = arg(i + 3) * P + 128 * P;
    switch (data[i] % 4) {
      case 0:  // Add only where nothing moved, as the daemon does at start
        if (model.empty()) {
          set.Add(a, b);
          for (uint64_t p = a; p < b; p += P) model[p] = p;
        }
        break;
      case 1:
        set.RemoveLive(a, b);
        for (uint64_t p = a; p < b; p += P) model.erase(p);
        break;
      case 2: {  // mremap [a, b) to c, into a range that is empty in the model
        bool clear = true;
        for (uint64_t p = c; p < c + (b - a); p += P) clear = clear && !model.count(p);
        if (!clear) break;
        set.Remap(a, c, b - a);
        std::map<uint64_t, uint64_t> moved;
        for (uint64_t p = a; p < b; p += P) {
          if (model.count(p)) {
            moved[p - a + c] = model[p];
            model.erase(p);
          }
        }
        model.insert(moved.begin(), moved.end());
        break;
      }
      case 3:
        set.RemoveImage(a, b);
        for (auto it = model.begin(); it != model.end();) {
          it = (it->second >= a && it->second < b) ? model.erase(it) : std::next(it);
        }
        break;
    }
    for (uint64_t p = 0; p < 256 * P; p += P) {
      auto got = set.ImageOf(p);
      auto want = model.find(p);
      if (got.has_value() != (want != model.end()) || (got && *got != want->second)) {
        std::abort();
      }
    }
    std::set<uint64_t> images;
    for (const auto& [live, image] : model) {
      images.insert(image);
    }
    for (uint64_t p = 0; p < 256 * P; p += P) {
      if (set.ContainsImage(p) != (images.count(p) != 0)) {
        std::abort();
      }
    }
    if (set.bytes() != model.size() * P) {
      std::abort();
    }
  }
  return 0;
}
