// The inspection verbs: chunks (H-Net boundaries), stability (HC/mHC gains),
// routes (H-Model routing).
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/verbs.h"
#include "core/device.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "core/runtime.h"
#include "data/corpus.h"
#include "inspect/chunks.h"
#include "inspect/routes.h"
#include "inspect/stability.h"
#include "io/atomic_file.h"
#include "run/checkpoint.h"

namespace dynarch::cli {
namespace fs = std::filesystem;

namespace {

struct ChunksArgs {
  std::string model, text, file, html_out, device = "auto";
  int64_t max_bytes = 8192;
};

struct StabilityArgs {
  std::string model, file, json_out, svg_out, device = "auto";
  int64_t seq_len = 0, windows = 16, batch = 8;
};

void run_chunks(ChunksArgs a, const Globals& g) {
  set_threads(g.threads);
  check(a.text.empty() != a.file.empty(), "chunks: give exactly one of --text or --file");
  check_output(a.html_out);
  if (!a.file.empty()) a.text = io::read_file(a.file);
  if ((int64_t)a.text.size() > a.max_bytes) a.text.resize(a.max_bytes);
  const auto device = resolve_device(a.device);
  DeviceScope on_device(device);
  auto model = load_model(a.model, device);
  auto view = compute_chunks(*model, a.text);
  if (a.html_out.empty()) a.html_out = (fs::path(resolve_model_dir(a.model)).parent_path() / "chunks.html").string();
  io::write_file_atomic(a.html_out, chunks_html(view, "dynarch chunks: " + a.model));
  std::fputs(chunks_terminal(view, isatty(STDOUT_FILENO)).c_str(), stdout);
  std::fprintf(stderr, "HTML view written to %s\n", a.html_out.c_str());
}

void print_stability_table(const std::vector<StackStability>& stacks) {
  std::printf("%-34s %4s %8s %10s %10s %10s %10s %10s\n", "stack", "subl", "tokens", "single_f", "comp_f(A)",
              "comp_f(B)", "comp_b(A)", "min_col");
  auto vmax = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
  auto vmin = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  for (auto& s : stacks)
    std::printf("%-34s %4zu %8lld %10.4g %10.4g %10.4g %10.4g %10.4g\n", s.stack.c_str(), s.sublayers.size(),
                (long long)s.tokens, vmax(s.single_fwd.a_mean), vmax(s.comp_fwd.a_mean), vmax(s.comp_fwd.b),
                vmax(s.comp_bwd.a_mean), vmin(s.comp_fwd_minc.a_mean));
  std::printf("(max over sub-layers; A = per token then mean, B = of the token-averaged maps)\n");
}

void run_stability(StabilityArgs a, const Globals& g) {
  set_threads(g.threads);
  check(a.windows >= 1, "--windows must be >= 1");
  check_output(a.json_out);
  check_output(a.svg_out);
  const auto device = resolve_device(a.device);
  DeviceScope on_device(device);
  auto model = load_model(a.model, device);
  if (a.seq_len <= 0) a.seq_len = trained_seq_len(a.model, 512);
  const std::string text = io::read_file(a.file);
  check(!text.empty(), "stability: " + a.file + " is empty");
  const int64_t L = std::min<int64_t>(a.seq_len, text.size());
  std::vector<std::string> wins;
  for (auto off : spread_offsets(text.size(), L, a.windows)) wins.push_back(text.substr(off, L));
  auto stacks = measure_stability(*model, wins, a.batch);
  const auto run_dir = fs::path(resolve_model_dir(a.model)).parent_path();
  if (a.json_out.empty()) a.json_out = (run_dir / "stability.json").string();
  if (a.svg_out.empty()) a.svg_out = (run_dir / "stability.svg").string();
  nlohmann::json j{{"model", a.model}, {"file", a.file}, {"windows", wins.size()}, {"seq_len", L},
                   {"stacks", nlohmann::json::array()}};
  for (auto& s : stacks) j["stacks"].push_back(s.to_json());
  io::write_file_atomic(a.json_out, j.dump(1) + "\n");
  if (stacks.empty()) {
    std::printf("%s has a plain residual everywhere: every gain is exactly 1\n", a.model.c_str());
    return;
  }
  io::write_file_atomic(a.svg_out, stability_svg(stacks, "dynarch stability: " + a.model));
  print_stability_table(stacks);
  std::fprintf(stderr, "metrics written to %s, figure to %s\n", a.json_out.c_str(), a.svg_out.c_str());
}

}  // namespace

std::vector<Verb> add_inspect(CLI::App& app, const Globals& g) {
  auto* ch = app.add_subcommand("chunks", "show where an H-Net puts its chunk boundaries (HTML + terminal)");
  auto c = std::make_shared<ChunksArgs>();
  ch->add_option("-m,--model", c->model, "run or checkpoint directory")->required();
  ch->add_option("--text", c->text, "text to chunk");
  ch->add_option("--file", c->file, "file to chunk (instead of --text)");
  ch->add_option("--html", c->html_out, "write the HTML view here (default: RUN/chunks.html)");
  ch->add_option("--max-bytes", c->max_bytes, "use at most this many bytes of the input")->capture_default_str();
  add_device_option(ch, c->device);

  auto* sb = app.add_subcommand("stability", "HC/mHC stream-mixing gains per sub-layer and composite (JSON + SVG)");
  auto s = std::make_shared<StabilityArgs>();
  sb->add_option("-m,--model", s->model, "run or checkpoint directory")->required();
  sb->add_option("--file", s->file, "input text (windows spread evenly over it)")->required();
  sb->add_option("--seq-len", s->seq_len, "bytes per window (default: the training length)");
  sb->add_option("--windows", s->windows, "number of windows")->capture_default_str();
  sb->add_option("--batch", s->batch, "windows per forward pass")->capture_default_str();
  sb->add_option("--json", s->json_out, "write the metrics here (default: RUN/stability.json)");
  sb->add_option("--svg", s->svg_out, "write the figure here (default: RUN/stability.svg)");
  add_device_option(sb, s->device);

  auto* ro = app.add_subcommand("routes", "export and summarise an H-Model's routing (JSON, DOT, SVG; --compare: JS)");
  auto r = std::make_shared<RoutesOptions>();
  ro->add_option("-m,--model", r->model, "run or checkpoint directory")->required();
  ro->add_option("--text", r->text, "input text");
  ro->add_option("--file", r->file, "input file (instead of --text)");
  ro->add_option("--json", r->json_out, "write the per-step JSON export here");
  ro->add_option("--dot", r->dot_out, "write the DOT graphs (collapsed + trellis) here");
  ro->add_option("--svg", r->svg_out, "write the SVG (trellis + heat maps) here");
  ro->add_option("--max-bytes", r->max_bytes, "use at most this many bytes of each input")->capture_default_str();
  ro->add_option("--compare", r->compare, "two input-set files (one input per line or .jsonl): JS divergence")
      ->expected(2);
  ro->add_option("--max-inputs", r->max_inputs, "--compare: inputs read per set")->capture_default_str();
  add_device_option(ro, r->device);

  return {{ch, [c, &g] { run_chunks(*c, g); }},
          {sb, [s, &g] { run_stability(*s, g); }},
          {ro, [r, &g] {
             set_threads(g.threads);
             routes_command(*r);
           }}};
}

}  // namespace dynarch::cli
