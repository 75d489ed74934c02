// RUN/metrics.jsonl: one JSON object per line (training steps, validations).
// Guarantees, after any number of kills and resumes: every step appears
// exactly once, in order.
//  - each line goes to the kernel in one write() as soon as it is made, so a
//    kill -9 loses nothing already written (no user-space buffer);
//  - sync() fsyncs the file and returns its size; the checkpoint records that
//    size ("metrics_bytes"), so the file holds at least what it covers;
//  - on resume, restore_metrics() truncates the file to that size: lines of
//    steps after the checkpoint (the resumed run writes them again) and a line
//    torn by a kill go, everything the checkpoint covers stays.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace dynarch {

class MetricsLog {
 public:
  explicit MetricsLog(std::string path);  // appends; creates the file if needed
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void write(const nlohmann::json& line);
  // fsync; returns the file size in bytes (what a checkpoint records).
  int64_t sync();

 private:
  std::string path_;
  int fd_ = -1;
};

// Cuts metrics.jsonl back to the `bytes` a checkpoint of step `step` recorded.
// bytes < 0 (checkpoints of older versions) or a file shorter than `bytes`
// (damaged or replaced): keeps the parseable lines with step <= `step`,
// the latter with a warning. A missing file stays missing.
void restore_metrics(const std::string& path, int64_t step, int64_t bytes);

}  // namespace dynarch
