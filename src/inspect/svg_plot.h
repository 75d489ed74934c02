// Minimal SVG line charts (no dependencies) for figures users open in a browser:
// stability gains over layers, loss curves over steps.
#pragma once
#include <string>
#include <vector>

namespace dynarch {

struct Series {
  std::string label;
  std::vector<double> x, y;
  std::string color;  // empty: from the palette
  bool dashed = false;
};

struct Panel {
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  bool log_y = false;
  double y_ref = 0;   // draws a horizontal reference line when > 0 (e.g. gain 1)
};

// Panels side by side (wrapping after `columns`), each `w` x `h` pixels.
std::string svg_line_charts(const std::vector<Panel>& panels, const std::string& title, int columns = 2,
                            int w = 520, int h = 340);

}  // namespace dynarch
