// Entry points of the commands that live in cli/ itself.
#pragma once

#include "cli/options.h"

namespace lz {

int RunCheckCommand(const CliOptions& o);
int RunShowCommand(const CliOptions& o);

}  // namespace lz
