// Byte corpora: memory-mapped files, counter-based random windows (so the data
// position of a run is just its step number), fixed train/validation split.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>

namespace dynarch {

// Read-only memory map of a whole file. Errors name the file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  int64_t size_ = 0;
};

// A byte range of a mapped file.
struct ByteSpan {
  std::shared_ptr<MappedFile> file;
  int64_t begin = 0, size = 0;
  std::string name;  // for messages
  const uint8_t* data() const { return file->data() + begin; }
};

// `path` is a corpus directory with train.bin and val.bin (scripts/make_corpora.sh),
// or a single file whose last 2 % (at least one window) is the validation part.
struct Corpus {
  ByteSpan train, val;
  static Corpus open(const std::string& path, int64_t min_bytes);
};

struct Batch {
  at::Tensor inputs;   // (B, L) int64: BOS then the first L-1 bytes of each window
  at::Tensor targets;  // (B, L) int64: the L bytes of each window
};

// Windows for training step `step`, micro-batch `micro`: positions from a hash
// of (seed, step, micro, row), independent of history, so resume is exact.
// Rows row0 .. row0 + B - 1 of the micro-batch (a data-parallel rank's slice).
Batch sample_batch(const ByteSpan& span, uint64_t seed, int64_t step, int64_t micro, int64_t row0, int64_t B,
                   int64_t L);
// Windows starting at the given offsets (last one may be shorter: padded with
// target -1, which the loss ignores).
Batch windows_at(const ByteSpan& span, const std::vector<int64_t>& offsets, int64_t L);

// Offsets 0, L, 2L, ... covering the whole span (the last window may be short).
std::vector<int64_t> tiling_offsets(int64_t size, int64_t L);
// n windows of length L spread evenly over the span (fixed validation set).
std::vector<int64_t> spread_offsets(int64_t size, int64_t L, int64_t n);

uint64_t splitmix64(uint64_t x);

}  // namespace dynarch
