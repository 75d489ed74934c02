#include "run/compose.h"
#include "train/trainer.h"

#include <torch/torch.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/compat.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "data/corpus.h"
#include "infer/evaluate.h"
#include "model/residual/stream_gains.h"
#include "io/atomic_file.h"
#include "model/aux_loss.h"
#include "model/hmodel/hmodel.h"
#include "model/lm.h"
#include "model/hnet/ratio_loss.h"
#include "train/adamw.h"
#include "run/checkpoint.h"
#include "train/classify.h"

namespace dynarch {
namespace fs = std::filesystem;
using nlohmann::json;

json TrainOptions::to_json() const {
  return json{{"data", data}, {"out", out}, {"steps", steps}, {"batch", batch}, {"seq_len", seq_len},
              {"accum", accum}, {"lr", lr}, {"min_lr_ratio", min_lr_ratio}, {"warmup", warmup},
              {"decay", decay}, {"weight_decay", weight_decay}, {"beta1", beta1}, {"beta2", beta2},
              {"clip", clip}, {"dtype", dtype}, {"seed", seed}, {"eval_every", eval_every},
              {"eval_windows", eval_windows}, {"save_every", save_every}, {"ratio_targets", ratio_targets},
              {"lr_multipliers", lr_multipliers}, {"ratio_alpha", ratio_alpha},
              {"gains_every", gains_every}};
}

TrainOptions TrainOptions::from_json(const json& j, const std::string& src) {
  TrainOptions o;
  auto base = o.to_json();
  for (auto& [k, v] : j.items())
    if (!base.contains(k)) fail(src + ": unknown field \"" + k + "\"");
  try {
    auto get = [&](const char* k, auto& dst) {
      if (j.contains(k)) dst = j.at(k).get<std::decay_t<decltype(dst)>>();
    };
    get("data", o.data); get("out", o.out); get("steps", o.steps); get("batch", o.batch);
    get("seq_len", o.seq_len); get("accum", o.accum); get("lr", o.lr); get("min_lr_ratio", o.min_lr_ratio);
    get("warmup", o.warmup); get("decay", o.decay); get("weight_decay", o.weight_decay);
    get("beta1", o.beta1); get("beta2", o.beta2); get("clip", o.clip); get("dtype", o.dtype);
    get("seed", o.seed); get("eval_every", o.eval_every); get("eval_windows", o.eval_windows);
    get("save_every", o.save_every); get("ratio_targets", o.ratio_targets);
    get("lr_multipliers", o.lr_multipliers); get("ratio_alpha", o.ratio_alpha); get("gains_every", o.gains_every);
  } catch (const json::exception& e) {
    fail(src + ": wrong type in training options: " + e.what());
  }
  return o;
}

void TrainOptions::validate() const {
  check(steps >= 1, "--steps must be >= 1");
  check(batch >= 1, "--batch must be >= 1");
  check(seq_len >= 2, "--seq-len must be >= 2");
  check(accum >= 1, "--accum must be >= 1");
  check(lr > 0, "--lr must be > 0");
  check(warmup >= 0 && decay >= 0 && warmup + decay <= 1, "--warmup and --decay are fractions summing to <= 1");
  check(dtype == "fp32" || dtype == "bf16" || dtype == "auto", "--dtype must be fp32, bf16 or auto, got " + dtype);
  check(!out.empty(), "--out (run directory) is required");
  check(!data.empty(), "--data is required");
  check(ratio_alpha >= 0, "--ratio-alpha must be >= 0");
  check(gains_every >= 0, "--log-gains-every must be >= 0");
  for (double n : ratio_targets)
    check(n > 1.0, "--ratio-targets: every compression target N must be > 1, got " + std::to_string(n));
  for (double m : lr_multipliers) check(m > 0, "--lr-multipliers must be > 0");
}

std::vector<double> TrainOptions::targets_for(const ModelConfig& c) const {
  const int S = c.num_stages();
  if (ratio_targets.empty()) return default_ratio_targets(S);
  check((int)ratio_targets.size() == S, "--ratio-targets has " + std::to_string(ratio_targets.size()) +
                                            " values; the model has " + std::to_string(S) + " chunking stage(s)");
  return ratio_targets;
}

std::vector<double> TrainOptions::lr_mults_for(const ModelConfig& c) const {
  const int S = c.num_stages();
  if (lr_multipliers.empty()) return S == 0 ? std::vector<double>{1.0} : stage_lr_multipliers(c, targets_for(c));
  check((int)lr_multipliers.size() == S + 1, "--lr-multipliers needs one value per stage (" +
                                                 std::to_string(S + 1) + ")");
  return lr_multipliers;
}

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Session {
  TrainOptions o;
  std::shared_ptr<ByteLM> model;
  std::unique_ptr<AdamW> opt;
  int64_t step = 0;  // steps completed
  double best_val = -1;
};

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

TrainResult run_session(Session& s, const RunControl& ctl) {
  const auto& o = s.o;
  set_threads(ctl.threads);
  torch::manual_seed(o.seed);
  auto corpus = Corpus::open(o.data, o.seq_len);
  const bool bf16 = o.dtype == "bf16";
  auto val_offsets = spread_offsets(corpus.val.size, o.seq_len, o.eval_windows);
  fs::path run(o.out);
  std::ofstream metrics(run / "metrics.jsonl", std::ios::app);
  if (!metrics) fail("cannot write " + (run / "metrics.jsonl").string());

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  g_stop = 0;
  const int64_t bytes_per_step = o.batch * o.seq_len * o.accum;
  Progress bar("train", o.steps, ctl.progress);
  TrainResult res;
  res.val_bpb = s.best_val;
  auto save = [&] {
    save_checkpoint(o.out, *s.model, *s.opt, json{{"step", s.step}, {"val_bpb", res.val_bpb}}, o.to_json());
  };
  auto validate = [&] {
    s.model->eval();
    res.val_bpb = evaluate(*s.model, corpus.val, val_offsets, o.seq_len, o.batch, bf16).bpb();
    s.model->train();
    metrics << json{{"step", s.step}, {"val_bpb", res.val_bpb}}.dump() << "\n" << std::flush;
  };
  double loss_ema = -1;
  const auto targets = o.targets_for(s.model->config);
  bool has_streams = false;
  for (auto& r : s.model->config.residual) has_streams |= r.streams();
  if (has_streams) name_connections(*s.model);
  double hc_gain = -1;  // last composite forward gain (variant A), for the progress bar
  while (s.step < o.steps) {
    auto t0 = std::chrono::steady_clock::now();
    const double lr = wsd_lr(s.step, o.steps, o.lr, o.warmup, o.decay, o.min_lr_ratio);
    s.opt->zero_grad();
    set_hmodel_training_step(*s.model, s.step);  // H-Model alpha schedule
    std::map<std::string, double> aux_log;      // extra objectives (model/aux_loss.h), logged per step
    double loss_sum = 0;
    std::vector<double> stage_F(targets.size()), stage_G(targets.size()), stage_L(targets.size());
    json gains;
    for (int64_t m = 0; m < o.accum; ++m) {
      auto b = sample_batch(corpus.train, o.seed, s.step, m, o.batch, o.seq_len);
      at::Tensor loss, total;
      StageRecorder stage_rec;
      auto& traces = stage_rec.traces;
      AuxLossCollector aux;
      {
        // Stream-mixing maps of the first micro-batch feed the gain monitor.
        const bool watch = has_streams && m == 0 && o.gains_every > 0 && (s.step + 1) % o.gains_every == 0;
        std::optional<ConnectionRecorder> rec;
        if (watch) rec.emplace();
        compat::AutocastScope ac(bf16);
        loss = lm_loss(s.model->forward(b.inputs), b.targets);
        if (watch) gains = stability_monitor(rec->traces);
      }
      total = loss + aux.total();
      for (auto& t : aux.terms) aux_log[t.name] += t.value.item<double>() / o.accum;
      for (size_t st = 0; st < traces.size(); ++st) {
        auto rs = ratio_loss(traces[st].p, traces[st].b, traces[st].mask, targets[st]);
        total = total + o.ratio_alpha * rs.loss;
        stage_F[st] += rs.F / o.accum;
        stage_G[st] += rs.G / o.accum;
        stage_L[st] += rs.loss.item<double>() / o.accum;
      }
      (total / (double)o.accum).backward();
      loss_sum += loss.item<double>();
    }
    const double gnorm = clip_grad_norm(s.opt->params(), o.clip);
    s.opt->step(lr);
    ++s.step;
    const double loss = loss_sum / o.accum;
    if (!std::isfinite(loss)) fail(fmt::format("training diverged at step {}: loss is {}", s.step, loss));
    res.losses.push_back(loss);
    double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    loss_ema = loss_ema < 0 ? loss : 0.9 * loss_ema + 0.1 * loss;
    json mline{{"step", s.step}, {"loss", loss}, {"bpb", loss / std::log(2.0)}, {"lr", lr},
               {"grad_norm", gnorm}, {"bytes_per_s", bytes_per_step / dt}};
    for (auto& [k, v] : aux_log) mline[k] = v;
    std::string chunk_info;
    for (size_t st = 0; st < targets.size(); ++st) {
      const std::string k = "stage" + std::to_string(st);
      // bytes per chunk at this stage's input resolution = 1 / F
      mline[k + "_bpc"] = 1.0 / std::max(stage_F[st], 1e-9);
      mline[k + "_F"] = stage_F[st];
      mline[k + "_G"] = stage_G[st];
      mline[k + "_ratio_loss"] = stage_L[st];
      chunk_info += fmt::format(" | s{} {:.2f}B/c F {:.3f} G {:.3f}", st, 1.0 / std::max(stage_F[st], 1e-9),
                                stage_F[st], stage_G[st]);
    }
    if (!gains.is_null()) {
      mline["hc"] = gains;
      hc_gain = 0;
      for (auto& [k, v] : gains.items()) hc_gain = std::max(hc_gain, v["comp_fwd_A"].get<double>());
    }
    if (hc_gain >= 0) chunk_info += fmt::format(" | hc gain {:.3g}", hc_gain);
    metrics << mline.dump() << "\n";
    const bool last = s.step == o.steps;
    if ((o.eval_every > 0 && s.step % o.eval_every == 0) || last) validate();
    bar.update(s.step,
               fmt::format("loss {:.3f} | bpb {:.3f} | val {} | {:.0f} B/s{}", loss_ema, loss_ema / std::log(2.0),
                           res.val_bpb < 0 ? std::string("-") : fmt::format("{:.3f}", res.val_bpb),
                           bytes_per_step / dt, chunk_info),
               last);
    const bool stop = g_stop || s.step == ctl.stop_at;
    if ((o.save_every > 0 && s.step % o.save_every == 0) || last || stop) save();
    if (stop) {
      if (g_stop) std::fprintf(stderr, "\ninterrupted: checkpoint saved at step %lld; continue with --resume %s\n",
                               (long long)s.step, o.out.c_str());
      break;
    }
  }
  bar.finish(fmt::format("val bpb {:.4f}", res.val_bpb));
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  res.last_step = s.step;
  return res;
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
  Session s;
  s.o = opts;
  s.o.dtype = resolve_dtype(opts.dtype);  // saved resolved, so a resume computes the same way
  set_threads(ctl.threads);
  torch::manual_seed(opts.seed);
  s.model = std::make_shared<ByteLM>(config);
  load_pretrained_nodes(*s.model);  // H-Model nodes from trained checkpoints (hmodel.nodes[*].from)
  AdamWOptions ao;
  ao.beta1 = opts.beta1; ao.beta2 = opts.beta2; ao.weight_decay = opts.weight_decay;
  s.opt = std::make_unique<AdamW>(s.model->param_infos(opts.lr_mults_for(config)), ao);
  if (ctl.progress)
    std::fprintf(stderr, "model: %lld parameters, layout %s, d_model %d | %s\n",
                 (long long)s.model->num_parameters(), config.arch_layout.dump().c_str(), config.d_model[0],
                 env_report(false).c_str());
  if (config.task.classify()) return run_classifier(s.o, *s.model, *s.opt, 0, {}, ctl);
  return run_session(s, ctl);
}

TrainResult train_resume(const std::string& run_dir, const RunControl& ctl) {
  auto ck = load_trainer_checkpoint(run_dir);
  Session s;
  s.o = TrainOptions::from_json(ck.options, run_dir + "/checkpoint/train_options.json");
  s.o.out = run_dir;
  set_threads(ctl.threads);
  s.model = load_model(run_dir);
  AdamWOptions ao;
  ao.beta1 = s.o.beta1; ao.beta2 = s.o.beta2; ao.weight_decay = s.o.weight_decay;
  s.opt = std::make_unique<AdamW>(s.model->param_infos(s.o.lr_mults_for(s.model->config)), ao);
  s.step = ck.trainer.at("step").get<int64_t>();
  s.best_val = ck.trainer.value("val_bpb", -1.0);
  s.opt->load_state(ck.optim, s.step, run_dir);
  rewrite_metrics_upto(fs::path(run_dir) / "metrics.jsonl", s.step);
  if (ctl.progress) std::fprintf(stderr, "resuming %s at step %lld of %lld\n", run_dir.c_str(), (long long)s.step,
                                 (long long)s.o.steps);
  if (s.model->config.task.classify()) return run_classifier(s.o, *s.model, *s.opt, s.step, ck.trainer, ctl);
  return run_session(s, ctl);
}

}  // namespace dynarch
