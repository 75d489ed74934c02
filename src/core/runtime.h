// Process-wide runtime set-up: thread count, BLAS core type, environment report.
#pragma once
#include <c10/core/Device.h>

#include <string>

namespace dynarch {

// Re-executes the current process once (DYNARCH_NO_REEXEC marks the second run)
// with OPENBLAS_CORETYPE=SkylakeX when the CPU has AVX-512 and the variable says
// otherwise (OpenBLAS reads it at load time; Haswell kernels halve fp32 GEMM
// throughput), and with glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES when
// transparent huge pages are available and DYNARCH_MALLOC is not "system" (glibc
// reads tunables at start-up). Call first thing in main().
void maybe_reexec_for_blas(int argc, char** argv);
// GLIBC_TUNABLES value with glibc.malloc.hugetlb=1 appended; "" when `current`
// already sets glibc.malloc.hugetlb (left as the user chose).
std::string tunables_with_hugetlb(const char* current);
// Freed memory stays in the process heap (no per-step page faults on large
// activations); called by maybe_reexec_for_blas. DYNARCH_MALLOC: keep (default)
// or system (glibc's default); another value exits 2 with a message. Returns
// whether the setting is on.
bool keep_freed_memory();
// DYNARCH_MALLOC's value (null or empty = unset) -> keep freed memory? Throws
// UserError naming the variable for an unknown value.
bool keep_freed_memory_from_env(const char* value);

// threads <= 0 means all cores.
void set_threads(int threads);
int num_threads();

bool cpu_has_avx512();
bool cpu_has_flag(const std::string& flag);  // a /proc/cpuinfo flag, e.g. "avx512_bf16"
// AVX512-BF16 or AMX: bf16 matmuls are fast (oneDNN); without them LibTorch
// 1.13 falls back to a reference bf16 GEMM that is far slower than fp32.
bool cpu_has_native_bf16();
// "auto" -> bf16 where native, else fp32; "bf16" without native support warns once.
std::string resolve_dtype(const std::string& dtype);

// Measured square-matmul throughput in GFLOP/s (fp32 or bf16), best of a few runs, on `device`.
double measure_matmul_gflops(bool bf16, int n = 1024, int reps = 5, c10::Device device = c10::kCPU);

// The 1-minute load average (/proc/loadavg), -1 if unknown: benchmarks print it
// because the machines are shared.
double read_loadavg();

// One line: torch version, threads, BLAS GFLOP/s, bf16 support.
std::string env_report(bool measure = true);

}  // namespace dynarch
