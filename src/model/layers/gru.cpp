#include "model/layers/gru.h"

#include <torch/torch.h>

#include "core/compat.h"

namespace dynarch {

GRUMixer::GRUMixer(int64_t d) : d_model(d) {
  gru = register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(d, d).num_layers(1).batch_first(true)));
  out_proj = register_module("out_proj", torch::nn::Linear(torch::nn::LinearOptions(d, d).bias(false)));
}

LayerCache GRUMixer::new_cache(int64_t B, at::ScalarType dtype) const {
  LayerCache c;
  auto ct = dtype == at::kDouble ? at::kDouble : at::kFloat;
  c.h = at::zeros({B, d_model}, out_proj->weight.options().dtype(ct));
  return c;
}

at::Tensor GRUMixer::forward(const at::Tensor& x, LayerCache* cache, int64_t, const at::Tensor& lengths) {
  // The recurrence runs in the parameters' dtype (fp32; fp64 in tests), outside autocast.
  auto wt = gru->all_weights()[0].scalar_type();
  at::Tensor y, hn;
  {
    compat::AutocastScope off(false);
    auto h0 = cache && cache->h.defined() ? cache->h.to(wt).unsqueeze(0) : at::zeros({1, x.size(0), d_model}, x.options().dtype(wt));
    std::tie(y, hn) = gru->forward(x.to(wt), h0);
  }
  if (cache) {
    // State after each row's last valid token (output t of a 1-layer GRU = hidden t).
    if (lengths.defined()) {
      auto idx = (lengths - 1).clamp_min(0).view({-1, 1, 1}).expand({x.size(0), 1, d_model});
      auto last = y.gather(1, idx).squeeze(1);
      cache->h = at::where((lengths > 0).view({-1, 1}), last, cache->h.to(wt)).detach();
    } else {
      cache->h = hn.squeeze(0).detach();
    }
  }
  return out_proj->forward(y);
}

at::Tensor GRUMixer::step(const at::Tensor& x, LayerCache& cache, const std::vector<int64_t>&) {
  auto wt = gru->all_weights()[0].scalar_type();
  at::Tensor y, hn;
  {
    compat::AutocastScope off(false);
    std::tie(y, hn) = gru->forward(x.to(wt).unsqueeze(1), cache.h.to(wt).unsqueeze(0));
  }
  cache.h = hn.squeeze(0).detach();
  return out_proj->forward(y.squeeze(1));
}

}  // namespace dynarch
