#include "data/corpus.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/bytes.h"

namespace dynarch {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open data file " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("data file " + path + " is not a regular file");
  }
  size_ = st.st_size;
  if (size_ == 0) {
    ::close(fd);
    fail("data file " + path + " is empty");
  }
  void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) fail("cannot memory-map data file " + path + ": " + std::strerror(errno));
  data_ = static_cast<const uint8_t*>(p);
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

Corpus Corpus::open(const std::string& path, int64_t min_bytes) {
  namespace fs = std::filesystem;
  Corpus c;
  if (fs::is_directory(path)) {
    auto tr = (fs::path(path) / "train.bin").string(), va = (fs::path(path) / "val.bin").string();
    if (!fs::exists(tr)) fail("corpus directory " + path + " has no train.bin (build it with scripts/make_corpora.sh)");
    if (!fs::exists(va)) fail("corpus directory " + path + " has no val.bin");
    auto ft = std::make_shared<MappedFile>(tr), fv = std::make_shared<MappedFile>(va);
    c.train = {ft, 0, ft->size(), tr};
    c.val = {fv, 0, fv->size(), va};
  } else {
    if (!fs::exists(path)) fail("data path " + path + " does not exist");
    auto f = std::make_shared<MappedFile>(path);
    int64_t nval = std::max<int64_t>(f->size() / 50, min_bytes);
    if (f->size() < nval + min_bytes)
      fail("data file " + path + " has " + std::to_string(f->size()) + " bytes; need at least " +
           std::to_string(nval + min_bytes) + " for a train/validation split at this context length");
    c.train = {f, 0, f->size() - nval, path + " [train part]"};
    c.val = {f, f->size() - nval, nval, path + " [validation part: last 2%]"};
  }
  if (c.train.size < min_bytes)
    fail("training data " + c.train.name + " has " + std::to_string(c.train.size) +
         " bytes, fewer than one window of " + std::to_string(min_bytes));
  return c;
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

Batch windows_at(const ByteSpan& span, const std::vector<int64_t>& offsets, int64_t L) {
  const int64_t B = offsets.size();
  auto in = at::empty({B, L}, at::kLong), tg = at::empty({B, L}, at::kLong);
  auto* pi = in.data_ptr<int64_t>();
  auto* pt = tg.data_ptr<int64_t>();
  const uint8_t* d = span.data();
  for (int64_t b = 0; b < B; ++b) {
    int64_t o = offsets[b], n = std::min(L, span.size - o);
    pi[b * L] = kBOS;
    for (int64_t t = 0; t < L; ++t) {
      pt[b * L + t] = t < n ? d[o + t] : -1;
      if (t + 1 < L) pi[b * L + t + 1] = t < n ? d[o + t] : 0;
    }
  }
  return {in, tg};
}

Batch sample_batch(const ByteSpan& span, uint64_t seed, int64_t step, int64_t micro, int64_t row0, int64_t B,
                   int64_t L) {
  const int64_t range = span.size - L + 1;
  std::vector<int64_t> offs(B);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t row = row0 + b;
    uint64_t h = splitmix64(seed ^ splitmix64((uint64_t)step * 0x100000001b3ULL ^ splitmix64(micro * 131 + row)));
    offs[b] = (int64_t)(h % (uint64_t)range);
  }
  return windows_at(span, offs, L);
}

std::vector<int64_t> tiling_offsets(int64_t size, int64_t L) {
  std::vector<int64_t> o;
  for (int64_t s = 0; s < size; s += L) o.push_back(s);
  return o;
}

std::vector<int64_t> spread_offsets(int64_t size, int64_t L, int64_t n) {
  if (size <= L || n <= 1) return {0};
  std::vector<int64_t> o;
  const int64_t range = size - L;
  n = std::min(n, range + 1);
  for (int64_t i = 0; i < n; ++i) o.push_back(range * i / (n - 1));
  return o;
}

}  // namespace dynarch
