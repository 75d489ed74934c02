#include "train/loop.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "model/aux_loss.h"
#include "model/hmodel/hmodel.h"
#include "model/hnet/hnet_stage.h"
#include "model/residual/stream_gains.h"
#include "run/checkpoint.h"
#include "train/metrics_log.h"
#include "train/parallel.h"
#include "train/step_metrics.h"

namespace dynarch {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

// SIGINT/SIGTERM ask the loop to stop after the current step with a checkpoint.
struct StopSignals {
  StopSignals() {
    g_stop = 0;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
  }
  ~StopSignals() {
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
  }
};

// What one optimizer step produced, for the metrics line and the progress bar.
struct StepResult {
  double loss = 0, lr = 0, grad_norm = 0, seconds = 0;
  Metrics task, aux;                    // averaged over the micro-batches
  std::vector<double> F, G, ratio;      // per H-Net stage
  json gains;                           // HC/mHC monitor (null when not watched)
  bool stop = false;                    // a stop signal reached this (or any) rank
};

class Loop {
 public:
  Loop(TrainState& s, Objective& obj, const RunControl& ctl)
      : s_(s), o_(s.o), obj_(obj), ctl_(ctl), targets_(o_.targets_for(s.model->config)),
        lead_(!s.dp || s.dp->rank() == 0) {
    for (auto& r : s_.model->config.residual) has_streams_ |= r.streams();
    if (has_streams_) name_connections(*s_.model);
  }

  TrainResult run() {
    if (lead_) metrics_ = std::make_unique<MetricsLog>((fs::path(o_.out) / "metrics.jsonl").string());
    StopSignals signals;
    Progress bar("train", o_.steps, ctl_.progress && lead_);
    TrainResult res;
    while (s_.step < o_.steps) {
      auto r = step();
      res.losses.push_back(r.loss);
      if (lead_) write_line(r);
      const bool last = s_.step == o_.steps;
      if ((o_.eval_every > 0 && s_.step % o_.eval_every == 0) || last) validate();
      bar.update(s_.step, progress_text(r), last);
      const bool stop = r.stop || s_.step == ctl_.stop_at;
      if ((o_.save_every > 0 && s_.step % o_.save_every == 0) || last || stop) save();
      if (s_.step == ctl_.kill_at) std::raise(SIGKILL);  // tests: a crash, nothing cleaned up
      if (stop) {
        if (r.stop && lead_)
          std::fprintf(stderr, "\ninterrupted: checkpoint saved at step %lld; continue with --resume %s\n",
                       (long long)s_.step, o_.out.c_str());
        break;
      }
    }
    bar.finish(obj_.summary(s_.last_val));
    res.summary = summary_line(res);
    res.last_step = s_.step;
    res.last_val = s_.last_val;
    if (s_.last_val.is_object()) {
      res.val_bpb = s_.last_val.value("val_bpb", -1.0);
      res.val_acc = s_.last_val.value("val_acc", -1.0);
    }
    return res;
  }

 private:
  // One optimizer step over o_.accum micro-batches.
  StepResult step() {
    StepResult r;
    const auto t0 = std::chrono::steady_clock::now();
    const size_t S = targets_.size();
    r.F.assign(S, 0), r.G.assign(S, 0), r.ratio.assign(S, 0);
    r.lr = wsd_lr(s_.step, o_.steps, o_.lr, o_.warmup, o_.decay, o_.min_lr_ratio);
    s_.opt->zero_grad();
    StepMetrics later(r.task);  // loss, aux and ratio statistics: read once, after the backward
    set_hmodel_training_step(*s_.model, s_.step);  // H-Model alpha schedule
    for (int64_t m = 0; m < o_.accum; ++m) {
      StageRecorder stages;
      AuxLossCollector aux;
      // Stream-mixing maps of the first micro-batch feed the gain monitor.
      const bool watch = has_streams_ && m == 0 && o_.gains_every > 0 && (s_.step + 1) % o_.gains_every == 0;
      std::optional<ConnectionRecorder> rec;
      if (watch) rec.emplace();
      at::Tensor total = obj_.loss(*s_.model, s_.step, m, o_.accum, later);
      if (watch) r.gains = stability_monitor(rec->traces);
      total = total + aux.total();
      for (auto& t : aux.terms) later.add(r.aux[t.name], t.value);
      for (size_t st = 0; st < stages.traces.size(); ++st) {
        const auto& tr = stages.traces[st];
        auto rs = s_.dp ? ratio_loss(tr.p, tr.b, tr.mask, targets_.at(st),
                                     [&](const std::vector<double>& v) { return s_.dp->sum(v); }, s_.dp->world())
                        : ratio_loss(tr.p, tr.b, tr.mask, targets_.at(st));
        total = total + o_.ratio_alpha * rs.loss;
        later.add(r.F[st], rs.F), later.add(r.G[st], rs.G), later.add(r.ratio[st], rs.loss);
      }
      if (s_.dp) s_.dp->before_backward(m + 1 == o_.accum);
      (total / (double)o_.accum).backward();
    }
    if (s_.dp) s_.dp->after_backward();  // gradients averaged over the ranks
    // Stop before a non-finite update reaches the weights (NaN at step 1 too;
    // after the all-reduce, so every rank stops: NaN gradients reach them all).
    later.read();  // the logged scalars: one host copy for the step
    const double loss = r.task.at("loss") / o_.accum;
    if (!std::isfinite(loss)) fail(fmt::format("training diverged at step {}: loss is {}", s_.step + 1, loss));
    // Clipping and the update in one call: on CUDA the norm is read after the
    // update is queued, and a non-finite norm has updated nothing.
    r.grad_norm = s_.opt->clip_and_step(r.lr, o_.clip);
    if (!std::isfinite(r.grad_norm))
      fail(fmt::format("training diverged at step {}: gradient norm is {}", s_.step + 1, r.grad_norm));
    if (s_.dp) s_.dp->after_step();
    ++s_.step;
    for (auto* m : {&r.task, &r.aux})
      for (auto& [k, v] : *m) v /= o_.accum;
    for (size_t st = 0; st < S; ++st) r.F[st] /= o_.accum, r.G[st] /= o_.accum, r.ratio[st] /= o_.accum;
    r.stop = g_stop;
    if (s_.dp) average_over_ranks(r);
    r.loss = r.task.at("loss");
    units_ += obj_.units_per_step();
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    seconds_ += r.seconds;
    return r;
  }

  // Every logged statistic is the mean over the ranks (their batches are equal
  // slices of the global one); a stop signal on any rank stops every rank.
  void average_over_ranks(StepResult& r) {
    std::vector<double> v;
    for (auto* m : {&r.task, &r.aux})
      for (auto& [k, x] : *m) v.push_back(x);
    for (auto* s : {&r.F, &r.G, &r.ratio}) v.insert(v.end(), s->begin(), s->end());
    v.push_back(r.stop ? 1.0 : 0.0);
    v = s_.dp->sum(v);
    const double inv = 1.0 / s_.dp->world();
    size_t i = 0;
    for (auto* m : {&r.task, &r.aux})
      for (auto& [k, x] : *m) x = v[i++] * inv;
    for (auto* s : {&r.F, &r.G, &r.ratio})
      for (auto& x : *s) x = v[i++] * inv;
    r.stop = v[i] > 0;
  }

  // units per second over all ranks (--batch is per rank), timed on this rank
  double global_rate(const StepResult& r) const {
    return obj_.units_per_step() * (s_.dp ? s_.dp->world() : 1) / r.seconds;
  }

  void write_line(const StepResult& r) {
    json line{{"step", s_.step}, {"lr", r.lr}, {"grad_norm", r.grad_norm},
              {obj_.rate_key(), global_rate(r)}};
    for (auto& [k, v] : r.task) line[k] = v;
    for (auto& [k, v] : r.aux) line[k] = v;
    if (auto* hm = find_hmodel(*s_.model)) line["hmodel_alpha"] = hm->alpha();
    for (size_t st = 0; st < r.F.size(); ++st) {
      const std::string k = "stage" + std::to_string(st);
      line[k + "_bpc"] = 1.0 / std::max(r.F[st], 1e-9);  // bytes per chunk at this stage's input resolution
      line[k + "_F"] = r.F[st];
      line[k + "_G"] = r.G[st];
      line[k + "_ratio_loss"] = r.ratio[st];
    }
    if (!r.gains.is_null()) {
      line["hc"] = r.gains;
      hc_gain_ = 0;
      for (auto& [k, v] : r.gains.items()) hc_gain_ = std::max(hc_gain_, v["comp_fwd_A"].get<double>());
    }
    metrics_->write(line);
  }

  std::string progress_text(const StepResult& r) {
    for (auto& [k, v] : r.task) ema_[k] = ema_.count(k) ? 0.9 * ema_[k] + 0.1 * v : v;
    std::string text = obj_.progress(ema_, s_.last_val, global_rate(r));
    for (size_t st = 0; st < r.F.size(); ++st)
      text += fmt::format(" | s{} {:.2f}B/c F {:.3f} G {:.3f}", st, 1.0 / std::max(r.F[st], 1e-9), r.F[st], r.G[st]);
    if (hc_gain_ >= 0) text += fmt::format(" | hc gain {:.3g}", hc_gain_);
    return text;
  }

  void validate() {
    s_.model->eval();
    try {
      auto sums = obj_.validation_sums(*s_.model);
      s_.model->train();
      if (s_.dp) sums = s_.dp->sum(sums);
      s_.last_val = obj_.validation_metrics(sums);
    } catch (const UserError& e) {  // a non-finite validation loss
      fail(fmt::format("training diverged at step {}: validation: {}", s_.step, e.what()));
    }
    if (!lead_) return;
    json line{{"step", s_.step}};
    line.update(s_.last_val);
    metrics_->write(line);
  }

  // The last line of every run: steps, loss, validation, speed, where it is.
  std::string summary_line(const TrainResult& res) const {
    std::string unit = obj_.rate_key();
    if (auto p = unit.rfind("_per_s"); p != std::string::npos) unit = unit.substr(0, p) + "/s";
    return fmt::format("{}/{} steps: loss {} | {} | {:.0f} {} | run {}", s_.step, o_.steps,
                       res.losses.empty() ? std::string("-") : fmt::format("{:.4f}", res.losses.back()),
                       obj_.summary(s_.last_val), seconds_ > 0 ? units_ / seconds_ : 0.0, unit,
                       fs::absolute(o_.out).lexically_normal().string());
  }

  void save() {
    json trainer{{"step", s_.step}};
    if (s_.last_val.is_object()) trainer.update(s_.last_val);
    auto state = s_.dp ? s_.dp->gather_state() : s_.opt->state_tensors();  // collective with ZeRO
    if (!lead_) return;
    trainer["metrics_bytes"] = metrics_->sync();  // what this checkpoint covers (metrics_log.h)
    save_checkpoint(o_.out, *s_.model, state, trainer, o_.to_json());
  }

  TrainState& s_;
  const TrainOptions& o_;
  Objective& obj_;
  const RunControl& ctl_;
  const std::vector<double> targets_;
  const bool lead_;  // writes metrics, checkpoints and the progress bar
  bool has_streams_ = false;
  double hc_gain_ = -1;  // last composite forward gain (variant A), for the progress bar
  Metrics ema_;
  double units_ = 0, seconds_ = 0;  // trained in this session, for the summary
  std::unique_ptr<MetricsLog> metrics_;  // rank 0 only
};

}  // namespace

TrainResult run_training(TrainState& s, Objective& objective, const RunControl& ctl) {
  set_threads(ctl.threads);
  torch::manual_seed(s.o.seed);
  return Loop(s, objective, ctl).run();
}

}  // namespace dynarch
