#include "train/metrics_log.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/atomic_file.h"

namespace dynarch {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

[[noreturn]] void sys_fail(const std::string& what, const std::string& path) {
  fail("cannot " + what + " " + path + ": " + std::strerror(errno));
}

// Older checkpoints record no size: keep the whole lines of steps <= step.
void keep_steps_upto(const std::string& path, int64_t step) {
  std::istringstream in(io::read_file(path));
  std::string line, kept;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline: torn by a kill
    try {
      if (json::parse(line).value("step", (int64_t)0) <= step) kept += line + "\n";
    } catch (const json::exception&) {
    }
  }
  io::write_file_atomic(path, kept);
}

}  // namespace

MetricsLog::MetricsLog(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) sys_fail("write", path_);
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::write(const json& j) {
  const std::string line = j.dump() + "\n";
  const char* p = line.data();
  size_t n = line.size();
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      sys_fail("write", path_);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

int64_t MetricsLog::sync() {
  if (::fsync(fd_) != 0) sys_fail("fsync", path_);
  struct stat st {};
  if (::fstat(fd_, &st) != 0) sys_fail("stat", path_);
  return static_cast<int64_t>(st.st_size);
}

void restore_metrics(const std::string& path, int64_t step, int64_t bytes) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  const auto size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) fail("cannot stat " + path + ": " + ec.message());
  if (bytes >= 0 && size >= bytes) {
    if (::truncate(path.c_str(), bytes) != 0) sys_fail("truncate", path);
    return;
  }
  if (bytes >= 0)
    std::fprintf(stderr, "warning: %s holds %lld bytes, the checkpoint recorded %lld: keeping its lines up to step %lld\n",
                 path.c_str(), (long long)size, (long long)bytes, (long long)step);
  keep_steps_upto(path, step);
}

}  // namespace dynarch
