// Page store and fault-path micro-benchmarks, each beside its physical limit measured in the
// same run: memcpy of the same bytes, raw pread of the same file, a bare UFFDIO_COPY.
//
//   build/bench/page_store_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <zstd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "images/page_store.h"
#include "images/pagemap.h"

namespace lz {
namespace {

constexpr size_t P = img::kPageSize;
constexpr size_t kPages = 8192;  // 32 MiB per write pass

enum Data { kRandom = 0, kText = 1, kZero = 2 };

std::vector<std::byte> MakeData(Data kind, size_t pages) {
  std::vector<std::byte> v(pages * P);
  std::mt19937_64 rng(42);
  static const char* kWords[] = {"user:", "1234 ", "session ", "GET /index.html ", "200 ", "\n"};
  size_t i = 0;
  while (i < v.size() && kind != kZero) {
    if (kind == kRandom) {
      uint64_t x = rng();
      std::memcpy(v.data() + i, &x, 8);
      i += 8;
      continue;
    }
    for (const char* w = kWords[rng() % 6]; *w && i < v.size(); w++) {
      v[i++] = static_cast<std::byte>(*w);
    }
  }
  return v;
}

std::string TmpPath(const char* name) {
  return std::string("/dev/shm/lz-bench-") + name + "-" + std::to_string(getpid());
}

// Args: data kind, zstd level (0 = --compress none).
void BM_WritePageStore(benchmark::State& state) {
  auto data = MakeData(static_cast<Data>(state.range(0)), kPages);
  img::PageStoreOptions opts;
  opts.compression = state.range(1) == 0 ? img::Compression::kNone : img::Compression::kZstd;
  opts.level = static_cast<int>(state.range(1));
  std::string path = TmpPath("write");
  uint64_t out = 0;
  for (auto _ : state) {
    auto w = img::PageStoreWriter::Create(path, opts);
    if (!w || !(*w)->Append(data)) {
      state.SkipWithError("write failed");
      break;
    }
    auto st = (*w)->Finish();
    out = st->bytes_out;
  }
  unlink(path.c_str());
  state.SetBytesProcessed(state.iterations() * data.size());
  state.counters["ratio"] = double(data.size()) / double(out);
}
BENCHMARK(BM_WritePageStore)
    ->ArgsProduct({{kRandom, kText, kZero}, {0, 1, 3}})
    ->ArgNames({"data", "level"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_MemcpyLimit(benchmark::State& state) {
  auto data = MakeData(kRandom, kPages);
  std::vector<std::byte> dst(data.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), data.data(), data.size());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * data.size());
}
BENCHMARK(BM_MemcpyLimit)->Unit(benchmark::kMillisecond)->UseRealTime();

// Random chunk read + decode. Args: chunk pages, zstd level (0 = none). Text-like data.
void BM_ReadChunk(benchmark::State& state) {
  img::PageStoreOptions opts;
  opts.chunk_pages = static_cast<uint32_t>(state.range(0));
  opts.compression = state.range(1) == 0 ? img::Compression::kNone : img::Compression::kZstd;
  opts.level = static_cast<int>(state.range(1));
  std::string path = TmpPath("read");
  {
    auto w = img::PageStoreWriter::Create(path, opts);
    (void)(*w)->Append(MakeData(kText, kPages));
    (void)(*w)->Finish();
  }
  auto r = img::PageStoreReader::Open(path);
  std::vector<std::byte> scratch((*r)->max_stored_size());
  std::vector<std::byte> out(opts.chunk_pages * P);
  ZSTD_DCtx* d = ZSTD_createDCtx();
  std::mt19937 rng(1);
  for (auto _ : state) {
    uint64_t k = rng() % (*r)->chunk_count();
    if (!(*r)->ReadChunk(k, scratch, out, d)) {
      state.SkipWithError("read failed");
      break;
    }
  }
  ZSTD_freeDCtx(d);
  unlink(path.c_str());
  state.SetBytesProcessed(state.iterations() * opts.chunk_pages * P);
}
BENCHMARK(BM_ReadChunk)
    ->ArgsProduct({{4, 16, 64}, {0, 1, 3}})
    ->ArgNames({"chunk_pages", "level"})
    ->Unit(benchmark::kMicrosecond);

// The raw pread of the same number of bytes from a page-cached file.
void BM_PreadLimit(benchmark::State& state) {
  size_t len = static_cast<size_t>(state.range(0)) * P;
  std::string path = TmpPath("pread");
  auto data = MakeData(kText, kPages);
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  (void)!write(fd, data.data(), data.size());
  std::vector<std::byte> out(len);
  std::mt19937 rng(1);
  for (auto _ : state) {
    off_t off = static_cast<off_t>((rng() % (kPages / state.range(0))) * len);
    benchmark::DoNotOptimize(pread(fd, out.data(), len, off));
  }
  close(fd);
  unlink(path.c_str());
  state.SetBytesProcessed(state.iterations() * len);
}
BENCHMARK(BM_PreadLimit)->Arg(4)->Arg(16)->Arg(64)->ArgName("pages")->Unit(benchmark::kMicrosecond);

void BM_PagemapLookup(benchmark::State& state) {
  img::Pagemap pm;
  for (uint64_t i = 0; i < static_cast<uint64_t>(state.range(0)); i++) {
    pm.Append({0x10000000 + i * 8 * P, 3, img::kPagePresent, i * 3}, false);
  }
  std::mt19937_64 rng(3);
  uint64_t span = static_cast<uint64_t>(state.range(0)) * 8 * P;
  for (auto _ : state) {
    benchmark::DoNotOptimize(pm.Find(0x10000000 + rng() % span));
  }
}
BENCHMARK(BM_PagemapLookup)->Arg(1000)->Arg(100000)->ArgName("runs");

// The bare kernel cost a fault pays at least: UFFDIO_COPY of N pages into missing memory.
void BM_UffdCopyLimit(benchmark::State& state) {
  size_t pages = static_cast<size_t>(state.range(0));
  size_t region = 16384 * P;
  int uffd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (uffd < 0) {
    state.SkipWithError("no userfaultfd");
    return;
  }
  uffdio_api api{UFFD_API, 0, 0};
  ioctl(uffd, UFFDIO_API, &api);
  auto* mem = static_cast<std::byte*>(
      mmap(nullptr, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  uffdio_register reg{{reinterpret_cast<uint64_t>(mem), region}, UFFDIO_REGISTER_MODE_MISSING, 0};
  ioctl(uffd, UFFDIO_REGISTER, &reg);
  auto src = MakeData(kRandom, pages);
  size_t at = 0;
  for (auto _ : state) {
    if (at + pages * P > region) {
      state.PauseTiming();
      madvise(mem, region, MADV_DONTNEED);  // missing again
      at = 0;
      state.ResumeTiming();
    }
    uffdio_copy c{reinterpret_cast<uint64_t>(mem + at), reinterpret_cast<uint64_t>(src.data()),
                  pages * P, 0, 0};
    ioctl(uffd, UFFDIO_COPY, &c);
    at += pages * P;
  }
  munmap(mem, region);
  close(uffd);
  state.SetBytesProcessed(state.iterations() * pages * P);
}
BENCHMARK(BM_UffdCopyLimit)
    ->Arg(1)
    ->Arg(16)
    ->Arg(64)
    ->ArgName("pages")
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace lz

BENCHMARK_MAIN();
