#include "core/runtime.h"

#include "core/device.h"
#include "core/error.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h>
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

namespace dynarch {

double read_loadavg() {
  double l = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = -1;
    std::fclose(f);
  }
  return l;
}

bool cpu_has_flag(const std::string& flag) {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("flags", 0) == 0) return (line + " ").find(" " + flag + " ") != std::string::npos;
  return false;
}

bool cpu_has_avx512() { return cpu_has_flag("avx512f"); }

bool cpu_has_native_bf16() { return cpu_has_flag("avx512_bf16") || cpu_has_flag("amx_bf16"); }

std::string resolve_dtype(const std::string& dtype) {
  check(dtype == "fp32" || dtype == "bf16" || dtype == "auto", "--dtype must be fp32, bf16 or auto, got " + dtype);
  const bool native = cpu_has_native_bf16();
  if (dtype == "auto") return native ? "bf16" : "fp32";
  static bool warned = false;
  if (dtype == "bf16" && !native && !warned) {
    warned = true;
    std::fprintf(stderr, "warning: this CPU has no AVX512-BF16/AMX: bf16 matmuls run on a slow reference path "
                         "(often 10x slower than fp32 here); prefer --dtype fp32 or auto\n");
  }
  return dtype;
}

bool keep_freed_memory_from_env(const char* value) {
  if (!value || !*value || std::strcmp(value, "keep") == 0) return true;
  if (std::strcmp(value, "system") == 0) return false;
  throw UserError(std::string("DYNARCH_MALLOC must be \"keep\" (default) or \"system\", got \"") + value + "\"");
}

bool keep_freed_memory() {
  // Training frees and re-allocates the same large activation buffers every
  // step; glibc serves those from fresh mmaps, so every step pays page faults
  // and zeroing. Keeping freed memory in the heap made a T6 d384 training step
  // 17 % faster (docs/benchmarks.md).
  bool keep = true;
  try {
    keep = keep_freed_memory_from_env(std::getenv("DYNARCH_MALLOC"));
  } catch (const UserError& e) {  // runs before main's error handling
    std::fprintf(stderr, "error: %s\n", e.what());
    std::exit(2);
  }
  if (!keep) return false;
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}

std::string tunables_with_hugetlb(const char* current) {
  const std::string cur = current ? current : "";
  if (cur.find("glibc.malloc.hugetlb") != std::string::npos) return "";  // the user's own choice
  return cur.empty() ? "glibc.malloc.hugetlb=1" : cur + ":glibc.malloc.hugetlb=1";
}

namespace {
// Transparent huge pages usable through madvise ("always" or "madvise" selected)?
bool thp_available() {
  std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return s.find("[always]") != std::string::npos || s.find("[madvise]") != std::string::npos;
}
}  // namespace

void maybe_reexec_for_blas(int argc, char** argv) {
  const bool keep = keep_freed_memory();
  if (std::getenv("DYNARCH_NO_REEXEC")) return;
  bool reexec = false;
  const char* ct = std::getenv("OPENBLAS_CORETYPE");
  // Set but wrong on an AVX-512 CPU (unset: OpenBLAS auto-detects correctly).
  if (cpu_has_avx512() && ct && std::strcmp(ct, "SkylakeX") != 0) {
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    reexec = true;
  }
  // glibc reads its tunables at start-up only. With transparent huge pages for the
  // heap a training step re-faults ~35x fewer pages (the kept heap was still
  // faulted page by page each step: 130 k faults per T6 d1024 step); 5-8 % faster.
  if (keep && thp_available()) {
    const std::string t = tunables_with_hugetlb(std::getenv("GLIBC_TUNABLES"));
    if (!t.empty()) {
      setenv("GLIBC_TUNABLES", t.c_str(), 1);
      reexec = true;
    }
  }
  if (!reexec) return;
  setenv("DYNARCH_NO_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);  // on failure just continue, slower
}

void set_threads(int threads) {
  // DYNARCH_THREADS: default for runs that do not pass --threads (e.g. experiment
  // scripts run side by side, one thread each, instead of oversubscribing the cores).
  if (threads <= 0)
    if (const char* e = std::getenv("DYNARCH_THREADS"); e && *e) {
      char* end = nullptr;
      const long v = std::strtol(e, &end, 10);
      check(*end == '\0' && v > 0 && v <= 4096,
            std::string("DYNARCH_THREADS must be a positive integer, got \"") + e + "\"");
      threads = (int)v;
    }
  if (threads <= 0) threads = (int)std::max(1u, std::thread::hardware_concurrency());
  at::set_num_threads(threads);
}

int num_threads() { return at::get_num_threads(); }

double measure_matmul_gflops(bool bf16, int n, int reps, c10::Device device) {
  auto opts = at::TensorOptions().dtype(bf16 ? at::kBFloat16 : at::kFloat).device(device);
  auto a = at::randn({n, n}, opts), b = at::randn({n, n}, opts);
  auto c = at::mm(a, b);  // warm-up
  synchronize(device);
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    c = at::mm(a, b);
    synchronize(device);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, dt);
  }
  return 2.0 * n * n * (double)n / best / 1e9;
}

std::string env_report(bool measure) {
  std::string s = "torch " + std::to_string(TORCH_VERSION_MAJOR) + "." +
                  std::to_string(TORCH_VERSION_MINOR) + " | threads " +
                  std::to_string(num_threads()) + " | avx512 " + (cpu_has_avx512() ? "yes" : "no") +
                  " | native bf16 " + (cpu_has_native_bf16() ? "yes" : "no");
  const char* ct = std::getenv("OPENBLAS_CORETYPE");
  s += std::string(" | OPENBLAS_CORETYPE ") + (ct ? ct : "(auto)");
  if (measure) {
    char buf[128];
    std::snprintf(buf, sizeof buf, " | sgemm %.0f GFLOP/s | bf16 gemm %.0f GFLOP/s",
                  measure_matmul_gflops(false, 512, 3), measure_matmul_gflops(true, 512, 3));
    s += buf;
  }
  return s;
}

}  // namespace dynarch
