#include "base/vdso.h"

#include <span>
#include <string>

#include "base/crc32c.h"
#include "base/file_util.h"
#include "base/proc.h"

namespace lz {

Result<VdsoInfo> OwnVdso() {
  LZ_ASSIGN_OR_RETURN(std::string maps, ReadFileToString("/proc/self/maps"));
  LZ_ASSIGN_OR_RETURN(std::vector<ProcVma> vmas, ParseSmaps(maps));
  for (const ProcVma& v : vmas) {
    if (v.path != "[vdso]") {
      continue;
    }
    VdsoInfo info;
    info.start = v.start;
    info.size = v.end - v.start;
    std::span<const std::byte> code(reinterpret_cast<const std::byte*>(v.start), info.size);
    info.crc = Crc32c(code);
    for (size_t i = 0; i + 1 < code.size(); i++) {
      if (code[i] == std::byte{0x0f} && code[i + 1] == std::byte{0x05}) {
        info.syscall_off = i;
        return info;
      }
    }
    return Invalid("vdso", "no syscall instruction in this kernel's vDSO");
  }
  return Invalid("vdso", "this process has no [vdso] (booted with vdso=0?)");
}

}  // namespace lz
