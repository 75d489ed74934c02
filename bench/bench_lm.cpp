// Prints one JSON line: training and decode bytes/s (fp32, bf16) of a ~10M
// parameter isotropic byte Transformer, and MFU against a same-run matmul.
// Usage: bench_lm [--config FILE] [--batch B] [--seq-len L] [--steps N] [--threads T]
#include <cstdio>
#include <cstring>
#include <iostream>

#include "bench/lm_bench.h"
#include "core/error.h"
#include "core/runtime.h"

static int run(int argc, char** argv) {
  dynarch::LmBenchOptions o;
  o.config = dynarch::default_bench_config();
  for (const auto& [k, v] : dynarch::option_pairs(argc, argv, "bench_lm")) {
    if (k == "--config") o.config = dynarch::ModelConfig::from_file(v);
    else if (k == "--batch") o.batch = std::stoll(v);
    else if (k == "--seq-len") o.seq_len = std::stoll(v);
    else if (k == "--steps") o.train_steps = std::stoll(v);
    else if (k == "--threads") o.threads = std::stoi(v);
    else if (k == "--decode-bytes") o.decode_bytes = std::stoll(v);
    else if (k == "--device") o.device = v;
    else throw dynarch::UserError("unknown option " + k);
  }
  std::cout << dynarch::run_lm_bench(o).dump() << std::endl;
  return 0;
}

int main(int argc, char** argv) { return dynarch::bench_main(argc, argv, run); }
