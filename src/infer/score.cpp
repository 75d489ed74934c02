#include "infer/score.h"

#include <torch/torch.h>

#include "core/bytes.h"
#include "core/compat.h"
#include "core/error.h"
#include "core/progress.h"

namespace dynarch {

at::Tensor per_byte_nll(ByteLM& model, const uint8_t* data, int64_t n, int64_t segment, bool bf16,
                        bool progress) {
  torch::NoGradGuard ng;
  compat::AutocastScope ac(bf16);
  auto out = at::empty({n}, at::kFloat);
  auto state = model.new_state(1);
  Progress bar("score", n, progress);
  for (int64_t s = 0; s < n; s += segment) {
    const int64_t len = std::min(segment, n - s);
    auto ids = at::empty({1, len}, at::kLong), tg = at::empty({1, len}, at::kLong);
    for (int64_t t = 0; t < len; ++t) {
      ids[0][t] = s + t == 0 ? kBOS : (int64_t)data[s + t - 1];
      tg[0][t] = (int64_t)data[s + t];
    }
    auto logp = at::log_softmax(model.forward(ids, &state).to(at::kFloat), -1);
    out.narrow(0, s, len).copy_(-logp.gather(-1, tg.to(logp.device()).unsqueeze(-1)).view({len}));
    bar.update(s + len, "");
  }
  bar.finish("");
  auto bad = out.isfinite().logical_not().nonzero();
  if (bad.numel() > 0) {
    const int64_t i = bad[0][0].item<int64_t>();
    check_finite(out[i].item<double>(), "the NLL of byte " + std::to_string(i));
  }
  return out;
}

}  // namespace dynarch
