#include "core/progress.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace dynarch {

namespace {
// `dynarch launch` forwards rank 0's stderr through a pipe to its terminal.
bool terminal_behind_launcher() {
  const char* e = std::getenv("DYNARCH_PROGRESS_TTY");
  return e && std::string(e) == "1";
}
}  // namespace

std::string format_duration(double s) {
  if (s < 0 || s > 1e7) return "--:--";
  char buf[32];
  int h = (int)(s / 3600), m = (int)(s / 60) % 60, sec = (int)s % 60;
  if (h) std::snprintf(buf, sizeof buf, "%d:%02d:%02d", h, m, sec);
  else std::snprintf(buf, sizeof buf, "%02d:%02d", m, sec);
  return buf;
}

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(isatty(STDERR_FILENO) || terminal_behind_launcher()) {
  t0_ = last_ = std::chrono::steady_clock::now();
}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void Progress::update(int64_t done, const std::string& extra, bool force) {
  if (!enabled_) return;
  if (start_done_ < 0) start_done_ = done;  // resumed runs: ETA from this session's rate
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_).count();
  if (!force && since < (tty_ ? 0.2 : 10.0)) return;
  last_ = now;
  double el = elapsed();
  double rate = (done - start_done_) / std::max(el, 1e-9);
  double eta = rate > 0 ? (total_ - done) / rate : -1;
  const int width = 24;
  int fill = total_ > 0 ? (int)(width * done / total_) : 0;
  std::string bar(fill, '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld | %s | %s<%s%s", tty_ ? "\r\033[K" : "", label_.c_str(),
               bar.c_str(), (long long)done, (long long)total_, extra.c_str(), format_duration(el).c_str(),
               format_duration(eta).c_str(), tty_ ? "" : "\n");
  std::fflush(stderr);
}

void Progress::finish(const std::string& extra) {
  if (!enabled_) return;
  update(total_, extra, true);
  if (tty_) std::fputc('\n', stderr);
}

}  // namespace dynarch
