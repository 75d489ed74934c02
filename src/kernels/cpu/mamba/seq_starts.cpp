#include "kernels/cpu/mamba/seq_starts.h"

#include <string>

#include "core/error.h"

namespace dynarch {

at::Tensor seq_start_rows(const char* op, const at::Tensor& st, int64_t B, int64_t L, const at::Device& device) {
  const std::string pre = std::string(op) + ": seq_start ";
  check(st.scalar_type() == at::kLong, pre + "must be int64, got " + c10::toString(st.scalar_type()));
  check((st.dim() == 1 && st.size(0) == L) || (st.dim() == 2 && st.size(0) == B && st.size(1) == L),
        pre + "must have shape (" + std::to_string(L) + ") or (" + std::to_string(B) + ", " + std::to_string(L) +
            "), got " + c10::str(st.sizes()));
  check(st.device() == device, pre + "is on " + st.device().str() + ", expected " + device.str());
  auto rows = st.dim() == 1 ? st.unsqueeze(0).expand({B, L}) : st;
  if (st.is_cpu() && L > 0) {  // cheap here; a device tensor would have to be read back
    auto c = st.dim() == 1 ? st.unsqueeze(0).contiguous() : st.contiguous();
    const int64_t* p = c.data_ptr<int64_t>();
    for (int64_t b = 0; b < c.size(0); ++b, p += L) {
      check(p[0] == 0, pre + "must be 0 at position 0, got " + std::to_string(p[0]) + " in row " + std::to_string(b));
      for (int64_t t = 1; t < L; ++t)
        check(p[t] == t || p[t] == p[t - 1], pre + "at position " + std::to_string(t) + " of row " +
                                                 std::to_string(b) + " must be " + std::to_string(t) + " or " +
                                                 std::to_string(p[t - 1]) + ", got " + std::to_string(p[t]));
    }
  }
  return rows;
}

}  // namespace dynarch
