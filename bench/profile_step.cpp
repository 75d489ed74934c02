// Per-op profile of one training step (and optionally decode steps): runs the
// legacy autograd profiler and prints the ops that take the most self time.
// Usage: profile_step [--config FILE] [--batch B] [--seq-len L] [--dtype fp32|bf16] [--decode N]
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bench/lm_bench.h"
#include "core/compat.h"
#include "core/runtime.h"
#include "infer/evaluate.h"
#include "model/lm.h"

using namespace dynarch;

int main(int argc, char** argv) {
  maybe_reexec_for_blas(argc, argv);
  ModelConfig cfg = default_bench_config();
  int64_t B = 8, L = 512, decode = 0;
  std::string dtype = "bf16";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--config") cfg = ModelConfig::from_file(v);
    else if (k == "--batch") B = std::stoll(v);
    else if (k == "--seq-len") L = std::stoll(v);
    else if (k == "--dtype") dtype = v;
    else if (k == "--decode") decode = std::stoll(v);
  }
  set_threads(0);
  torch::manual_seed(0);
  ByteLM model(cfg);
  auto ids = torch::randint(0, 256, {B, L}, at::kLong), tg = torch::randint(0, 256, {B, L}, at::kLong);
  auto step = [&] {
    compat::AutocastScope ac(dtype == "bf16");
    auto loss = lm_loss(model.forward(ids), tg);
    loss.backward();
  };
  step();  // warm-up
  std::stringstream trace;
  {
    torch::autograd::profiler::RecordProfile guard(trace);
    if (decode > 0) {
      torch::NoGradGuard ng;
      compat::AutocastScope ac(dtype == "bf16");
      auto st = model.new_state(1);
      auto tok = at::tensor({kBOS}, at::kLong);
      for (int64_t i = 0; i < decode; ++i) tok = model.step(tok, st).argmax(-1);
    } else {
      step();
    }
  }
  std::cout << trace.str();
}
