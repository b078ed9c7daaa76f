#include <cstdio>

#include "base/kernel_features.h"
#include "cli/commands.h"

namespace lz {

int RunCheckCommand(const CliOptions& o) {
  KernelFeatures k = KernelFeatures::Probe();
  if (!o.feature.empty()) {
    const Feature* f = k.Find(o.feature);
    if (f == nullptr) {
      std::fprintf(stderr, "Error: unknown feature '%s'; known:", o.feature.c_str());
      for (const Feature& g : k.all()) {
        std::fprintf(stderr, " %s", g.name.c_str());
      }
      std::fputc('\n', stderr);
      return 1;
    }
    std::printf("%-20s %s%s%s\n", f->name.c_str(), f->present ? "present" : "missing",
                f->detail.empty() ? "" : ": ", f->detail.c_str());
    return f->present ? 0 : 1;
  }
  for (const Feature& f : k.all()) {
    std::printf("%-20s %-8s %-9s %s\n", f.name.c_str(), f.present ? "present" : "missing",
                f.required ? "required" : "optional", f.detail.c_str());
  }
  if (k.RequiredPresent()) {
    std::printf("Looks good.\n");
    return 0;
  }
  std::printf("Some required features are missing: dump and restore will not work.\n");
  return 1;
}

}  // namespace lz
