// libFuzzer target: byte corpora (data/corpus), as training opens them. The first
// two input bytes choose the window length L and the layout (one file whose last
// 2 % is validation, or a directory with train.bin and val.bin split at a chosen
// byte); the rest is the data. Every window the trainer and evaluator can ask
// for must lie inside the file and hold exactly its bytes.
#include <sys/stat.h>

#include <filesystem>

#include "core/bytes.h"
#include "core/error.h"
#include "data/corpus.h"
#include "io/fs_tree.h"
#include "fuzz_util.h"

using namespace dynarch;

namespace {

void check_windows(const ByteSpan& span, const std::vector<int64_t>& offsets, int64_t L) {
  Batch b = windows_at(span, offsets, L);
  const auto* in = b.inputs.data_ptr<int64_t>();
  const auto* tg = b.targets.data_ptr<int64_t>();
  for (size_t r = 0; r < offsets.size(); ++r) {
    const int64_t o = offsets[r];
    if (o < 0 || o >= span.size) fuzz::violated("window offset outside the span");
    if (in[r * L] != kBOS) fuzz::violated("window does not start with BOS");
    for (int64_t t = 0; t < L; ++t) {
      const int64_t want = o + t < span.size ? span.data()[o + t] : -1;
      if (tg[r * L + t] != want) fuzz::violated("target byte differs from the file");
      if (t + 1 < L && in[r * L + t + 1] != (want < 0 ? 0 : want)) fuzz::violated("input is not the shifted target");
    }
  }
}

void check_span(const ByteSpan& span, int64_t L, bool training) {
  if (span.size < 1 || span.begin < 0 || span.begin + span.size > span.file->size()) fuzz::violated("span outside file");
  if (training) {
    for (int64_t step = 0; step < 3; ++step) {
      Batch b = sample_batch(span, 1234, step, 0, 0, 4, L);
      if (b.inputs.size(0) != 4 || b.inputs.size(1) != L) fuzz::violated("sample_batch shape");
      // A data-parallel rank's slice (rows 2..3) is those rows of the whole micro-batch.
      Batch half = sample_batch(span, 1234, step, 0, 2, 2, L);
      if (!half.targets.equal(b.targets.slice(0, 2, 4))) fuzz::violated("row slice differs from the batch");
      if (b.targets.min().item<int64_t>() < 0) fuzz::violated("a training window runs past the data");
    }
  }
  check_windows(span, tiling_offsets(span.size, L), L);
  check_windows(span, spread_offsets(span.size, L, 5), L);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz::Scratch file("corpus"), dir("corpus_dir");
  if (size < 2) return 0;
  const int64_t L = 2 + data[0] % 63;
  const bool as_dir = data[1] & 1;
  const size_t split = data[1] >> 1;  // bytes of train.bin, in units of 4
  data += 2, size -= 2;
  std::string path = file.path;
  if (as_dir) {
    ::mkdir(dir.path.c_str(), 0755);
    const size_t n_train = std::min(size, split * 4);
    fuzz::write_file(dir.path + "/train.bin", data, n_train);
    fuzz::write_file(dir.path + "/val.bin", data + n_train, size - n_train);
    path = dir.path;
  } else {
    fuzz::write_file(file.path, data, size);
  }
  try {
    Corpus c = Corpus::open(path, L);
    check_span(c.train, L, true);
    check_span(c.val, L, false);
  } catch (const UserError& e) {
    fuzz::rejected(e);
    if (std::string(e.what()).find(path) == std::string::npos) fuzz::violated("error does not name the path");
  }
  if (as_dir) dynarch::io::remove_tree(dir.path);
  return 0;
}
