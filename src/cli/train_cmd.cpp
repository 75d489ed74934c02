// dynarch train: a new run from a config (flags over an --options file), or --resume.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>

#include "cli/verbs.h"
#include "core/device.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "train/trainer.h"

namespace dynarch::cli {

namespace {

struct TrainArgs {
  TrainOptions to;
  std::string config_path, options_path, resume, device;
  int64_t stop_at = -1, kill_at = -1;
};

void add_options(CLI::App* tr, TrainArgs& a) {
  auto& to = a.to;
  tr->add_option("--config", a.config_path, "model config JSON (official H-Net format)");
  tr->add_option("--options", a.options_path, "training options JSON (fields as the flags, e.g. seq_len)");
  tr->add_option("--data", to.data, "corpus directory (train.bin, val.bin) or a single byte file");
  tr->add_option("--out", to.out, "run directory");
  tr->add_option("--resume", a.resume, "continue the run in this directory exactly where it stopped");
  tr->add_option("--device", a.device,
                 std::string(kDeviceHelp) + "; default: the --options file's, else auto; with --resume: the run's");
  tr->add_option("--init-from", to.init_from,
                 "new run: start from this run's weights where names and shapes match (fresh optimizer)");
  tr->add_option("--steps", to.steps, "optimizer steps")->capture_default_str();
  tr->add_option("--batch", to.batch, "sequences per micro-batch")->capture_default_str();
  tr->add_option("--seq-len", to.seq_len, "bytes per sequence")->capture_default_str();
  tr->add_option("--accum", to.accum, "gradient accumulation micro-batches")->capture_default_str();
  tr->add_option("--lr", to.lr, "peak learning rate")->capture_default_str();
  tr->add_option("--min-lr-ratio", to.min_lr_ratio, "final LR / peak LR")->capture_default_str();
  tr->add_option("--warmup", to.warmup, "warm-up fraction of steps")->capture_default_str();
  tr->add_option("--decay", to.decay, "decay (cool-down) fraction of steps")->capture_default_str();
  tr->add_option("--weight-decay", to.weight_decay, "AdamW weight decay")->capture_default_str();
  tr->add_option("--beta1", to.beta1)->capture_default_str();
  tr->add_option("--beta2", to.beta2)->capture_default_str();
  tr->add_option("--clip", to.clip, "gradient clipping max norm (0 = off)")->capture_default_str();
  tr->add_option("--dtype", to.dtype, "fp32, bf16 (autocast) or auto (bf16 where the CPU has native bf16)")
      ->capture_default_str();
  tr->add_option("--seed", to.seed)->capture_default_str();
  tr->add_option("--eval-every", to.eval_every, "validation every N steps")->capture_default_str();
  tr->add_option("--eval-windows", to.eval_windows, "validation windows")->capture_default_str();
  tr->add_option("--save-every", to.save_every, "checkpoint every N steps")->capture_default_str();
  tr->add_option("--stop-at", a.stop_at, "stop with a checkpoint after this step (testing resume)");
  tr->add_option("--kill-at", a.kill_at, "SIGKILL itself after this step (testing crash recovery)")->group("");
  tr->add_option("--ratio-targets", to.ratio_targets, "H-Net: target bytes per chunk N per stage (default 6 | 3,3)")
      ->delimiter(',');
  tr->add_option("--ratio-alpha", to.ratio_alpha, "H-Net: ratio-loss weight")->capture_default_str();
  tr->add_option("--lr-multipliers", to.lr_multipliers, "per-stage LR multipliers (default: hnet.md formula)")
      ->delimiter(',');
  tr->add_option("--zero", to.zero, "data-parallel runs: shard the optimizer state over the ranks (ZeRO-1; 0 = off)")
      ->capture_default_str();
  tr->add_option("--packed", to.packed,
                 "H-Net: inner stages on packed sequences, no padding (1) or on padded rows (0)")
      ->capture_default_str();
  tr->add_option("--log-gains-every", to.gains_every, "HC/mHC: log stream-mixing gains every N steps (0 = off)")
      ->capture_default_str();
}

// Flags given on the command line override the --options file.
TrainOptions merged_options(const TrainArgs& a) {
  if (a.options_path.empty()) return a.to;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(io::read_file(a.options_path));
  } catch (const nlohmann::json::exception& e) {
    fail("training options " + a.options_path + " are not valid JSON: " + e.what());
  }
  auto base = TrainOptions::from_json(j, a.options_path);
  auto cli = a.to.to_json(), dflt = TrainOptions{}.to_json(), merged = base.to_json();
  for (auto& [k, v] : cli.items())
    if (v != dflt[k]) merged[k] = v;
  return TrainOptions::from_json(merged, a.options_path);
}

}  // namespace

Verb add_train(CLI::App& app, const Globals& g) {
  auto* tr = app.add_subcommand("train", "train a byte language model (or a classifier: config task)");
  auto a = std::make_shared<TrainArgs>();
  add_options(tr, *a);
  return {tr, [a, &g] {
            RunControl ctl{g.threads, g.progress(), a->stop_at, a->kill_at, a->resume.empty() ? "" : a->device};
            TrainResult r;
            if (!a->resume.empty()) {
              r = train_resume(a->resume, ctl);
            } else {
              auto to = merged_options(*a);
              if (!a->device.empty()) to.device = a->device;
              check(!a->config_path.empty(), "train: --config FILE is required (see configs/)");
              r = train_new(to, ModelConfig::from_file(a->config_path), ctl);
            }
            std::printf("%s\n", r.summary.c_str());
          }};
}

}  // namespace dynarch::cli
