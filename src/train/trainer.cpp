#include "train/trainer.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/device.h"
#include "core/forward_context.h"
#include "core/runtime.h"
#include "io/atomic_file.h"
#include "io/fs_tree.h"
#include "run/checkpoint.h"
#include "run/compose.h"
#include "train/classify_objective.h"
#include "train/lm_objective.h"
#include "train/loop.h"
#include "train/metrics_log.h"
#include "train/parallel.h"

namespace dynarch {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::unique_ptr<Objective> make_objective(const TrainOptions& o, const ModelConfig& c) {
  if (c.task.classify()) return std::make_unique<ClassifierObjective>(o, c.task);
  return std::make_unique<LmObjective>(o);
}

std::unique_ptr<AdamW> make_optimizer(const TrainOptions& o, ByteLM& model) {
  AdamWOptions ao;
  ao.beta1 = o.beta1, ao.beta2 = o.beta2, ao.weight_decay = o.weight_decay;
  return std::make_unique<AdamW>(model.param_infos(o.lr_mults_for(model.config)), ao);
}

// Data parallelism of this process (RANK / WORLD_SIZE set), and the batch per
// rank for its world size: `batch` x `world` rows per micro-batch stay as saved.
std::unique_ptr<DataParallel> join_ranks(TrainOptions& o, const ModelConfig& c, bool resumed) {
  auto dp = DataParallel::from_environment();
  const int64_t world = dp ? dp->world() : 1;
  if (!resumed) {
    o.world = world;  // a new run: --batch is per rank
  } else if (world != o.world) {
    const int64_t rows = o.batch * o.world;
    check(rows % world == 0, "--batch " + std::to_string(o.batch) + " on " + std::to_string(o.world) +
                                 " rank(s) = " + std::to_string(rows) + " rows per micro-batch, which " +
                                 std::to_string(world) + " ranks cannot share equally");
    if (resumed && (!dp || dp->rank() == 0))
      std::fprintf(stderr, "world size %lld -> %lld: %lld rows per rank (global batch unchanged)\n",
                   (long long)o.world, (long long)world, (long long)(rows / world));
    o.batch = rows / world;
    o.world = world;
  }
  if (dp) {
    dp->check_same("model config", c.to_json().dump());
    dp->check_same("set of training options", o.to_json().dump());
  }
  return dp;
}

// True on every rank if it is true on rank 0 (which alone looks at the run directory).
bool on_lead(DataParallel* dp, bool lead_value) {
  if (!dp) return lead_value;
  return dp->sum({dp->rank() == 0 && lead_value ? 1.0 : 0.0})[0] > 0;
}

}  // namespace

TrainResult train_new(const TrainOptions& opts, const ModelConfig& config, const RunControl& ctl) {
  opts.validate();
  opts.targets_for(config);
  opts.lr_mults_for(config);
  TrainState s;
  s.o = opts;
  s.o.dtype = resolve_dtype(opts.dtype);  // saved resolved, so a resume computes the same way
  s.o.data = fs::absolute(opts.data).lexically_normal().string();  // resume works from any directory
  const auto device = resolve_device(s.o.device);  // before any work: a bad value fails at once
  DeviceScope on_device(device);
  PackingScope packing(s.o.packed);  // core/forward_context.h
  auto dp = join_ranks(s.o, config, false);
  s.dp = dp.get();
  const bool lead = !dp || dp->rank() == 0;
  fs::path run(opts.out);
  if (on_lead(s.dp, fs::exists(run / "checkpoint") || fs::exists(run / "checkpoint.old")))
    fail("run directory " + opts.out + " already has a checkpoint; use --resume " + opts.out +
         " to continue it or choose another --out");
  if (lead) {
    io::make_dirs(run.string());
    std::error_code ec;
    fs::remove(run / "metrics.jsonl", ec);
  }
  set_threads(ctl.threads);
  torch::manual_seed(opts.seed);
  s.model = std::make_shared<ByteLM>(config);  // initialised on the CPU: the same weights on every device
  load_pretrained_nodes(*s.model);  // H-Model nodes from trained checkpoints (hmodel.nodes[*].from)
  if (!opts.init_from.empty()) {
    std::vector<std::string> kept;
    const int64_t n = init_weights_from(opts.init_from, *s.model, &kept);
    std::string names;  // the first few names (an H-Model's nodes and heads are many)
    for (size_t i = 0; i < kept.size() && i < 4; ++i) names += (i ? ", " : "") + kept[i];
    if (kept.size() > 4) names += ", ...";
    if (ctl.progress || !kept.empty())
      std::fprintf(stderr, "init-from %s: %lld tensors copied, %zu kept fresh%s%s\n", opts.init_from.c_str(),
                   (long long)n, kept.size(), kept.empty() ? "" : ": ", names.c_str());
  }
  s.model->to(device);  // before the optimizer, whose moments are made like the parameters
  s.opt = make_optimizer(s.o, *s.model);
  if (dp) dp->start(*s.model, *s.opt, s.o.zero);
  if (ctl.progress && lead)
    std::fprintf(stderr, "model: %lld parameters, layout %s, d_model %d | %s%s\n",
                 (long long)s.model->num_parameters(), config.arch_layout.dump().c_str(), config.d_model[0],
                 env_report(false).c_str(), dp ? fmt::format(" | {} ranks", dp->world()).c_str() : "");
  auto objective = make_objective(s.o, config);
  if (dp) objective->set_shard(dp->rank(), dp->world());
  return run_training(s, *objective, ctl);
}

TrainResult train_resume(const std::string& run_dir, const RunControl& ctl) {
  auto ck = load_trainer_checkpoint(run_dir);
  TrainState s;
  const std::string options_file = run_dir + "/checkpoint/train_options.json";
  s.o = TrainOptions::from_json(ck.options, options_file);
  s.o.out = run_dir;
  // An edited or damaged options file gets the checks of a fresh run (batch 0 was
  // "training diverged", accum 0 "map::at").
  try {
    s.o.validate();
  } catch (const UserError& e) {
    fail(options_file + ": " + e.what());
  }
  if (!ctl.device.empty()) s.o.device = ctl.device;  // e.g. a run trained on a GPU resumed on a CPU
  c10::Device device = c10::kCPU;
  try {
    device = resolve_device(s.o.device, ctl.device.empty() ? options_file + ": device" : "--device");
  } catch (const UserError& e) {
    if (!ctl.device.empty()) throw;
    fail(std::string(e.what()) + " (resume with --device cpu to continue this run here)");
  }
  DeviceScope on_device(device);
  PackingScope packing(s.o.packed);  // core/forward_context.h
  set_threads(ctl.threads);
  s.model = load_model(run_dir, device);
  auto dp = join_ranks(s.o, s.model->config, true);
  s.dp = dp.get();
  const bool lead = !dp || dp->rank() == 0;
  s.opt = make_optimizer(s.o, *s.model);
  if (dp) dp->start(*s.model, *s.opt, s.o.zero);  // shards first: each rank loads its own moments
  s.step = ck.trainer.at("step").get<int64_t>();
  s.last_val = ck.trainer;
  s.last_val.erase("step");
  s.last_val.erase("metrics_bytes");
  if (s.last_val.empty() || s.last_val.value("val_bpb", 0.0) < 0) s.last_val = nullptr;  // none yet
  s.opt->load_state(ck.optim, s.step, run_dir);
  if (lead)
    restore_metrics((fs::path(run_dir) / "metrics.jsonl").string(), s.step,
                    ck.trainer.value("metrics_bytes", (int64_t)-1));
  if (ctl.progress && lead)
    std::fprintf(stderr, "resuming %s at step %lld of %lld\n", run_dir.c_str(), (long long)s.step,
                 (long long)s.o.steps);
  auto objective = make_objective(s.o, s.model->config);
  if (dp) objective->set_shard(dp->rank(), dp->world());
  return run_training(s, *objective, ctl);
}

}  // namespace dynarch
