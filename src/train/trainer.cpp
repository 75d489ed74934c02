#include "train/trainer.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/runtime.h"
#include "io/atomic_file.h"
#include "run/checkpoint.h"
#include "run/compose.h"
#include "train/classify_objective.h"
#include "train/lm_objective.h"
#include "train/loop.h"

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

void rewrite_metrics_upto(const fs::path& p, int64_t step) {
  // After a crash, drop metric lines the resumed run will write again.
  if (!fs::exists(p)) return;
  std::ifstream in(p);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (json::parse(line).value("step", (int64_t)0) <= step) kept += line + "\n";
    } catch (...) {
    }
  }
  io::write_file_atomic(p.string(), kept);
}

}  // namespace

TrainResult train_new(const TrainOptions& opts, const ModelConfig& config, const RunControl& ctl) {
  opts.validate();
  opts.targets_for(config);
  opts.lr_mults_for(config);
  fs::path run(opts.out);
  if (fs::exists(run / "checkpoint") || fs::exists(run / "checkpoint.old"))
    fail("run directory " + opts.out + " already has a checkpoint; use --resume " + opts.out +
         " to continue it or choose another --out");
  fs::create_directories(run);
  std::error_code ec;
  fs::remove(run / "metrics.jsonl", ec);
  TrainState s;
  s.o = opts;
  s.o.dtype = resolve_dtype(opts.dtype);  // saved resolved, so a resume computes the same way
  set_threads(ctl.threads);
  torch::manual_seed(opts.seed);
  s.model = std::make_shared<ByteLM>(config);
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
  s.opt = make_optimizer(s.o, *s.model);
  if (ctl.progress)
    std::fprintf(stderr, "model: %lld parameters, layout %s, d_model %d | %s\n",
                 (long long)s.model->num_parameters(), config.arch_layout.dump().c_str(), config.d_model[0],
                 env_report(false).c_str());
  auto objective = make_objective(s.o, config);
  return run_training(s, *objective, ctl);
}

TrainResult train_resume(const std::string& run_dir, const RunControl& ctl) {
  auto ck = load_trainer_checkpoint(run_dir);
  TrainState s;
  s.o = TrainOptions::from_json(ck.options, run_dir + "/checkpoint/train_options.json");
  s.o.out = run_dir;
  set_threads(ctl.threads);
  s.model = load_model(run_dir);
  s.opt = make_optimizer(s.o, *s.model);
  s.step = ck.trainer.at("step").get<int64_t>();
  s.last_val = ck.trainer;
  s.last_val.erase("step");
  if (s.last_val.empty() || s.last_val.value("val_bpb", 0.0) < 0) s.last_val = nullptr;  // none yet
  s.opt->load_state(ck.optim, s.step, run_dir);
  rewrite_metrics_upto(fs::path(run_dir) / "metrics.jsonl", s.step);
  if (ctl.progress)
    std::fprintf(stderr, "resuming %s at step %lld of %lld\n", run_dir.c_str(), (long long)s.step,
                 (long long)s.o.steps);
  auto objective = make_objective(s.o, s.model->config);
  return run_training(s, *objective, ctl);
}

}  // namespace dynarch
