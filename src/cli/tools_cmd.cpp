// dynarch info (parameters and FLOPs), bench (one JSON line of throughput),
// reasoning (the synthetic rule-reasoning dataset).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <memory>

#include "bench/lm_bench.h"
#include "cli/verbs.h"
#include "core/error.h"
#include "data/reasoning.h"
#include "run/checkpoint.h"
#include "train/options.h"

namespace dynarch::cli {

namespace {

struct InfoArgs {
  std::string config, model;
  int64_t seq_len = 1024;
  bool json = false;
};

struct BenchArgs {
  LmBenchOptions bo;
  std::string config, dtype = "both";
};

struct ReasoningArgs {
  std::string out;
  int64_t train = 10000, test = 1000;
  reasoning::GenOptions opt;
};

void run_info(const InfoArgs& a) {
  check(a.config.empty() != a.model.empty(), "info: give exactly one of --config or -m");
  auto cfg = a.config.empty() ? ModelConfig::from_file(resolve_model_dir(a.model) + "/config.json")
                              : ModelConfig::from_file(a.config);
  ByteLM m(cfg);
  nlohmann::json j{{"params", m.num_parameters()}, {"stages", cfg.num_stages()},
                   {"flops_per_byte_fwd", m.flops_per_byte(a.seq_len)}, {"seq_len", a.seq_len},
                   {"lr_multipliers", TrainOptions{}.lr_mults_for(cfg)}, {"config", cfg.to_json()}};
  if (a.json) {
    std::cout << j.dump() << std::endl;
    return;
  }
  std::string mults;
  for (double x : j["lr_multipliers"]) mults += (mults.empty() ? "" : ", ") + fmt::format("{:.3g}", x);
  const double params = (double)m.num_parameters();
  std::cout << fmt::format(
      "model              {}\nlayout             {}\nd_model            {}\nchunking stages    {}\n"
      "parameters         {} ({:.2f} M)\nforward FLOPs/byte {:.3g} at seq_len {}\nLR multipliers     {}\n"
      "(--json prints all of it, the config included, as one JSON line)\n",
      a.config.empty() ? a.model : a.config, cfg.arch_layout.dump(), nlohmann::json(cfg.d_model).dump(),
      cfg.num_stages(), (long long)params, params / 1e6, j["flops_per_byte_fwd"].get<double>(), a.seq_len, mults);
}

void run_reasoning(const ReasoningArgs& a) {
  check(a.train >= 1, "--train-per-depth must be >= 1, got " + std::to_string(a.train));
  check(a.test >= 1, "--test-per-depth must be >= 1, got " + std::to_string(a.test));
  check(a.opt.max_depth >= 0 && a.opt.max_depth <= reasoning::kMaxDepth,
        "--max-depth must be in 0.." + std::to_string(reasoning::kMaxDepth) + ", got " +
            std::to_string(a.opt.max_depth));
  auto m = reasoning::write_dataset(a.out, a.opt, a.train, a.test);
  std::printf("%s: %lld training and %lld test items (%s world, depths 0..%d) -> %s/{train,test}.jsonl\n",
              a.out.c_str(), (long long)m["counts"]["train"]["items"].get<int64_t>(),
              (long long)m["counts"]["test"]["items"].get<int64_t>(), a.opt.closed_world ? "closed" : "open",
              a.opt.max_depth, a.out.c_str());
}

}  // namespace

std::vector<Verb> add_tools(CLI::App& app, const Globals& g) {
  auto* in = app.add_subcommand("info", "parameters and FLOPs per byte of a config or a trained model");
  auto i = std::make_shared<InfoArgs>();
  in->add_option("--config", i->config, "model config JSON");
  in->add_option("-m,--model", i->model, "run or checkpoint directory");
  in->add_option("--seq-len", i->seq_len, "context length for the attention FLOPs")->capture_default_str();
  in->add_flag("--json", i->json, "one JSON line (parameters, FLOPs, LR multipliers, config) for scripts");

  auto* be = app.add_subcommand("bench", "throughput benchmark (one JSON line)");
  auto b = std::make_shared<BenchArgs>();
  be->add_option("--config", b->config, "model config (default: ~10M isotropic Transformer)");
  be->add_option("--batch", b->bo.batch)->capture_default_str();
  be->add_option("--seq-len", b->bo.seq_len)->capture_default_str();
  be->add_option("--steps", b->bo.train_steps, "timed training steps (0: no training timing)")->capture_default_str();
  be->add_option("--dtype", b->dtype, "fp32, bf16 (autocast) or both")
      ->check(CLI::IsMember({"fp32", "bf16", "both"}))
      ->capture_default_str();
  be->add_option("--decode-bytes", b->bo.decode_bytes, "bytes stepped per decode row (0: no decode timing)")
      ->capture_default_str();
  be->add_option("--decode-batch", b->bo.decode_batch, "decode rows stepped together (bytes/s counts all)")
      ->capture_default_str();
  be->add_option("--data", b->bo.data, "a file whose bytes feed training and decode (default: random bytes)");
  add_device_option(be, b->bo.device);

  auto* rs = app.add_subcommand("reasoning", "write the synthetic multi-hop rule-reasoning dataset (JSONL)");
  auto r = std::make_shared<ReasoningArgs>();
  rs->add_option("--out", r->out, "output directory (train.jsonl, test.jsonl, manifest.json)")->required();
  rs->add_option("--train-per-depth", r->train, "training items per depth")->capture_default_str();
  rs->add_option("--test-per-depth", r->test, "test items per depth")->capture_default_str();
  rs->add_option("--max-depth", r->opt.max_depth, "depths 0..D")->capture_default_str();
  rs->add_option("--seed", r->opt.seed)->capture_default_str();
  rs->add_flag("--closed-world", r->opt.closed_world, "True/False by negation as failure (default: open world)");
  rs->add_option("--distractor-facts", r->opt.distractor_facts, "at most this many distractor facts (0: none)")
      ->capture_default_str();
  rs->add_option("--distractor-rules", r->opt.distractor_rules, "at most this many distractor rules (>= 1)")
      ->capture_default_str();

  return {{in, [i] { run_info(*i); }},
          {be,
           [b, &g] {
             b->bo.threads = g.threads;
             b->bo.fp32 = b->dtype != "bf16";
             b->bo.bf16 = b->dtype != "fp32";
             b->bo.config = b->config.empty() ? default_bench_config() : ModelConfig::from_file(b->config);
             std::cout << run_lm_bench(b->bo).dump() << std::endl;
           }},
          {rs, [r] { run_reasoning(*r); }}};
}

}  // namespace dynarch::cli
