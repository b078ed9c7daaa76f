// userfaultfd ABI that Debian 12's kernel headers (6.1) predate.
#pragma once

#include <linux/userfaultfd.h>

namespace lz {

constexpr unsigned long long kUffdFeatureWpAsync = 1ull << 15;  // UFFD_FEATURE_WP_ASYNC (6.7)

}  // namespace lz
