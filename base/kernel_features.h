// What the running kernel offers lazarus, probed once.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "base/result.h"

namespace lz {

// prctl for restoring timer_create ids (Linux 6.15); glibc 2.36 headers predate it.
constexpr int kPrTimerCreateRestoreIds = 77;
constexpr int kPrTimerCreateRestoreIdsOff = 0;
constexpr int kPrTimerCreateRestoreIdsOn = 1;
constexpr int kPrTimerCreateRestoreIdsGet = 2;

struct Feature {
  std::string name;
  bool present = false;
  bool required = false;
  std::string detail;  // why it is missing, or what was found
};

/// An immutable snapshot of the kernel's features, passed by const reference to the components
/// that depend on them. Thread-safe (read-only after Probe()).
class KernelFeatures {
 public:
  /// Runs every probe (forks short-lived children; takes a few milliseconds).
  static KernelFeatures Probe();
  /// Only userfaultfd and io_uring: what the lazy-pages daemon needs, without the probes that
  /// fork (a daemon started beside a restore must listen within milliseconds).
  static KernelFeatures ProbeForLazyPages();

  const std::vector<Feature>& all() const { return features_; }
  /// nullptr when `name` is not a known feature.
  const Feature* Find(const std::string& name) const;
  bool Has(const std::string& name) const {
    const Feature* f = Find(name);
    return f != nullptr && f->present;
  }
  bool RequiredPresent() const;
  /// UFFD_FEATURE_* bits the kernel reported to UFFDIO_API.
  unsigned long long uffd_features() const { return uffd_features_; }

 private:
  std::vector<Feature> features_;
  unsigned long long uffd_features_ = 0;
};

}  // namespace lz

namespace lz {

/// Fails, naming the first missing one, unless every feature in `names` is present.
[[nodiscard]] Status RequireFeatures(const KernelFeatures& k,
                                     std::initializer_list<const char*> names);

}  // namespace lz
