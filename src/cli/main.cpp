// dynarch: one binary for train | eval | score | generate | bench (and the
// inspection commands chunks | routes | stability as their issues land).
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "bench/lm_bench.h"
#include "core/error.h"
#include "core/runtime.h"
#include "data/corpus.h"
#include "data/reasoning.h"
#include "infer/accuracy.h"
#include "infer/evaluate.h"
#include "infer/generate.h"
#include "inspect/chunks.h"
#include "inspect/stability.h"
#include "inspect/routes.h"
#include "io/atomic_file.h"
#include "run/checkpoint.h"
#include "train/trainer.h"

using namespace dynarch;
namespace fs = std::filesystem;

namespace {

// Context length the model was trained with, if the run recorded it.
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

}  // namespace

int main(int argc, char** argv) {
  maybe_reexec_for_blas(argc, argv);
  CLI::App app{"dynarch: tokenizer-free byte models with learned, input-dependent connectivity"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand
  int threads = 0;
  bool no_progress = false;
  app.add_option("--threads", threads, "CPU threads (default: all cores)");
  app.add_flag("--no-progress", no_progress, "no progress bar on stderr");

  // train
  auto* tr = app.add_subcommand("train", "train a byte language model (or a classifier: config task)");
  TrainOptions to;
  std::string config_path, options_path, resume;
  int64_t stop_at = -1;
  tr->add_option("--config", config_path, "model config JSON (official H-Net format)");
  tr->add_option("--options", options_path, "training options JSON (fields as the flags, e.g. seq_len)");
  tr->add_option("--data", to.data, "corpus directory (train.bin, val.bin) or a single byte file");
  tr->add_option("--out", to.out, "run directory");
  tr->add_option("--resume", resume, "continue the run in this directory exactly where it stopped");
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
  tr->add_option("--dtype", to.dtype, "fp32, bf16 (autocast) or auto (bf16 where the CPU has native bf16)")->capture_default_str();
  tr->add_option("--seed", to.seed)->capture_default_str();
  tr->add_option("--eval-every", to.eval_every, "validation every N steps")->capture_default_str();
  tr->add_option("--eval-windows", to.eval_windows, "validation windows")->capture_default_str();
  tr->add_option("--save-every", to.save_every, "checkpoint every N steps")->capture_default_str();
  tr->add_option("--stop-at", stop_at, "stop with a checkpoint after this step (testing resume)");
  tr->add_option("--ratio-targets", to.ratio_targets, "H-Net: target bytes per chunk N per stage (default 6 | 3,3)")
      ->delimiter(',');
  tr->add_option("--ratio-alpha", to.ratio_alpha, "H-Net: ratio-loss weight")->capture_default_str();
  tr->add_option("--lr-multipliers", to.lr_multipliers, "per-stage LR multipliers (default: hnet.md formula)")
      ->delimiter(',');
  tr->add_option("--log-gains-every", to.gains_every, "HC/mHC: log stream-mixing gains every N steps (0 = off)")
      ->capture_default_str();

  // eval
  auto* ev = app.add_subcommand("eval", "bits per byte of a model on a file (classifiers: accuracy on JSONL)");
  std::string model_path, file, dtype = "fp32";
  int64_t seq_len = 0, batch = 8;
  ev->add_option("-m,--model", model_path, "run or checkpoint directory")->required();
  ev->add_option("--file", file, "byte file to evaluate")->required();
  ev->add_option("--seq-len", seq_len, "window length (default: the training length)");
  ev->add_option("--batch", batch, "windows per forward pass")->capture_default_str();
  ev->add_option("--dtype", dtype, "fp32, bf16 or auto")->capture_default_str();
  std::string ev_json, ev_by = "depth";
  ev->add_option("--json", ev_json, "classifier: also write the accuracy JSON here");
  ev->add_option("--by", ev_by, "classifier: item field for the breakdown table")->capture_default_str();

  // score
  auto* sc = app.add_subcommand("score", "per-byte NLL (nats, float32 LE, after a BOS) of a file");
  std::string score_out;
  int64_t segment = 4096;
  sc->add_option("-m,--model", model_path, "run or checkpoint directory")->required();
  sc->add_option("--file", file, "byte file to score")->required();
  sc->add_option("-o,--out", score_out, "output file: one float32 per input byte")->required();
  sc->add_option("--segment", segment, "bytes per forward pass (state is carried across)")->capture_default_str();
  sc->add_option("--dtype", dtype, "fp32, bf16 or auto")->capture_default_str();

  // generate
  auto* ge = app.add_subcommand("generate", "sample bytes from a model, streamed as UTF-8");
  std::string prompt;
  int64_t nbytes = 200;
  SampleOptions so;
  ge->add_option("-m,--model", model_path, "run or checkpoint directory")->required();
  ge->add_option("-p,--prompt", prompt, "prompt text");
  ge->add_option("-n,--bytes", nbytes, "bytes to generate")->capture_default_str();
  ge->add_option("--temperature", so.temperature, "0 = greedy")->capture_default_str();
  ge->add_option("--top-k", so.top_k, "0 = off")->capture_default_str();
  ge->add_option("--top-p", so.top_p, "1 = off")->capture_default_str();
  ge->add_option("--seed", so.seed)->capture_default_str();
  ge->add_option("--dtype", dtype, "fp32, bf16 or auto")->capture_default_str();
  int64_t samples = 1;
  ge->add_option("--samples", samples, "continuations decoded together as a batch (seeds seed..seed+K-1)")
      ->capture_default_str();

  // bench
  auto* be = app.add_subcommand("bench", "throughput benchmark (one JSON line)");
  LmBenchOptions bo;
  std::string bench_config;
  be->add_option("--config", bench_config, "model config (default: ~10M isotropic Transformer)");
  be->add_option("--batch", bo.batch)->capture_default_str();
  be->add_option("--seq-len", bo.seq_len)->capture_default_str();
  be->add_option("--steps", bo.train_steps)->capture_default_str();

  // info
  auto* in = app.add_subcommand("info", "parameters and FLOPs per byte of a config or a trained model");
  std::string info_config;
  int64_t info_len = 1024;
  in->add_option("--config", info_config, "model config JSON");
  in->add_option("-m,--model", model_path, "run or checkpoint directory");
  in->add_option("--seq-len", info_len, "context length for the attention FLOPs")->capture_default_str();

  // chunks
  auto* ch = app.add_subcommand("chunks", "show where an H-Net puts its chunk boundaries (HTML + terminal)");
  std::string text, html_out;
  ch->add_option("-m,--model", model_path, "run or checkpoint directory")->required();
  ch->add_option("--text", text, "text to chunk");
  ch->add_option("--file", file, "file to chunk (instead of --text)");
  ch->add_option("--html", html_out, "write the HTML view here (default: RUN/chunks.html)");
  int64_t max_bytes = 8192;
  ch->add_option("--max-bytes", max_bytes, "use at most this many bytes of the input")->capture_default_str();

  // stability
  auto* sb = app.add_subcommand("stability", "HC/mHC stream-mixing gains per sub-layer and composite (JSON + SVG)");
  std::string json_out, svg_out;
  int64_t windows = 16;
  sb->add_option("-m,--model", model_path, "run or checkpoint directory")->required();
  sb->add_option("--file", file, "input text (windows spread evenly over it)")->required();
  sb->add_option("--seq-len", seq_len, "bytes per window (default: the training length)");
  sb->add_option("--windows", windows, "number of windows")->capture_default_str();
  sb->add_option("--batch", batch, "windows per forward pass")->capture_default_str();
  sb->add_option("--json", json_out, "write the metrics here (default: RUN/stability.json)");
  sb->add_option("--svg", svg_out, "write the figure here (default: RUN/stability.svg)");

  // routes (H-Model)
  auto* ro = app.add_subcommand("routes", "export and summarise an H-Model's routing (JSON, DOT, SVG; --compare: JS)");
  RoutesOptions rto;
  ro->add_option("-m,--model", rto.model, "run or checkpoint directory")->required();
  ro->add_option("--text", rto.text, "input text");
  ro->add_option("--file", rto.file, "input file (instead of --text)");
  ro->add_option("--json", rto.json_out, "write the per-step JSON export here");
  ro->add_option("--dot", rto.dot_out, "write the DOT graphs (collapsed + trellis) here");
  ro->add_option("--svg", rto.svg_out, "write the SVG (trellis + heat maps) here");
  ro->add_option("--max-bytes", rto.max_bytes, "use at most this many bytes of each input")->capture_default_str();
  ro->add_option("--compare", rto.compare, "two input-set files (one input per line or .jsonl): JS divergence")
      ->expected(2);
  ro->add_option("--max-inputs", rto.max_inputs, "--compare: inputs read per set")->capture_default_str();

  // reasoning
  auto* rs = app.add_subcommand("reasoning", "write the synthetic multi-hop rule-reasoning dataset (JSONL)");
  std::string rs_out;
  int64_t rs_train = 10000, rs_test = 1000;
  reasoning::GenOptions rs_opt;
  rs->add_option("--out", rs_out, "output directory (train.jsonl, test.jsonl, manifest.json)")->required();
  rs->add_option("--train-per-depth", rs_train, "training items per depth")->capture_default_str();
  rs->add_option("--test-per-depth", rs_test, "test items per depth")->capture_default_str();
  rs->add_option("--max-depth", rs_opt.max_depth, "depths 0..D")->capture_default_str();
  rs->add_option("--seed", rs_opt.seed)->capture_default_str();
  rs->add_flag("--closed-world", rs_opt.closed_world, "True/False by negation as failure (default: open world)");
  rs->add_option("--distractor-facts", rs_opt.distractor_facts, "at most this many distractor facts (0: none)")
      ->capture_default_str();
  rs->add_option("--distractor-rules", rs_opt.distractor_rules, "at most this many distractor rules (>= 1)")
      ->capture_default_str();


  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    RunControl ctl{threads, !no_progress, stop_at};
    if (tr->parsed()) {
      if (!resume.empty()) {
        train_resume(resume, ctl);
        return 0;
      }
      if (!options_path.empty()) {
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(io::read_file(options_path));
        } catch (const nlohmann::json::exception& e) {
          fail("training options " + options_path + " are not valid JSON: " + e.what());
        }
        auto base = TrainOptions::from_json(j, options_path);
        // Flags given on the command line override the file.
        auto cli = to.to_json(), dflt = TrainOptions{}.to_json(), merged = base.to_json();
        for (auto& [k, v] : cli.items())
          if (v != dflt[k]) merged[k] = v;
        to = TrainOptions::from_json(merged, options_path);
      }
      check(!config_path.empty(), "train: --config FILE is required (see configs/)");
      train_new(to, ModelConfig::from_file(config_path), ctl);
    } else if (ev->parsed()) {
      set_threads(threads);
      auto model = load_model(model_path);
      if (model->config.task.classify()) {  // --file is labeled JSONL: accuracy overall, by label, by --by
        report_classifier(*model, file, ev_by, ev_json, batch, want_bf16(dtype), !no_progress);
        return 0;
      }
      if (seq_len <= 0) seq_len = trained_seq_len(model_path, 512);
      check(batch >= 1, "--batch must be >= 1");
      MappedFile f(file);
      ByteSpan span{std::shared_ptr<MappedFile>(&f, [](MappedFile*) {}), 0, f.size(), file};
      auto r = evaluate(*model, span, tiling_offsets(f.size(), seq_len), seq_len, batch, want_bf16(dtype), !no_progress);
      std::printf("%s: %.4f bpb over %lld bytes (windows of %lld after BOS)\n", file.c_str(), r.bpb(),
                  (long long)r.bytes, (long long)seq_len);
    } else if (sc->parsed()) {
      set_threads(threads);
      check(segment >= 1, "--segment must be >= 1");
      auto model = load_model(model_path);
      MappedFile f(file);
      auto nll = per_byte_nll(*model, f.data(), f.size(), segment, want_bf16(dtype), !no_progress);
      io::write_file_atomic(score_out, std::string((const char*)nll.data_ptr<float>(), nll.numel() * sizeof(float)));
      std::printf("%s: %lld bytes scored, %.4f bpb -> %s\n", file.c_str(), (long long)nll.numel(),
                  nll.to(at::kDouble).mean().item<double>() / std::log(2.0), score_out.c_str());
    } else if (ge->parsed()) {
      set_threads(threads);
      auto model = load_model(model_path);
      Utf8Streamer out([](const std::string& s) {
        std::fwrite(s.data(), 1, s.size(), stdout);
        std::fflush(stdout);
      });
      if (samples > 1) {
        auto outs = generate_batch(*model, prompt, nbytes, samples, so, want_bf16(dtype));
        for (size_t r = 0; r < outs.size(); ++r) {
          std::printf("--- sample %zu (seed %llu) ---\n", r, (unsigned long long)(so.seed + r));
          std::fwrite(prompt.data(), 1, prompt.size(), stdout);
          for (unsigned char c : outs[r]) out.push(c);
          out.flush();
          std::fputc('\n', stdout);
        }
      } else {
        std::fwrite(prompt.data(), 1, prompt.size(), stdout);
        generate(*model, prompt, nbytes, so, want_bf16(dtype), [&](uint8_t b) { out.push(b); });
        out.flush();
        std::fputc('\n', stdout);
      }
    } else if (in->parsed()) {
      check(info_config.empty() != model_path.empty(), "info: give exactly one of --config or -m");
      auto cfg = info_config.empty() ? ModelConfig::from_file(resolve_model_dir(model_path) + "/config.json")
                                     : ModelConfig::from_file(info_config);
      ByteLM m(cfg);
      nlohmann::json j{{"params", m.num_parameters()}, {"stages", cfg.num_stages()},
                       {"flops_per_byte_fwd", m.flops_per_byte(info_len)}, {"seq_len", info_len},
                       {"lr_multipliers", TrainOptions{}.lr_mults_for(cfg)}, {"config", cfg.to_json()}};
      std::cout << j.dump() << std::endl;
    } else if (ch->parsed()) {
      set_threads(threads);
      check(text.empty() != file.empty(), "chunks: give exactly one of --text or --file");
      if (!file.empty()) text = io::read_file(file);
      if ((int64_t)text.size() > max_bytes) text.resize(max_bytes);
      auto model = load_model(model_path);
      auto view = compute_chunks(*model, text);
      if (html_out.empty()) html_out = (fs::path(resolve_model_dir(model_path)).parent_path() / "chunks.html").string();
      io::write_file_atomic(html_out, chunks_html(view, "dynarch chunks: " + model_path));
      std::fputs(chunks_terminal(view, isatty(STDOUT_FILENO)).c_str(), stdout);
      std::fprintf(stderr, "HTML view written to %s\n", html_out.c_str());
    } else if (sb->parsed()) {
      set_threads(threads);
      check(windows >= 1, "--windows must be >= 1");
      auto model = load_model(model_path);
      if (seq_len <= 0) seq_len = trained_seq_len(model_path, 512);
      const std::string text = io::read_file(file);
      check(!text.empty(), "stability: " + file + " is empty");
      const int64_t L = std::min<int64_t>(seq_len, text.size());
      std::vector<std::string> wins;
      for (auto off : spread_offsets(text.size(), L, windows)) wins.push_back(text.substr(off, L));
      auto stacks = measure_stability(*model, wins, batch);
      const auto run_dir = fs::path(resolve_model_dir(model_path)).parent_path();
      if (json_out.empty()) json_out = (run_dir / "stability.json").string();
      if (svg_out.empty()) svg_out = (run_dir / "stability.svg").string();
      nlohmann::json j{{"model", model_path}, {"file", file}, {"windows", wins.size()}, {"seq_len", L},
                       {"stacks", nlohmann::json::array()}};
      for (auto& s : stacks) j["stacks"].push_back(s.to_json());
      io::write_file_atomic(json_out, j.dump(1) + "\n");
      if (stacks.empty()) {
        std::printf("%s has a plain residual everywhere: every gain is exactly 1\n", model_path.c_str());
      } else {
        io::write_file_atomic(svg_out, stability_svg(stacks, "dynarch stability: " + model_path));
        std::printf("%-34s %4s %8s %10s %10s %10s %10s %10s\n", "stack", "subl", "tokens", "single_f", "comp_f(A)",
                    "comp_f(B)", "comp_b(A)", "min_col");
        auto vmax = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
        auto vmin = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
        for (auto& s : stacks)
          std::printf("%-34s %4zu %8lld %10.4g %10.4g %10.4g %10.4g %10.4g\n", s.stack.c_str(), s.sublayers.size(),
                      (long long)s.tokens, vmax(s.single_fwd.a_mean), vmax(s.comp_fwd.a_mean), vmax(s.comp_fwd.b),
                      vmax(s.comp_bwd.a_mean), vmin(s.comp_fwd_minc.a_mean));
        std::printf("(max over sub-layers; A = per token then mean, B = of the token-averaged maps)\n");
        std::fprintf(stderr, "metrics written to %s, figure to %s\n", json_out.c_str(), svg_out.c_str());
      }
    } else if (ro->parsed()) {
      set_threads(threads);
      routes_command(rto);
    } else if (rs->parsed()) {
      check(rs_train >= 1, "--train-per-depth must be >= 1, got " + std::to_string(rs_train));
      check(rs_test >= 1, "--test-per-depth must be >= 1, got " + std::to_string(rs_test));
      check(rs_opt.max_depth >= 0 && rs_opt.max_depth <= reasoning::kMaxDepth,
            "--max-depth must be in 0.." + std::to_string(reasoning::kMaxDepth) + ", got " +
                std::to_string(rs_opt.max_depth));
      auto m = reasoning::write_dataset(rs_out, rs_opt, rs_train, rs_test);
      std::printf("%s: %lld training and %lld test items (%s world, depths 0..%d) -> %s/{train,test}.jsonl\n",
                  rs_out.c_str(), (long long)m["counts"]["train"]["items"].get<int64_t>(),
                  (long long)m["counts"]["test"]["items"].get<int64_t>(), rs_opt.closed_world ? "closed" : "open",
                  rs_opt.max_depth, rs_out.c_str());
    } else if (be->parsed()) {
      bo.threads = threads;
      bo.config = bench_config.empty() ? default_bench_config() : ModelConfig::from_file(bench_config);
      std::cout << run_lm_bench(bo).dump() << std::endl;
    } else {
      for (auto* s : app.get_subcommands())
        fail(std::string("'") + s->get_name() + "' is not available in this build yet");
    }
  } catch (const UserError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
