#include "model/layers/packing.h"

#include <string>

#include "core/error.h"

namespace dynarch {

void check_cu_seqlens(const at::Tensor& cu, int64_t total) {
  check(cu.defined() && cu.dim() == 1 && cu.numel() >= 2,
        "cu_seqlens: expected a 1-D tensor [0, L0, L0+L1, ..., T] of at least 2 values");
  check(!at::isFloatingType(cu.scalar_type()) && cu.scalar_type() != at::kBool, "cu_seqlens: expected integers");
  auto c = cu.to(at::kCPU, at::kLong).contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  const int64_t n = c.numel();
  check(p[0] == 0, "cu_seqlens: must start at 0, got " + std::to_string(p[0]));
  for (int64_t i = 1; i < n; ++i)
    check(p[i] > p[i - 1], "cu_seqlens: must be strictly increasing, got " + std::to_string(p[i - 1]) + " then " +
                               std::to_string(p[i]) + " at index " + std::to_string(i));
  check(p[n - 1] == total, "cu_seqlens: must end at the total length " + std::to_string(total) + ", ends at " +
                               std::to_string(p[n - 1]));
}

PackedSeqs packing_from_lengths(const at::Tensor& lengths, int64_t max_len) {
  auto len = lengths.to(at::kCPU, at::kLong).contiguous();
  const int64_t B = len.numel();
  const int64_t* pl = len.data_ptr<int64_t>();
  PackedSeqs s;
  s.batch = B;
  s.max_len = max_len;
  s.offsets.push_back(0);
  std::vector<int64_t> index, rows, start;
  for (int64_t b = 0; b < B; ++b) {
    check(pl[b] >= 0 && pl[b] <= max_len, "packing: length " + std::to_string(pl[b]) + " of row " +
                                              std::to_string(b) + " outside [0, " + std::to_string(max_len) + "]");
    if (pl[b] == 0) continue;
    for (int64_t t = 0; t < pl[b]; ++t) {
      index.push_back(b * max_len + t);
      start.push_back(s.offsets.back());
    }
    rows.push_back(b);
    s.offsets.push_back(s.offsets.back() + pl[b]);
  }
  const auto dev = lengths.device();
  s.cu_seqlens = at::tensor(s.offsets, at::kLong).to(dev);
  s.index = at::tensor(index, at::kLong).to(dev);
  s.rows = at::tensor(rows, at::kLong).to(dev);
  s.seq_start = at::tensor(start, at::kLong);  // host: read by the CPU kernels and rotary
  // The device kernels' copy (Mamba2's packed conv and scan), made once per packing, not per layer.
  s.seq_start_device = dev.is_cpu() ? s.seq_start : s.seq_start.to(dev);
  return s;
}

PackedSeqs packing_from_cu_seqlens(const at::Tensor& cu, int64_t total) {
  check_cu_seqlens(cu, total);
  auto c = cu.to(at::kCPU, at::kLong).contiguous();
  const int64_t n = c.numel() - 1;
  auto lens = c.narrow(0, 1, n) - c.narrow(0, 0, n);
  return packing_from_lengths(lens.to(cu.device()), lens.max().item<int64_t>());
}

at::Tensor PackedSeqs::lengths() const {
  std::vector<int64_t> len(batch, 0);
  auto r = rows.to(at::kCPU).contiguous();
  for (int64_t i = 0; i < count(); ++i) len[r.data_ptr<int64_t>()[i]] = length(i);
  return at::tensor(len, at::kLong).to(cu_seqlens.device());
}

at::Tensor PackedSeqs::starts_on(const at::Device& d) const {
  if (seq_start_device.defined() && seq_start_device.device() == d) return seq_start_device;
  return d.is_cpu() ? seq_start : seq_start.to(d);
}

at::Tensor pack(const at::Tensor& x, const PackedSeqs& s) {
  check(x.dim() >= 2 && x.size(0) == s.batch && x.size(1) == s.max_len,
        "pack: expected (" + std::to_string(s.batch) + ", " + std::to_string(s.max_len) + ", ...) input");
  auto sizes = x.sizes().vec();
  std::vector<int64_t> flat{s.batch * s.max_len};
  flat.insert(flat.end(), sizes.begin() + 2, sizes.end());
  return x.reshape(flat).index_select(0, s.index).unsqueeze(0);
}

at::Tensor unpack(const at::Tensor& x, const PackedSeqs& s) {
  check(x.dim() >= 2 && x.size(0) == 1 && x.size(1) == s.total(),
        "unpack: expected (1, " + std::to_string(s.total()) + ", ...) input");
  auto sizes = x.sizes().vec();
  std::vector<int64_t> flat{s.batch * s.max_len};
  flat.insert(flat.end(), sizes.begin() + 2, sizes.end());
  auto out = at::zeros(flat, x.options()).index_copy(0, s.index, x.squeeze(0));
  sizes[0] = s.batch;
  sizes[1] = s.max_len;
  return out.view(sizes);
}

}  // namespace dynarch
