// H-Model benchmark (issue #5), one JSON line per measurement:
//  1. forward cost (ms, bytes/s) of a small per_token byte LM as T grows
//     (T = 1, 2, 4, 8, 16 at fixed L), beside the plain stack of the same layers;
//  2. sparse execution with inference hardening (top-k / threshold) vs dense
//     soft routing on a fixed input: layer calls executed, active (iteration,
//     node, position) share, wall time, bpb change;
//  3. the same for a per_sequence (classification) backbone, where whole examples skip nodes;
//  4. with --classifier RUN --items FILE: a trained per_sequence classifier (E1) evaluated
//     under each variant: accuracy (overall and by depth), layer calls and time, so the
//     savings are read at equal (or stated) accuracy.
// Usage: bench_hmodel [--layout T1m1f1g1] [--d 128] [--batch 4] [--seq-len 256] [--reps 3]
//                     [--data FILE] [--model RUN] [--threads N] [--skip-sweep 1]
//                     [--classifier RUN --items test.jsonl [--max-items 400]] [--only-classifier 1]
//                     [--device auto]
// --model RUN: part 2 uses trained weights (per_token LM); otherwise a random T = 4 model.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include "bench/lm_bench.h"
#include "core/device.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "core/runtime.h"
#include "data/corpus.h"
#include "data/labeled.h"
#include "train/classify_objective.h"
#include "train/lm_objective.h"
#include "model/hmodel/hmodel.h"
#include "model/lm.h"
#include "run/checkpoint.h"

using namespace dynarch;
using nlohmann::json;

namespace {

double median_ms(int reps, const std::function<void()>& f) {
  f();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    synchronize(forward_context().device);
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

json base_config(const std::string& layout, int d) {
  return json{{"arch_layout", {layout}}, {"d_model", {d}}, {"d_intermediate", {2 * d}},
              {"ssm_cfg", {{"d_state", 32}, {"chunk_size", 64}, {"headdim", 32}}},
              {"attn_cfg", {{"num_heads", {std::max(1, d / 32)}}, {"rotary_emb_dim", {16}}}}};
}

struct Variant {
  std::string name;
  int topk;
  double threshold;
  bool sparse;
};

// Sets variant `v` on `hm` (from its base config `keep`) and clears the call counters.
void apply_variant(HModel& hm, const HModelConfig& keep, const Variant& v) {
  hm.cfg = keep;
  hm.cfg.infer_topk = v.topk, hm.cfg.infer_threshold = v.threshold, hm.cfg.sparse = v.sparse;
  hm.stats = {};
}

// Times `fwd` under each hardening variant of `hm` (its config restored after); prints one
// JSON line per variant: `row(output, output of the first variant)` plus time and row calls.
void run_variants(HModel& hm, const std::vector<Variant>& vs, int reps, const std::function<at::Tensor()>& fwd,
                  const std::function<json(const at::Tensor&, const at::Tensor&)>& row) {
  const auto keep = hm.cfg;
  at::Tensor base;
  for (auto& v : vs) {
    apply_variant(hm, keep, v);
    at::Tensor y;
    const double t = median_ms(reps, [&] { y = fwd(); });
    if (!base.defined()) base = y;
    auto j = row(y, base);
    j.update({{"variant", v.name}, {"T", hm.T}, {"L", hm.L}, {"ms", t},
              {"row_calls_executed", (double)hm.stats.calls / std::max<int64_t>(hm.stats.calls_dense, 1)}});
    std::cout << j.dump() << std::endl;
  }
  hm.cfg = keep;
}

}  // namespace

static int run(int argc, char** argv) {
  std::string layout = "T1m1f1g1", data, model_dir, cls_dir, items_path;
  int64_t max_items = 400;
  std::string device_spec = "auto";
  bool only_cls = false;
  int d = 128, threads = 0, reps = 3;
  int64_t B = 4, S = 256;
  bool sweep = true;
  for (const auto& [k, v] : option_pairs(argc, argv, "bench_hmodel")) {
    if (k == "--layout") layout = v;
    else if (k == "--d") d = std::stoi(v);
    else if (k == "--batch") B = std::stoll(v);
    else if (k == "--seq-len") S = std::stoll(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--data") data = v;
    else if (k == "--model") model_dir = v;
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--skip-sweep") sweep = v == "0";
    else if (k == "--classifier") cls_dir = v;
    else if (k == "--items") items_path = v;
    else if (k == "--max-items") max_items = std::stoll(v);
    else if (k == "--only-classifier") only_cls = v != "0";
    else if (k == "--device") device_spec = v;
    else throw UserError("unknown option " + k);
  }
  const auto device = resolve_device(device_spec);
  DeviceScope on_device(device);
  set_threads(threads);
  torch::NoGradGuard ng;
  check(cls_dir.empty() == items_path.empty(), "bench_hmodel: --classifier and --items go together");
  const std::vector<Variant> vs{{"dense soft (no skipping)", 0, 0.0, false}, {"sparse soft", 0, 0.0, true},
                                {"top-2", 2, 0.0, true},  {"top-1", 1, 0.0, true},
                                {"threshold 0.1", 0, 0.1, true}, {"threshold 0.25", 0, 0.25, true},
                                {"top-2 + threshold 0.25", 2, 0.25, true}};
  if (!cls_dir.empty()) {  // Part 4: trained classifier, accuracy per variant
    auto cm = load_model(cls_dir, device);
    auto* chm = find_hmodel(*cm);
    check(chm && cm->config.task.classify(), "bench_hmodel: --classifier must be an H-Model classifier run");
    cm->eval();
    auto set = load_labeled(items_path, cm->config.task.labels);
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < (int64_t)set.items.size() && i < max_items; ++i) idx.push_back(i);
    const auto keep = chm->cfg;
    double acc0 = -1;
    for (auto& v : vs) {
      apply_variant(*chm, keep, v);
      auto t0 = std::chrono::steady_clock::now();
      auto ev = evaluate_classifier(*cm, set, idx, 16, false);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (acc0 < 0) acc0 = ev.accuracy();
      auto ej = ev.to_json();
      std::cout << json{{"bench", "classifier_sparse"}, {"model", cls_dir}, {"variant", v.name},
                        {"items", (int64_t)idx.size()}, {"T", chm->T}, {"L", chm->L}, {"ms", ms},
                        {"row_calls_executed", (double)chm->stats.calls / std::max<int64_t>(chm->stats.calls_dense, 1)},
                        {"accuracy", ev.accuracy()}, {"accuracy_change", ev.accuracy() - acc0},
                        {"by_depth", ej.contains("by_depth") ? json(ej["by_depth"]) : json()},
                        {"threads", num_threads()}}
                       .dump()
                << std::endl;
    }
    chm->cfg = keep;
    if (only_cls) return 0;
  }
  // Fixed input: windows of --data, else synthetic text.
  at::Tensor inputs, targets;
  if (!data.empty()) {
    MappedFile f(data);
    ByteSpan span{std::shared_ptr<MappedFile>(&f, [](MappedFile*) {}), 0, f.size(), data};
    auto b = windows_at(span, spread_offsets(span.size, S, B), S);
    inputs = b.inputs, targets = b.targets;
  } else {
    torch::manual_seed(1);
    auto ids = torch::randint(97, 123, {B, S + 1}, at::kLong);
    inputs = ids.narrow(1, 0, S), targets = ids.narrow(1, 1, S);
  }
  const double bytes = (double)B * S;
  if (sweep) {
    torch::manual_seed(0);
    ByteLM plain(ModelConfig::from_json(base_config(layout, d), "plain"));
    plain.to(device);
    plain.eval();
    const double tp = median_ms(reps, [&] { plain.forward(inputs); });
    std::cout << json{{"bench", "plain_stack"}, {"layout", layout}, {"d", d}, {"batch", B}, {"seq_len", S},
                      {"ms", tp}, {"bytes_per_s", bytes / tp * 1e3}, {"threads", num_threads()}}
                     .dump()
              << std::endl;
    for (int T : {1, 2, 4, 8, 16}) {
      auto j = base_config(layout, d);
      j["hmodel"] = {{"T", T}};
      torch::manual_seed(0);
      ByteLM m(ModelConfig::from_json(j, "hmodel"));
      m.to(device);
      m.eval();
      const double t = median_ms(reps, [&] { m.forward(inputs); });
      std::cout << json{{"bench", "forward_vs_T"}, {"layout", layout}, {"T", T}, {"ms", t},
                        {"bytes_per_s", bytes / t * 1e3}, {"ratio_to_plain_stack", t / tp},
                        {"flops_per_byte_fwd", m.flops_per_byte(S)}}
                       .dump()
                << std::endl;
    }
  }
  // Part 2: hardening / sparse execution.
  std::shared_ptr<ByteLM> m;
  if (!model_dir.empty()) {
    m = load_model(model_dir, device);
  } else {
    auto j = base_config(layout, d);
    j["hmodel"] = {{"T", 4}};
    torch::manual_seed(0);
    m = std::make_shared<ByteLM>(ModelConfig::from_json(j, "hmodel"));
    m->to(device);
  }
  auto* hm = find_hmodel(*m);
  check(hm, "bench_hmodel: --model has no H-Model");
  m->eval();
  double bpb0 = -1;
  run_variants(*hm, vs, reps, [&] { return m->forward(inputs); }, [&](const at::Tensor& logits, const at::Tensor& base) {
    const double bpb = lm_loss(logits, targets).item<double>() / std::log(2.0);
    if (bpb0 < 0) bpb0 = bpb;
    const auto& s = hm->stats;
    return json{{"bench", "hardening"}, {"model", model_dir.empty() ? "random" : model_dir},
                {"positionwise_positions_run", (double)s.positions / std::max<int64_t>(s.positions_dense, 1)},
                {"active_position_share", (double)s.active_positions / std::max<int64_t>(s.all_positions, 1)},
                {"bpb", bpb}, {"bpb_change", bpb - bpb0},
                {"max_logit_change", (logits - base).abs().max().item<double>()}};
  });
  // Part 3: per_sequence routing (classification backbone, random init): whole examples skip nodes.
  auto j = base_config(layout, d);
  j["hmodel"] = {{"T", 4}, {"routing", {{"granularity", "per_sequence"}}}};
  torch::manual_seed(0);
  ByteLM c(ModelConfig::from_json(j, "per_sequence"));
  c.to(device);
  c.eval();
  auto emb = c.embeddings->forward(inputs.to(device));
  run_variants(*find_hmodel(c), vs, reps, [&] { return c.backbone->forward(emb, {}, nullptr); },
               [&](const at::Tensor& y, const at::Tensor& base) {
                 return json{{"bench", "hardening_per_sequence"},
                             {"rel_output_change", ((y - base).norm() / base.norm()).item<double>()}};
               });
  return 0;
}

int main(int argc, char** argv) { return bench_main(argc, argv, run); }
