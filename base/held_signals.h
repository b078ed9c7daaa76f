// The signals that ask lazarus to stop (SIGINT, SIGTERM, SIGHUP, SIGQUIT), held back while a
// dump has tasks frozen: dying at once would leave their threads stopped under a dead tracer
// with every signal blocked and a scratch page mapped. The dump looks for them where it can
// stop cleanly, lets every task go on as it was, and fails with a message.
#pragma once

#include <signal.h>

#include "base/result.h"

namespace lz {

/// Blocks those of them that are not ignored, for its lifetime. At the end, one that failed
/// the dump (CheckInterrupted) is discarded; one that came after the last check is delivered.
class HeldSignals {
 public:
  HeldSignals();
  ~HeldSignals();
  HeldSignals(const HeldSignals&) = delete;
  HeldSignals& operator=(const HeldSignals&) = delete;

 private:
  sigset_t old_;
};

/// Fails with "interrupted by SIGTERM while <step>" when one of them is pending (held).
[[nodiscard]] Status CheckInterrupted(const char* step);

}  // namespace lz
