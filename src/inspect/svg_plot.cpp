#include "inspect/svg_plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace dynarch {

namespace {

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}

std::string num(double v) {
  if (v == 0) return "0";
  const double a = std::abs(v);
  if (a >= 1e4 || a < 1e-2) return fmt::format("{:.0e}", v);
  if (a >= 100) return fmt::format("{:.0f}", v);
  return fmt::format("{:.3g}", v);
}

// "Nice" tick values between lo and hi for a linear axis.
std::vector<double> linear_ticks(double lo, double hi) {
  const double span = hi - lo;
  double step = std::pow(10.0, std::floor(std::log10(span / 5)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (span / (step * m) <= 6) {
      step *= m;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) t.push_back(v);
  return t;
}

std::string panel_svg(const Panel& p, double ox, double oy, int w, int h) {
  const double L = ox + 62, R = ox + w - 150, T = oy + 30, B = oy + h - 44;
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  for (auto& s : p.series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (p.log_y && s.y[i] <= 0)) continue;
      xlo = std::min(xlo, s.x[i]);
      xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i]);
      yhi = std::max(yhi, s.y[i]);
    }
  if (p.y_ref > 0) {
    ylo = std::min(ylo, p.y_ref);
    yhi = std::max(yhi, p.y_ref);
  }
  std::string o = fmt::format("<g><text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
                              L, oy + 18, esc(p.title));
  if (!std::isfinite(xlo)) return o + "</g>\n";
  if (xhi == xlo) xhi = xlo + 1;
  std::vector<double> yt;
  if (p.log_y) {
    double a = std::floor(std::log10(ylo)), b = std::ceil(std::log10(yhi));
    if (b == a) b = a + 1;
    ylo = std::pow(10.0, a);
    yhi = std::pow(10.0, b);
    const double step = std::max(1.0, std::ceil((b - a) / 6));
    for (double e = a; e <= b; e += step) yt.push_back(std::pow(10.0, e));
  } else {
    if (yhi == ylo) yhi = ylo + 1;
    const double pad = 0.05 * (yhi - ylo);
    ylo -= pad;
    yhi += pad;
    yt = linear_ticks(ylo, yhi);
  }
  auto X = [&](double x) { return L + (x - xlo) / (xhi - xlo) * (R - L); };
  auto Y = [&](double y) {
    const double f = p.log_y ? (std::log10(y) - std::log10(ylo)) / (std::log10(yhi) - std::log10(ylo))
                             : (y - ylo) / (yhi - ylo);
    return B - f * (B - T);
  };
  o += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"none\" stroke=\"#999\"/>\n",
                   L, T, R - L, B - T);
  for (double v : yt)
    o += fmt::format("<line x1=\"{0:.1f}\" x2=\"{1:.1f}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#eee\"/>"
                     "<text x=\"{3:.1f}\" y=\"{4:.1f}\" font-size=\"11\" text-anchor=\"end\">{5}</text>\n",
                     L, R, Y(v), L - 4, Y(v) + 4, num(v));
  for (double v : linear_ticks(xlo, xhi))
    o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n", X(v),
                     B + 15, num(v));
  o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"12\" text-anchor=\"middle\">{}</text>\n", (L + R) / 2,
                   B + 33, esc(p.xlabel));
  o += fmt::format("<text x=\"{0:.1f}\" y=\"{1:.1f}\" font-size=\"12\" text-anchor=\"middle\" "
                   "transform=\"rotate(-90 {0:.1f} {1:.1f})\">{2}</text>\n",
                   ox + 14, (T + B) / 2, esc(p.ylabel));
  if (p.y_ref > 0)
    o += fmt::format("<line x1=\"{0:.1f}\" x2=\"{1:.1f}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"#444\" "
                     "stroke-dasharray=\"2,3\"/>\n",
                     L, R, Y(p.y_ref));
  int k = 0;
  for (auto& s : p.series) {
    const std::string color = s.color.empty() ? kPalette[k % 8] : s.color;
    std::string pts;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (p.log_y && s.y[i] <= 0)) continue;
      pts += fmt::format("{:.1f},{:.1f} ", X(s.x[i]), Y(s.y[i]));
    }
    o += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\"{} points=\"{}\"/>\n", color,
                     s.dashed ? " stroke-dasharray=\"5,3\"" : "", pts);
    const double ly = T + 8 + 16 * k;
    o += fmt::format("<line x1=\"{0:.1f}\" x2=\"{1:.1f}\" y1=\"{2:.1f}\" y2=\"{2:.1f}\" stroke=\"{3}\" "
                     "stroke-width=\"2\"{4}/><text x=\"{5:.1f}\" y=\"{6:.1f}\" font-size=\"11\">{7}</text>\n",
                     R + 8, R + 26, ly, color, s.dashed ? " stroke-dasharray=\"5,3\"" : "", R + 30, ly + 4,
                     esc(s.label));
    ++k;
  }
  return o + "</g>\n";
}

}  // namespace

std::string svg_line_charts(const std::vector<Panel>& panels, const std::string& title, int columns, int w, int h) {
  const int cols = std::max(1, std::min<int>(columns, panels.size()));
  const int rows = (panels.size() + cols - 1) / cols;
  const int W = cols * w, H = rows * h + 30;
  std::string o = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"10\" y=\"20\" font-size=\"15\">{2}</text>\n",
      W, H, esc(title));
  for (size_t i = 0; i < panels.size(); ++i)
    o += panel_svg(panels[i], (i % cols) * w, 30 + (i / cols) * h, w, h);
  return o + "</svg>\n";
}

}  // namespace dynarch
