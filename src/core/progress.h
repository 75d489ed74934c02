// Progress bar on stderr: redraws one line on a terminal, prints a line every
// few seconds otherwise (logs, CI).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace dynarch {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true);
  // done = units completed so far (of total); extra = "loss 1.23 | ..." text.
  void update(int64_t done, const std::string& extra, bool force = false);
  void finish(const std::string& extra);
  double elapsed() const;

 private:
  std::string label_;
  int64_t total_, start_done_ = -1;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point t0_, last_;
};

std::string format_duration(double seconds);

}  // namespace dynarch
