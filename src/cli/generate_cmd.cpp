// dynarch generate: sampling on the step path, streamed as UTF-8.
#include <cstdio>
#include <memory>

#include "cli/verbs.h"
#include "core/device.h"
#include "core/forward_context.h"
#include "core/runtime.h"
#include "infer/generate.h"
#include "run/checkpoint.h"

namespace dynarch::cli {

namespace {

struct GenerateArgs {
  std::string model, prompt, dtype = "fp32", device = "auto";
  int64_t bytes = 200, samples = 1;
  SampleOptions so;
};

void run_generate(const GenerateArgs& a, const Globals& g) {
  const auto device = resolve_device(a.device);
  DeviceScope on_device(device);
  set_threads(g.threads);
  auto model = load_model(a.model, device);
  Utf8Streamer out([](const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  });
  if (a.samples > 1) {
    auto outs = generate_batch(*model, a.prompt, a.bytes, a.samples, a.so, want_bf16(a.dtype));
    for (size_t r = 0; r < outs.size(); ++r) {
      std::printf("--- sample %zu (seed %llu) ---\n", r, (unsigned long long)(a.so.seed + r));
      std::fwrite(a.prompt.data(), 1, a.prompt.size(), stdout);
      for (unsigned char c : outs[r]) out.push(c);
      out.flush();
      std::fputc('\n', stdout);
    }
    return;
  }
  std::fwrite(a.prompt.data(), 1, a.prompt.size(), stdout);
  generate(*model, a.prompt, a.bytes, a.so, want_bf16(a.dtype), [&](uint8_t b) { out.push(b); });
  out.flush();
  std::fputc('\n', stdout);
}

}  // namespace

Verb add_generate(CLI::App& app, const Globals& g) {
  auto* ge = app.add_subcommand("generate", "sample bytes from a model, streamed as UTF-8");
  auto a = std::make_shared<GenerateArgs>();
  ge->add_option("-m,--model", a->model, "run or checkpoint directory")->required();
  ge->add_option("-p,--prompt", a->prompt, "prompt text");
  ge->add_option("-n,--bytes", a->bytes, "bytes to generate")->capture_default_str();
  ge->add_option("--temperature", a->so.temperature, "0 = greedy")->capture_default_str();
  ge->add_option("--top-k", a->so.top_k, "0 = off")->capture_default_str();
  ge->add_option("--top-p", a->so.top_p, "1 = off")->capture_default_str();
  ge->add_option("--seed", a->so.seed)->capture_default_str();
  ge->add_option("--dtype", a->dtype, "fp32, bf16 or auto")->capture_default_str();
  ge->add_option("--samples", a->samples, "continuations decoded together as a batch (seeds seed..seed+K-1)")
      ->capture_default_str();
  add_device_option(ge, a->device);
  return {ge, [a, &g] { run_generate(*a, g); }};
}

}  // namespace dynarch::cli
