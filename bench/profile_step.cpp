// Per-op profile of one training step (and optionally decode steps): runs the
// legacy autograd profiler and prints the ops that take the most self time.
// Usage: profile_step [--config FILE] [--batch B] [--seq-len L] [--dtype fp32|bf16] [--decode N]
//                     [--data FILE (real text instead of random bytes)] [--threads N]
//                     [--model RUN (trained weights and their config)] [--device auto]
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bench/lm_bench.h"
#include "core/device.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "core/compat.h"
#include "core/runtime.h"
#include "data/corpus.h"
#include "train/lm_objective.h"
#include "model/lm.h"
#include "run/checkpoint.h"

using namespace dynarch;

static int run(int argc, char** argv) {
  ModelConfig cfg = default_bench_config();
  int64_t B = 8, L = 512, decode = 0;
  std::string dtype = "bf16", data, model_dir, device_spec = "auto";
  int threads = 0;
  for (const auto& [k, v] : option_pairs(argc, argv, "profile_step")) {
    if (k == "--config") cfg = ModelConfig::from_file(v);
    else if (k == "--batch") B = std::stoll(v);
    else if (k == "--seq-len") L = std::stoll(v);
    else if (k == "--dtype") dtype = v;
    else if (k == "--decode") decode = std::stoll(v);
    else if (k == "--data") data = v;
    else if (k == "--model") {
      model_dir = v;
      cfg = ModelConfig::from_file(resolve_model_dir(v) + "/config.json");
    }
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--device") device_spec = v;
    else throw UserError("unknown option " + k);
  }
  const auto device = resolve_device(device_spec);
  DeviceScope on_device(device);
  set_threads(threads);
  torch::manual_seed(0);
  ByteLM model(cfg);
  model.to(device);
  auto ids = torch::randint(0, 256, {B, L}, at::kLong), tg = torch::randint(0, 256, {B, L}, at::kLong);
  if (!data.empty()) {  // real text: H-Net boundaries as in use
    auto f = std::make_shared<MappedFile>(data);
    ByteSpan span{f, 0, f->size(), data};
    auto batch = windows_at(span, spread_offsets(span.size, L, B), L);
    ids = batch.inputs;
    tg = batch.targets;
  }
  auto step = [&] {
    compat::AutocastScope ac(dtype == "bf16");
    auto loss = lm_loss(model.forward(ids), tg);
    loss.backward();
  };
  if (decode == 0) step();  // warm-up
  if (!model_dir.empty()) {  // trained weights
    auto loaded = load_model(model_dir);
    torch::NoGradGuard ng;
    auto src = loaded->named_parameters();
    for (auto& kv : model.named_parameters()) kv.value().copy_(src[kv.key()]);
  }
  std::stringstream trace;
  {
    torch::autograd::profiler::RecordProfile guard(trace);
    if (decode > 0) {
      torch::NoGradGuard ng;
      compat::AutocastScope ac(dtype == "bf16");
      auto st = model.new_state(1);
      auto tok = at::tensor({kBOS}, at::kLong);
      for (int64_t i = 0; i < decode; ++i) {  // teacher-forced on --data, else greedy
        auto next = model.step(tok, st).argmax(-1);
        tok = data.empty() ? next : ids.select(0, 0).narrow(0, i % L, 1);
      }
    } else {
      step();
    }
  }
  std::cout << trace.str();
  return 0;
}

int main(int argc, char** argv) { return bench_main(argc, argv, run); }
