#include "infer/evaluate.h"

#include <torch/torch.h>

#include "core/compat.h"
#include "core/progress.h"

namespace dynarch {

at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& targets) {
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}).to(at::kFloat), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1));
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

EvalResult evaluate(ByteLM& model, const ByteSpan& span, const std::vector<int64_t>& offsets, int64_t L,
                    int64_t batch, bool bf16, bool progress) {
  torch::NoGradGuard ng;
  compat::AutocastScope ac(bf16);
  EvalResult r;
  Progress bar("eval", offsets.size(), progress);
  for (size_t i = 0; i < offsets.size(); i += batch) {
    std::vector<int64_t> chunk(offsets.begin() + i, offsets.begin() + std::min(offsets.size(), i + batch));
    auto b = windows_at(span, chunk, L);
    auto logits = model.forward(b.inputs);
    auto nll = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}), b.targets.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1).reduction(torch::kSum));
    r.nats += nll.item<double>();
    r.bytes += b.targets.ge(0).sum().item<int64_t>();
    bar.update(i + chunk.size(), "bpb " + std::to_string(r.bpb()));
  }
  bar.finish("bpb " + std::to_string(r.bpb()));
  return r;
}

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
    out.narrow(0, s, len).copy_(-logp.gather(-1, tg.unsqueeze(-1)).view({len}));
    bar.update(s + len, "");
  }
  bar.finish("");
  return out;
}

}  // namespace dynarch
