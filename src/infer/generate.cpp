#include "infer/generate.h"

#include <torch/torch.h>

#include "core/compat.h"
#include "core/error.h"

namespace dynarch {

int64_t Sampler::sample(const at::Tensor& logits_in) {
  auto logits = logits_in.to(at::kCPU, at::kDouble).contiguous();  // sampled on the host, any device
  const int64_t V = logits.size(0);
  if (o_.temperature <= 0) return logits.argmax().item<int64_t>();
  auto probs = at::softmax(logits / o_.temperature, 0);
  std::vector<std::pair<double, int64_t>> p(V);
  auto* pp = probs.data_ptr<double>();
  for (int64_t i = 0; i < V; ++i) p[i] = {pp[i], i};
  std::sort(p.begin(), p.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  int64_t keep = V;
  if (o_.top_k > 0) keep = std::min<int64_t>(keep, o_.top_k);
  if (o_.top_p < 1.0) {
    double cum = 0;
    for (int64_t i = 0; i < keep; ++i) {
      cum += p[i].first;
      if (cum >= o_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  double total = 0;
  for (int64_t i = 0; i < keep; ++i) total += p[i].first;
  double u = std::uniform_real_distribution<double>(0.0, total)(rng_);
  for (int64_t i = 0; i < keep; ++i) {
    u -= p[i].first;
    if (u <= 0) return p[i].second;
  }
  return p[keep - 1].second;
}

void Utf8Streamer::push(uint8_t b) {
  static const std::string kBad = "\xEF\xBF\xBD";
  if (need_ > 0) {
    if ((b & 0xC0) == 0x80) {
      pending_ += (char)b;
      if (--need_ == 0) {
        sink_(pending_);
        pending_.clear();
      }
      return;
    }
    sink_(kBad);  // truncated sequence
    pending_.clear();
    need_ = 0;
  }
  if (b < 0x80) sink_(std::string(1, (char)b));
  else if ((b & 0xE0) == 0xC0 && b >= 0xC2) { pending_ = (char)b; need_ = 1; }
  else if ((b & 0xF0) == 0xE0) { pending_ = (char)b; need_ = 2; }
  else if ((b & 0xF8) == 0xF0 && b <= 0xF4) { pending_ = (char)b; need_ = 3; }
  else sink_(kBad);
}

void Utf8Streamer::flush() {
  if (need_ > 0) sink_("\xEF\xBF\xBD");
  pending_.clear();
  need_ = 0;
}

std::string generate(ByteLM& model, const std::string& prompt, int64_t n, const SampleOptions& o, bool bf16,
                     const std::function<void(uint8_t)>& on_byte) {
  check(n >= 0, "number of bytes to generate must be >= 0");
  torch::NoGradGuard ng;
  compat::AutocastScope ac(bf16);
  model.eval();
  Sampler sampler(o);
  auto state = model.new_state(1);
  std::vector<int64_t> ids{kBOS};
  for (unsigned char c : prompt) ids.push_back(c);
  auto logits = model.forward(at::tensor(ids, at::kLong).view({1, -1}), &state).select(1, -1)[0];
  std::string out;
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = sampler.sample(logits);
    if (t == kEOS) break;
    out += (char)t;
    if (on_byte) on_byte((uint8_t)t);
    if (i + 1 < n) logits = model.step(at::tensor({t}, at::kLong), state)[0];
  }
  return out;
}

std::vector<std::string> generate_batch(ByteLM& model, const std::string& prompt, int64_t n, int64_t samples,
                                        const SampleOptions& o, bool bf16) {
  check(n >= 0 && samples >= 1, "generate: need bytes >= 0 and samples >= 1");
  torch::NoGradGuard ng;
  compat::AutocastScope ac(bf16);
  model.eval();
  std::vector<Sampler> samplers;
  for (int64_t r = 0; r < samples; ++r) {
    SampleOptions so = o;
    so.seed = o.seed + (uint64_t)r;  // row r samples like a single run with seed + r
    samplers.emplace_back(so);
  }
  auto state = model.new_state(samples);
  std::vector<int64_t> ids{kBOS};
  for (unsigned char c : prompt) ids.push_back(c);
  auto idt = at::tensor(ids, at::kLong).view({1, -1}).expand({samples, (int64_t)ids.size()}).contiguous();
  auto logits = model.forward(idt, &state).select(1, -1);
  std::vector<std::string> out(samples);
  std::vector<bool> done(samples, false);
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> next(samples);
    bool all_done = true;
    for (int64_t r = 0; r < samples; ++r) {
      next[r] = done[r] ? kEOS : samplers[r].sample(logits[r]);
      if (next[r] == kEOS) done[r] = true;
      else out[r] += (char)next[r];
      all_done = all_done && done[r];
    }
    if (all_done || i + 1 == n) break;
    logits = model.step(at::tensor(next, at::kLong), state);  // finished rows keep stepping on EOS, ignored
  }
  return out;
}

}  // namespace dynarch
