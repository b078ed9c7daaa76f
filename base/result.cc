#include "base/result.h"

#include <cstring>

namespace lz {

std::string Error::Message() const {
  std::string out = op;
  if (!context.empty()) {
    out += out.empty() ? context : " " + context;
  }
  if (code != 0) {
    out += ": ";
    out += std::strerror(code);
  }
  return out;
}

Error Error::Wrap(const std::string& outer) const {
  Error e = *this;
  e.op = outer + ": " + op;
  return e;
}

}  // namespace lz
