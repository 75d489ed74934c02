// Throughput benchmark of a byte LM: training and decode bytes/s in fp32 and
// bf16, MFU against a matmul measured in the same run, and (on CUDA) the peak
// memory of each phase.
#pragma once
#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "model/config/config.h"

namespace dynarch {

struct LmBenchOptions {
  ModelConfig config;
  int64_t batch = 8, seq_len = 512, train_steps = 6, warmup_steps = 2, decode_bytes = 256;
  int64_t decode_batch = 1;  // rows stepped together (bytes/s counts all rows)
  int threads = 0;
  bool fp32 = true, bf16 = true;
  std::string device = "auto";  // --device (core/device.h)
  std::string data;             // a file whose bytes feed training and decode (empty: random bytes)
};

// The ~10M-parameter isotropic Transformer used by bench/bench_lm.
ModelConfig default_bench_config();

nlohmann::json run_lm_bench(const LmBenchOptions& o);

// The benchmark programs' "--name value" pairs. A name without a value (also
// --help) is an error that points to the usage comment at the top of
// bench/<program>.cpp; callers reject unknown names.
std::vector<std::pair<std::string, std::string>> option_pairs(int argc, char** argv, const std::string& program);

// main() of a benchmark program: maybe_reexec_for_blas, then run; an exception
// is printed as "error: ..." with exit status 2.
int bench_main(int argc, char** argv, int (*run)(int, char**));

// Median of a non-empty list; /proc/loadavg's first three fields (timings on
// this shared machine are reported with the load they ran under).
double median(std::vector<double> v);
std::string loadavg();

class ByteLM;
// Mean seconds per training step (forward, loss incl. H-Net ratio terms,
// backward, clipping, AdamW) over `steps` after `warmup` untimed steps.
// cpu_s (optional): mean process CPU seconds per step, which with one thread
// is robust to time slicing by other processes.
double time_train_steps(ByteLM& model, const at::Tensor& inputs, const at::Tensor& targets, bool bf16,
                        int64_t steps, int64_t warmup, double* cpu_s = nullptr);
// Process CPU time in seconds.
double cpu_seconds();
// Bytes/s of teacher-forced decoding on the step path: row b is fed
// inputs[b, t] at step t (so boundaries occur as in real use).
// cpu_bps (optional): bytes per process CPU second.
double time_decode(ByteLM& model, const at::Tensor& inputs, bool bf16, double* cpu_bps = nullptr);

}  // namespace dynarch
