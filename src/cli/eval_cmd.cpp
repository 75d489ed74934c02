// dynarch eval (bits per byte, or a classifier's accuracy) and dynarch score
// (per-byte NLL of a whole file).
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/verbs.h"
#include "core/device.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "core/runtime.h"
#include "data/corpus.h"
#include "infer/accuracy.h"
#include "infer/score.h"
#include "io/atomic_file.h"
#include "run/checkpoint.h"
#include "train/lm_objective.h"

namespace dynarch::cli {
namespace fs = std::filesystem;

int64_t trained_seq_len(const std::string& model_path, int64_t fallback) {
  try {
    auto dir = resolve_model_dir(model_path);
    auto j = nlohmann::json::parse(io::read_file((fs::path(dir) / "train_options.json").string()));
    return j.value("seq_len", fallback);
  } catch (...) {
    return fallback;
  }
}

bool want_bf16(const std::string& dtype) { return resolve_dtype(dtype) == "bf16"; }

void check_output(const std::string& path) {
  if (path.empty()) return;
  try {
    io::check_writable(path);
  } catch (const std::runtime_error& e) {
    fail(e.what());
  }
}

void add_device_option(CLI::App* cmd, std::string& spec) {
  cmd->add_option("--device", spec, kDeviceHelp)->capture_default_str();
}

namespace {

struct EvalArgs {
  std::string model, file, dtype = "fp32", json_out, by = "depth", device = "auto";
  int64_t seq_len = 0, batch = 8;
  bool packed = true;
};

struct ScoreArgs {
  std::string model, file, out, dtype = "fp32", device = "auto";
  int64_t segment = 4096;
};

void run_eval(const EvalArgs& a, const Globals& g) {
  check_output(a.json_out);  // before any work, not after it
  const auto device = resolve_device(a.device);
  DeviceScope on_device(device);
  PackingScope packing(a.packed);  // core/forward_context.h
  set_threads(g.threads);
  auto model = load_model(a.model, device);
  if (model->config.task.classify()) {  // --file is labeled JSONL: accuracy overall, by label, by --by
    report_classifier(*model, a.file, a.by, a.json_out, a.batch, want_bf16(a.dtype), g.progress());
    return;
  }
  const int64_t seq_len = a.seq_len > 0 ? a.seq_len : trained_seq_len(a.model, 512);
  check(a.batch >= 1, "--batch must be >= 1");
  MappedFile f(a.file);
  ByteSpan span{std::shared_ptr<MappedFile>(&f, [](MappedFile*) {}), 0, f.size(), a.file};
  auto r = evaluate(*model, span, tiling_offsets(f.size(), seq_len), seq_len, a.batch, want_bf16(a.dtype),
                    g.progress());
  std::printf("%s: %.4f bpb over %lld bytes (windows of %lld after BOS)\n", a.file.c_str(), r.bpb(),
              (long long)r.bytes, (long long)seq_len);
}

void run_score(const ScoreArgs& a, const Globals& g) {
  check_output(a.out);  // before any work, not after it
  set_threads(g.threads);
  check(a.segment >= 1, "--segment must be >= 1");
  const auto device = resolve_device(a.device);
  DeviceScope on_device(device);
  auto model = load_model(a.model, device);
  MappedFile f(a.file);
  auto nll = per_byte_nll(*model, f.data(), f.size(), a.segment, want_bf16(a.dtype), g.progress());
  io::write_file_atomic(a.out, std::string((const char*)nll.data_ptr<float>(), nll.numel() * sizeof(float)));
  std::printf("%s: %lld bytes scored, %.4f bpb -> %s\n", a.file.c_str(), (long long)nll.numel(),
              nll.to(at::kDouble).mean().item<double>() / std::log(2.0), a.out.c_str());
}

}  // namespace

std::vector<Verb> add_eval_score(CLI::App& app, const Globals& g) {
  auto* ev = app.add_subcommand("eval", "bits per byte of a model on a file (classifiers: accuracy on JSONL)");
  auto e = std::make_shared<EvalArgs>();
  ev->add_option("-m,--model", e->model, "run or checkpoint directory")->required();
  ev->add_option("--file", e->file, "byte file to evaluate")->required();
  ev->add_option("--seq-len", e->seq_len, "window length (default: the training length)");
  ev->add_option("--batch", e->batch, "windows per forward pass")->capture_default_str();
  ev->add_option("--dtype", e->dtype, "fp32, bf16 or auto")->capture_default_str();
  ev->add_option("--json", e->json_out, "classifier: also write the accuracy JSON here");
  ev->add_option("--packed", e->packed,
                 "H-Net: inner stages on packed sequences (1) or on rows padded to the longest (0); same result")
      ->capture_default_str();
  ev->add_option("--by", e->by, "classifier: item field for the breakdown table")->capture_default_str();
  add_device_option(ev, e->device);

  auto* sc = app.add_subcommand("score", "per-byte NLL (nats, float32 LE, after a BOS) of a file");
  auto s = std::make_shared<ScoreArgs>();
  sc->add_option("-m,--model", s->model, "run or checkpoint directory")->required();
  sc->add_option("--file", s->file, "byte file to score")->required();
  sc->add_option("-o,--out", s->out, "output file: one float32 per input byte")->required();
  sc->add_option("--segment", s->segment, "bytes per forward pass (state is carried across)")->capture_default_str();
  sc->add_option("--dtype", s->dtype, "fp32, bf16 or auto")->capture_default_str();
  add_device_option(sc, s->device);
  return {{ev, [e, &g] { run_eval(*e, g); }}, {sc, [s, &g] { run_score(*s, g); }}};
}

}  // namespace dynarch::cli
