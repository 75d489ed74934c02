#include "inspect/routes.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/device.h"
#include "core/error.h"
#include "core/forward_context.h"
#include "io/atomic_file.h"
#include "model/hmodel/hmodel.h"
#include "run/checkpoint.h"

namespace dynarch {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

HModel& hmodel_of(ByteLM& m) {
  auto* hm = find_hmodel(m);
  check(hm, "routes: the model has no H-Model (its config has no \"hmodel\" section)");
  return *hm;
}

// BOS + text through embeddings and backbone with a recorder; also the outer stages' boundaries.
RouteTrace run_trace(ByteLM& m, const std::string& text, std::vector<StageTrace>* stages) {
  check(!text.empty(), "routes: empty input text");
  hmodel_of(m);
  torch::NoGradGuard ng;
  m.eval();
  std::vector<int64_t> ids{kBOS};
  for (unsigned char c : text) ids.push_back(c);
  RouteRecorder rec;
  auto h = m.embeddings->forward(at::tensor(ids, at::kLong).view({1, -1}).to(m.device()));
  if (m.embeddings->weight.scalar_type() == at::kDouble) h = h.to(at::kDouble);
  StageRecorder stage_rec;
  m.backbone->forward(h, {}, nullptr);
  if (stages) *stages = std::move(stage_rec.traces);
  check(rec.traces.size() == 1, "routes: expected one H-Model trace");
  return std::move(rec.traces[0]);
}

std::string letter(const LayerSpec& l) {
  return std::string(1, l.mixer != 'f' && l.mlp ? (char)std::toupper(l.mixer) : l.mixer);
}

double r5(double v) { return std::isnan(v) ? v : std::round(v * 1e5) / 1e5; }

std::string fmt_list(const std::vector<double>& v, int prec = 3) {
  std::string s;
  for (double x : v) {
    if (!s.empty()) s += ' ';
    s += std::isnan(x) ? std::string("-") : fmt::format("{:.{}f}", x, prec);
  }
  return s;
}

}  // namespace

RoutesView compute_routes(ByteLM& m, const std::string& text, const std::string& name) {
  auto& hm = hmodel_of(m);
  RoutesView v;
  v.model = name, v.text = text, v.L = hm.L, v.T = hm.T, v.granularity = hm.cfg.granularity;
  for (auto& n : hm.nodes) v.node_types.push_back(letter(n->spec));
  std::vector<StageTrace> stages;
  v.trace = run_trace(m, text, &stages);
  v.stats.add(v.trace);
  // Input position (0 = BOS) of every position the H-Model sees: outer stages keep their chunk starts.
  std::vector<int64_t> pos(text.size() + 1);
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = (int64_t)i;
  for (auto& st : stages) {
    auto b = st.b[0].contiguous();
    std::vector<int64_t> next;
    for (size_t j = 0; j < pos.size(); ++j)
      if (b[j].item<bool>()) next.push_back(pos[j]);
    pos = next;
  }
  for (size_t p = 0; p < pos.size(); ++p) {
    const int64_t end = p + 1 < pos.size() ? pos[p + 1] : (int64_t)text.size() + 1;
    v.offset.push_back(pos[p] - 1);
    v.length.push_back(pos[p] == 0 ? std::max<int64_t>(end - 1, 0) : end - pos[p]);
  }
  return v;
}

RouteStats route_stats(ByteLM& m, const std::vector<std::string>& inputs) {
  RouteStats s;
  for (auto& t : inputs) s.add(run_trace(m, t, nullptr));
  return s;
}

json summary_json(const RouteStats& s) {
  return json{{"expected_depth", s.expected_depth()}, {"exit_profile", s.exit_profile()}, {"usage", s.usage()},
              {"call_rate", s.call_rate()}, {"self_mass", s.self_mass()}, {"self_mass_walk", s.self_mass_walk()},
              {"entropy", s.entropy()}, {"mean_entropy", s.mean_entropy()},
              {"input_dependence", s.input_dependence()}, {"rms_in", s.rms_in()}, {"rms_out", s.rms_out()},
              {"rows", s.rows()}, {"calls", s.calls}, {"calls_dense", s.calls_dense}};
}

json routes_json(const RoutesView& v) {
  const int L = v.L, K = L + 1;
  json nodes = json::array({{{"id", 0}, {"name", "IN"}, {"type", "in"}}});
  for (int j = 1; j <= L; ++j)
    nodes.push_back({{"id", j}, {"name", std::to_string(j) + ":" + v.node_types[j - 1]}, {"type", v.node_types[j - 1]}});
  nodes.push_back({{"id", L + 1}, {"name", "OUT"}, {"type", "out"}});
  json tokens = json::array();
  for (size_t p = 0; p < v.offset.size(); ++p)
    tokens.push_back({{"pos", p}, {"offset", v.offset[p]}, {"len", v.length[p]},
                      {"text", v.offset[p] < 0 ? std::string("<BOS>") : v.text.substr(v.offset[p], v.length[p])}});
  json steps = json::array();
  for (size_t r = 0; r < v.trace.steps.size(); ++r) {
    const auto& st = v.trace.steps[r];
    auto C = st.C[0], snd = st.sender[0];  // (S', K, K), (S', K)
    const int64_t Sp = C.size(0);
    json senders = json::array(), Cj = json::array(), active = json::array(), counts = json::array(),
         mass = json::array();
    for (int i = 0; i < K; ++i) {
      if (!snd.select(1, i).any().item<bool>()) continue;
      senders.push_back(i);
      json rows = json::array();
      for (int64_t t = 0; t < Sp; ++t) {
        json row = json::array();
        for (int k = 0; k < K; ++k) row.push_back(r5(C[t][i][k].item<double>()));
        rows.push_back(row);
      }
      Cj.push_back(rows);
    }
    auto recv = C.sum(1);
    for (int k = 0; k < K; ++k) {
      json c = json::array(), m = json::array();
      for (int64_t t = 0; t < Sp; ++t) c.push_back(st.counts[0][t][k].item<double>()), m.push_back(r5(recv[t][k].item<double>()));
      counts.push_back(c);
      mass.push_back(m);
    }
    if (r >= 1)
      for (int j = 1; j <= L; ++j) {
        json a = json::array();
        for (int64_t t = 0; t < Sp; ++t) a.push_back(snd[t][j].item<bool>() ? 1 : 0);
        active.push_back(a);
      }
    json s{{"r", r}, {"senders", senders}, {"C", Cj}, {"active", active}, {"counts", counts}, {"mass", mass}};
    auto vec = [](const at::Tensor& t) {
      json a = json::array();
      if (t.defined())
        for (int64_t i = 0; i < t.numel(); ++i) a.push_back(r5(t[i].item<double>()));
      return a;
    };
    s["rms_in"] = vec(st.rms_in);
    s["rms_out"] = vec(st.rms_out);
    steps.push_back(s);
  }
  return json{{"model", v.model}, {"L", L}, {"T", v.T}, {"granularity", v.granularity},
              {"targets", "C[i][t][k]: weight from senders[i] at position t to target k (layers 1..L, then OUT)"},
              {"nodes", nodes}, {"tokens", tokens}, {"steps", steps}, {"summary", summary_json(v.stats)}};
}

std::string routes_summary(const RouteStats& s, const std::vector<std::string>& types) {
  const int L = s.L, T = s.T;
  std::string o = fmt::format("H-Model routing over {} rows: L = {}, T = {}\n", s.rows(), L, T);
  o += fmt::format("expected depth   {:.3f} of T = {}\n", s.expected_depth(), T);
  o += "exit profile     e_0..e_T = " + fmt_list(s.exit_profile()) + "\n";
  o += fmt::format("routing entropy  {:.3f} (mean normalised, 1 = uniform)\n", s.mean_entropy());
  const double saved = s.calls_dense ? 1.0 - (double)s.calls / s.calls_dense : 0.0;
  o += fmt::format("layer calls      {} of {} dense ({:.1f}% saved)\n", s.calls, s.calls_dense, 100 * saved);
  auto usage = s.usage(), rate = s.call_rate(), self = s.self_mass(), selfw = s.self_mass_walk();
  auto ent = s.entropy();
  o += "node  type  visits  call-rate  self(mean)  self(walk)  entropy\n";
  for (int j = 1; j <= L; ++j) {
    double e = 0;
    int n = 0;
    for (int r = 1; r <= T; ++r)
      if (!std::isnan(ent[r][j])) e += ent[r][j], ++n;
    o += fmt::format("{:<5} {:<5} {:>6.3f}  {:>9.3f}  {:>10}  {:>10.3f}  {:>7}\n", j, types.at(j - 1), usage[j - 1],
                     rate[j - 1], std::isnan(self[j - 1]) ? "-" : fmt::format("{:.3f}", self[j - 1]), selfw[j - 1],
                     n ? fmt::format("{:.3f}", e / n) : "-");
  }
  o += fmt::format("IN    in    entropy at step 0: {}\n", std::isnan(ent[0][0]) ? "-" : fmt::format("{:.3f}", ent[0][0]));
  auto ri = s.rms_in(), ro = s.rms_out();
  o += "RMS per iteration (input X_j -> output h_j, mean over layers):\n";
  for (int r = 1; r <= T; ++r) {
    double a = 0, b = 0;
    int n = 0;
    for (int j = 0; j < L; ++j)
      if (!std::isnan(ri[r][j])) a += ri[r][j], b += ro[r][j], ++n;
    if (n) o += fmt::format("  r={:<3} {:.3f} -> {:.3f}\n", r, a / n, b / n);
  }
  return o;
}

std::vector<std::string> read_input_set(const std::string& path, int64_t max_bytes, int64_t max_inputs) {
  std::ifstream f(path);
  if (!f) fail("routes: cannot open input set " + path);
  std::vector<std::string> out;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(f, line) && (int64_t)out.size() < max_inputs) {
    ++lineno;
    if (line.empty()) continue;
    std::string t = line;
    if (line[0] == '{') {
      try {
        auto j = json::parse(line);
        if (j.contains("text")) t = j["text"].get<std::string>();
        else if (j.contains("theory") && j.contains("question"))
          t = j["theory"].get<std::string>() + "\nQ: " + j["question"].get<std::string>();
        else fail(path + ":" + std::to_string(lineno) + ": a JSON line needs \"text\" or \"theory\" + \"question\"");
      } catch (const json::exception& e) {
        fail(path + ":" + std::to_string(lineno) + ": not valid JSON: " + e.what());
      }
    }
    if ((int64_t)t.size() > max_bytes) t.resize(max_bytes);
    out.push_back(t);
  }
  check(!out.empty(), "routes: input set " + path + " holds no inputs (one per line)");
  return out;
}

void routes_command(const RoutesOptions& o) {
  check(o.max_bytes >= 1, "routes: --max-bytes must be >= 1");
  check(o.max_inputs >= 1, "routes: --max-inputs must be >= 1");
  const auto device = resolve_device(o.device);
  DeviceScope on_device(device);
  auto model = load_model(o.model, device);
  auto& hm = hmodel_of(*model);
  std::vector<std::string> types;
  for (auto& n : hm.nodes) types.push_back(letter(n->spec));
  if (!o.compare.empty()) {
    check(o.compare.size() == 2, "routes: --compare takes two input-set files");
    check(o.text.empty() && o.file.empty(), "routes: --compare replaces --text/--file");
    auto sa = route_stats(*model, read_input_set(o.compare[0], o.max_bytes, o.max_inputs));
    auto sb = route_stats(*model, read_input_set(o.compare[1], o.max_bytes, o.max_inputs));
    auto c = compare_routes(sa, sb);
    std::string out = fmt::format("JS divergence of the routing distributions (base 2, 0..1): {} vs {}\n",
                                  o.compare[0], o.compare[1]);
    out += fmt::format("headline (occupancy-weighted) {:.4f}   plain mean {:.4f}\n", c.weighted, c.plain);
    out += "step  " + std::string("IN") + std::string(6, ' ');
    for (int j = 1; j <= hm.L; ++j) out += fmt::format("{:<8}", std::to_string(j) + ":" + types[j - 1]);
    out += "\n";
    for (size_t r = 0; r < c.js.size(); ++r) {
      out += fmt::format("{:<6}", r);
      for (double v : c.js[r]) out += fmt::format("{:<8}", std::isnan(v) ? "-" : fmt::format("{:.4f}", v));
      out += "\n";
    }
    out += fmt::format("expected depth: A {:.3f}, B {:.3f}\n", sa.expected_depth(), sb.expected_depth());
    std::fputs(out.c_str(), stdout);
    if (!o.json_out.empty())
      io::write_file_atomic(o.json_out, json{{"a", o.compare[0]}, {"b", o.compare[1]}, {"js", c.js},
                                             {"weighted", c.weighted}, {"plain", c.plain},
                                             {"summary_a", summary_json(sa)}, {"summary_b", summary_json(sb)}}
                                            .dump(1) + "\n");
    return;
  }
  check(o.text.empty() != o.file.empty(), "routes: give exactly one of --text or --file (or --compare A B)");
  auto text = o.file.empty() ? o.text : io::read_file(o.file);
  if ((int64_t)text.size() > o.max_bytes) text.resize(o.max_bytes);
  auto v = compute_routes(*model, text, o.model);
  std::fputs(routes_summary(v.stats, types).c_str(), stdout);
  auto json_out = o.json_out, dot_out = o.dot_out, svg_out = o.svg_out;
  if (json_out.empty() && dot_out.empty() && svg_out.empty()) {
    auto run = fs::path(resolve_model_dir(o.model)).parent_path();
    json_out = (run / "routes.json").string(), dot_out = (run / "routes.dot").string();
    svg_out = (run / "routes.svg").string();
  }
  auto dump = [](const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; };
  if (!json_out.empty()) io::write_file_atomic(json_out, dump(routes_json(v)));
  if (!dot_out.empty()) io::write_file_atomic(dot_out, routes_dot(v));
  if (!svg_out.empty()) io::write_file_atomic(svg_out, routes_svg(v));
  for (auto* p : {&json_out, &dot_out, &svg_out})
    if (!p->empty()) std::fprintf(stderr, "wrote %s\n", p->c_str());
}

}  // namespace dynarch
