// Drawings of an H-Model's routing (hmodel.md §11): DOT (collapsed graph with
// the walk flow as edge weight, and the trellis unrolled over steps) and an
// SVG written directly (trellis + per-step heat maps of the mean rows).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "inspect/routes.h"

namespace dynarch {

namespace {

std::string name_of(const RoutesView& v, int i) { return i == 0 ? "IN" : fmt::format("{}:{}", i, v.node_types[i - 1]); }
std::string target_id(const RoutesView& v, int k) { return k < v.L ? fmt::format("n{}", k + 1) : "out"; }

double max_of(const std::vector<std::vector<double>>& m) {
  double x = 0;
  for (auto& r : m)
    for (double v : r)
      if (!std::isnan(v)) x = std::max(x, v);
  return x;
}

}  // namespace

std::string routes_dot(const RoutesView& v) {
  const int L = v.L, K = L + 1;
  const auto F = v.stats.collapsed_flow();
  const double mx = max_of(F);
  std::string o = "// H-Model routing of " + v.model + ": edge weight = walk flow sum_r rho_i c_ik (edges < 2% of the max hidden)\n";
  o += "digraph collapsed {\n  rankdir=LR;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n";
  o += "  n0 [label=\"IN\"];\n";
  for (int j = 1; j <= L; ++j) o += fmt::format("  n{} [label=\"{}\"];\n", j, name_of(v, j));
  o += "  out [label=\"OUT\", shape=doublecircle];\n";
  for (int i = 0; i < K; ++i)
    for (int k = 0; k < K; ++k) {
      const double w = F[i][k];
      if (!(w > 0) || w < 0.02 * mx) continue;
      o += fmt::format("  n{} -> {} [penwidth={:.2f}, label=\"{:.2f}\"];\n", i, target_id(v, k), 0.5 + 6.0 * w / mx, w);
    }
  o += "}\n";
  // Trellis: node (r, i) = sender i at step r, labelled with its occupancy rho_i^(r).
  const auto flow = v.stats.flow();
  const auto occ = v.stats.occupancy();
  double fm = 0;
  for (auto& f : flow) fm = std::max(fm, max_of(f));
  std::set<std::string> declared;
  std::string edges;
  auto node = [&](int r, int i) {
    auto id = fmt::format("s{}_{}", r, i);
    if (declared.insert(id).second)
      o += fmt::format("  {} [label=\"{}\\n{:.2f}\"];\n", id, name_of(v, i), r < (int)occ.size() ? occ[r][i] : 0.0);
    return id;
  };
  o += "digraph trellis {\n  rankdir=LR;\n  node [shape=ellipse, fontname=\"Helvetica\", fontsize=10];\n";
  node(0, 0);
  for (size_t r = 0; r < flow.size(); ++r)
    for (int i = 0; i < K; ++i)
      for (int k = 0; k < K; ++k) {
        const double w = flow[r][i][k];
        if (!(w > 0) || w < 0.02 * fm || ((int)r == v.T && k < L)) continue;  // step T: only exits count
        auto a = node((int)r, i);
        std::string b;
        if (k == L) {
          b = fmt::format("x{}", r);
          if (declared.insert(b).second) o += fmt::format("  {} [label=\"OUT@{}\", shape=box];\n", b, r);
        } else {
          b = node((int)r + 1, k + 1);
        }
        edges += fmt::format("  {} -> {} [penwidth={:.2f}, label=\"{:.2f}\"];\n", a, b, 0.5 + 6.0 * w / fm, w);
      }
  o += edges + "}\n";
  return o;
}

std::string routes_svg(const RoutesView& v) {
  const int L = v.L, K = L + 1, T = v.T;
  const auto flow = v.stats.flow();
  const auto occ = v.stats.occupancy();
  const auto exits = v.stats.exit_profile();
  const auto rows = v.stats.mean_rows();
  const int colw = 90, rowh = 44, left = 80, top = 70;
  const int trellis_h = top + (K + 1) * rowh;
  const int cell = K <= 8 ? 24 : 16, map_w = (K + 1) * cell + 24;
  const int per_line = std::max(1, (int)std::ceil(800.0 / map_w));
  const int map_lines = (T + per_line) / per_line;
  const int width = std::max(left + (T + 2) * colw + 20, left + per_line * map_w + 20);
  const int height = trellis_h + 40 + map_lines * ((K + 2) * cell + 30) + 10;
  std::string o = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"Helvetica,Arial,sans-serif\" "
      "font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      width, height);
  o += fmt::format("<text x=\"10\" y=\"20\" font-size=\"14\">H-Model routing: L = {}, T = {}, {}; expected depth {:.2f}</text>\n",
                   L, T, v.granularity, v.stats.expected_depth());
  o += "<text x=\"10\" y=\"38\" fill=\"#555\">trellis: circle area = walk occupancy, edge width = flow "
       "rho_i c_ik (mean over positions); bottom row: exit mass e_r; heat maps: mean routing rows per step</text>\n";
  auto cx = [&](int r) { return left + r * colw; };
  auto cy = [&](int row) { return top + row * rowh; };
  for (int i = 0; i <= K; ++i)
    o += fmt::format("<text x=\"10\" y=\"{}\">{}</text>\n", cy(i) + 4, i == K ? std::string("OUT") : name_of(v, i));
  for (int r = 0; r <= T + 1; ++r) o += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">r={}</text>\n", cx(r) - 10, top - 18, r);
  double fm = 0;
  for (auto& f : flow) fm = std::max(fm, max_of(f));
  for (size_t r = 0; r < flow.size(); ++r)
    for (int i = 0; i < K; ++i)
      for (int k = 0; k < K; ++k) {
        const double w = flow[r][i][k];
        if (!(w > 0) || w < 0.01 * fm || ((int)r == T && k < L)) continue;  // step T: only exits count
        const int row = k == L ? K : k + 1;
        o += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-opacity=\"0.6\" "
                         "stroke-width=\"{:.2f}\"><title>{} -> {} at step {}: {:.3f}</title></line>\n",
                         cx(r), cy(i), cx(r + 1), cy(row), k == L ? "#c0392b" : "#2c6fbb", 0.5 + 9.0 * w / fm,
                         name_of(v, i), k == L ? std::string("OUT") : name_of(v, k + 1), r, w);
      }
  for (size_t r = 0; r < occ.size(); ++r)
    for (int i = 0; i < K; ++i) {
      const double p = occ[r][i];
      if (!(p > 0)) continue;
      o += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"{:.1f}\" fill=\"#2c6fbb\"><title>{} at step {}: {:.3f}</title></circle>\n",
                       cx((int)r), cy(i), 2.0 + 12.0 * std::sqrt(p), name_of(v, i), r, p);
    }
  for (size_t r = 0; r < exits.size(); ++r)
    if (exits[r] > 0)
      o += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=\"{:.1f}\" fill=\"#c0392b\"><title>exit e_{} = {:.3f}</title></circle>\n",
                       cx((int)r + 1), cy(K), 2.0 + 12.0 * std::sqrt(exits[r]), r, exits[r]);
  // Heat maps of the mean routing rows per step: senders (rows) x targets (columns).
  for (size_t r = 0; r < rows.size(); ++r) {
    const int x0 = left + (int)(r % per_line) * map_w, y0 = trellis_h + 40 + (int)(r / per_line) * ((K + 2) * cell + 30);
    o += fmt::format("<text x=\"{}\" y=\"{}\">step {}</text>\n", x0, y0 - 6, r);
    for (int i = 0; i < K; ++i) {
      if (r == 0 || (int)(r % per_line) == 0)
        o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"9\">{}</text>\n", x0 - 4,
                         y0 + i * cell + 12, name_of(v, i));
      for (int k = 0; k < K; ++k) {
        const double c = rows[r][i][k];
        const std::string fill = std::isnan(c) ? "#eeeeee"
                                               : fmt::format("rgb({},{},{})", (int)(255 - 211 * c), (int)(255 - 144 * c),
                                                             (int)(255 - 68 * c));
        o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#ccc\"><title>{} -> {}: "
                         "{}</title></rect>\n",
                         x0 + k * cell, y0 + i * cell, cell, cell, fill, name_of(v, i),
                         k == L ? std::string("OUT") : name_of(v, k + 1), std::isnan(c) ? "inactive" : fmt::format("{:.3f}", c));
        if (cell >= 24 && !std::isnan(c))
          o += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"8\" text-anchor=\"middle\" fill=\"{}\">{:.2f}</text>\n",
                           x0 + k * cell + cell / 2, y0 + i * cell + cell / 2 + 3, c > 0.6 ? "white" : "#333", c);
      }
    }
    for (int k = 0; k < K; ++k)
      o += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\">{}</text>\n", x0 + k * cell + cell / 2,
                       y0 + K * cell + 11, k == L ? std::string("O") : std::to_string(k + 1));
  }
  o += "</svg>\n";
  return o;
}

}  // namespace dynarch
