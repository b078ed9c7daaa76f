#pragma once

#include <cstdint>

namespace lz {

/// XCR0: the xsave state components the OS enabled on this CPU (0 without OSXSAVE).
uint64_t XsaveFeatures();

}  // namespace lz
