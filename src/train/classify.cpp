#include "train/classify.h"

#include <torch/torch.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "core/compat.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/runtime.h"
#include "data/labeled.h"
#include "infer/accuracy.h"
#include "model/hnet/ratio_loss.h"
#include "run/checkpoint.h"

namespace dynarch {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }
}  // namespace

TrainResult run_classifier(const TrainOptions& o, ByteLM& model, AdamW& opt, int64_t step, const json& trainer,
                           const RunControl& ctl) {
  set_threads(ctl.threads);
  torch::manual_seed(o.seed);
  const auto& task = model.config.task;
  const fs::path dir(o.data);
  check(fs::is_directory(dir) && fs::exists(dir / "train.jsonl") && fs::exists(dir / "test.jsonl"),
        "--data: a classifier trains on a directory with train.jsonl and test.jsonl (dynarch reasoning --out DIR), "
        "got " + o.data);
  auto train = load_labeled((dir / "train.jsonl").string(), task.labels);
  auto test = load_labeled((dir / "test.jsonl").string(), task.labels);
  train.check_fits(o.seq_len, "--seq-len");
  const auto val_idx = spread_indices(test.size(), o.eval_windows);
  const bool bf16 = o.dtype == "bf16";
  EpochSampler sampler(train.size(), o.seed);
  const auto targets = o.targets_for(model.config);

  std::ofstream metrics(fs::path(o.out) / "metrics.jsonl", std::ios::app);
  if (!metrics) fail("cannot write " + (fs::path(o.out) / "metrics.jsonl").string());
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  g_stop = 0;
  TrainResult res;
  res.val_acc = trainer.is_object() ? trainer.value("val_acc", -1.0) : -1.0;
  auto save = [&] {
    save_checkpoint(o.out, model, opt, json{{"step", step}, {"val_acc", res.val_acc}}, o.to_json());
  };
  auto validate = [&] {
    model.eval();
    auto r = evaluate_classifier(model, test, val_idx, o.batch, bf16);
    model.train();
    res.val_acc = r.accuracy();
    metrics << json{{"step", step}, {"val_acc", r.accuracy()}, {"val_loss", r.loss()}}.dump() << "\n" << std::flush;
  };
  Progress bar("train", o.steps, ctl.progress);
  double loss_ema = -1, acc_ema = -1;
  while (step < o.steps) {
    auto t0 = std::chrono::steady_clock::now();
    const double lr = wsd_lr(step, o.steps, o.lr, o.warmup, o.decay, o.min_lr_ratio);
    opt.zero_grad();
    double loss_sum = 0, correct = 0, ratio_sum = 0;
    std::vector<double> stage_F(targets.size());
    for (int64_t m = 0; m < o.accum; ++m) {
      auto b = make_cls_batch(train, sampler.batch(step, m, o.accum, o.batch));
      StageRecorder stage_rec;
      auto& traces = stage_rec.traces;
      at::Tensor logits;
      {
        compat::AutocastScope ac(bf16);
        logits = model.classify(b.ids, b.lengths).to(at::kFloat);
      }
      auto loss = torch::nn::functional::cross_entropy(logits, b.labels);
      at::Tensor total = loss;
      for (size_t st = 0; st < traces.size(); ++st) {  // H-Net backbones: ratio loss per stage
        auto rs = ratio_loss(traces[st].p, traces[st].b, traces[st].mask, targets[st]);
        total = total + o.ratio_alpha * rs.loss;
        stage_F[st] += rs.F / o.accum;
        ratio_sum += rs.loss.item<double>() / o.accum;
      }
      (total / (double)o.accum).backward();
      loss_sum += loss.item<double>();
      correct += logits.argmax(-1).eq(b.labels).sum().item<double>();
    }
    const double gnorm = clip_grad_norm(opt.params(), o.clip);
    opt.step(lr);
    ++step;
    const double loss = loss_sum / o.accum, acc = correct / (o.accum * o.batch);
    if (!std::isfinite(loss)) fail(fmt::format("training diverged at step {}: loss is {}", step, loss));
    res.losses.push_back(loss);
    const double eps = o.accum * o.batch / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    loss_ema = loss_ema < 0 ? loss : 0.9 * loss_ema + 0.1 * loss;
    acc_ema = acc_ema < 0 ? acc : 0.9 * acc_ema + 0.1 * acc;
    json mline{{"step", step}, {"loss", loss}, {"acc", acc}, {"lr", lr}, {"grad_norm", gnorm}, {"examples_per_s", eps}};
    for (size_t st = 0; st < targets.size(); ++st) mline["stage" + std::to_string(st) + "_bpc"] = 1.0 / std::max(stage_F[st], 1e-9);
    if (!targets.empty()) mline["ratio_loss"] = ratio_sum;
    metrics << mline.dump() << "\n";
    const bool last = step == o.steps;
    if ((o.eval_every > 0 && step % o.eval_every == 0) || last) validate();
    bar.update(step,
               fmt::format("loss {:.3f} | acc {:.3f} | val acc {} | {:.1f} ex/s", loss_ema, acc_ema,
                           res.val_acc < 0 ? std::string("-") : fmt::format("{:.3f}", res.val_acc), eps),
               last);
    const bool stop = g_stop || step == ctl.stop_at;
    if ((o.save_every > 0 && step % o.save_every == 0) || last || stop) save();
    if (stop) {
      if (g_stop) std::fprintf(stderr, "\ninterrupted: checkpoint saved at step %lld; continue with --resume %s\n",
                               (long long)step, o.out.c_str());
      break;
    }
  }
  bar.finish(fmt::format("val acc {:.4f}", res.val_acc));
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  res.last_step = step;
  return res;
}

}  // namespace dynarch
