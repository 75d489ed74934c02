#include "model/lm.h"

#include <torch/torch.h>

#include "core/error.h"

namespace dynarch {

Backbone::Backbone(const ModelConfig& c, int stage) {
  const auto& st = c.stages.at(stage);
  if (!st.innermost)
    fail("arch_layout: multi-stage H-Net layouts are not supported by this build yet "
         "(use a single innermost stage such as [\"T4\"])");
  main_network = register_module("main_network", std::make_shared<Isotropic>(st.main, stack_options(c, stage)));
}

at::Tensor Backbone::forward(const at::Tensor& x, ModelState* st) {
  return main_network->forward(x, st ? &st->main : nullptr);
}

at::Tensor Backbone::step(const at::Tensor& x, ModelState& st) { return main_network->step(x, st.main); }

ByteLM::ByteLM(const ModelConfig& c) : config(c) {
  const int64_t D0 = c.d_model[0];
  embeddings = register_module("embeddings", torch::nn::Embedding(c.vocab_size, D0));
  backbone = register_module("backbone", std::make_shared<Backbone>(c, 0));
  lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(D0, c.vocab_size).bias(false)));
  init_weights();
}

at::Tensor ByteLM::forward(const at::Tensor& ids, ModelState* state) {
  auto h = embeddings->forward(ids);
  if (embeddings->weight.scalar_type() == at::kDouble) h = h.to(at::kDouble);
  h = backbone->forward(h, state);
  auto logits = lm_head->forward(h);
  return logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);
}

at::Tensor ByteLM::step(const at::Tensor& ids, ModelState& state) {
  auto h = backbone->step(embeddings->forward(ids), state);
  auto logits = lm_head->forward(h);
  return logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);
}

ModelState ByteLM::new_state(int64_t batch) const {
  ModelState s;
  s.main = backbone->main_network->new_state(batch, embeddings->weight.scalar_type());
  return s;
}

void ByteLM::init_weights() {
  torch::NoGradGuard ng;
  const double sigma = 0.02;
  lm_head->weight.normal_(0.0, sigma);
  embeddings->weight.normal_(0.0, 1.0);
  // n_res for a 0-stage model = height of the main layout (hnet.md §8).
  const double n_res = layout_height(config.stages[0].main);
  for (auto& kv : backbone->named_parameters()) {
    const std::string& name = kv.key();
    auto& p = kv.value();
    if (p.dim() != 2 || name.find("conv1d") != std::string::npos) continue;  // Linear weights only
    bool out = name.find("out_proj") != std::string::npos || name.find("fc2") != std::string::npos;
    p.normal_(0.0, out ? sigma / std::sqrt(n_res) : sigma);
  }
}

std::vector<ParamInfo> ByteLM::param_infos() {
  std::vector<ParamInfo> out;
  for (auto& kv : named_parameters()) {
    const std::string& n = kv.key();
    auto ends_with = [&](const std::string& s) {
      return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
    };
    bool is_norm = n.find("norm") != std::string::npos;  // norm1/norm2/rmsnorm/mixer.norm
    bool no_wd = ends_with(".bias") || is_norm;
    out.push_back({n, kv.value(), 1.0, !no_wd});
  }
  return out;
}

int64_t ByteLM::num_parameters() {
  int64_t n = 0;
  for (auto& p : parameters()) n += p.numel();
  return n;
}

double ByteLM::flops_per_byte(int64_t L) const {
  // Count 2 FLOPs per multiply-accumulate of every matmul-shaped parameter,
  // plus attention scores/values (causal: half of L per token on average).
  double f = 2.0 * config.d_model[0] * config.vocab_size;  // lm_head
  const auto& st = config.stages[0];
  const double D = config.d_model[0];
  const auto o = stack_options(config, 0);
  for (auto& l : st.main) {
    if (l.mixer == 't') {
      f += 2.0 * (4.0 * D * D);
      f += 2.0 * 2.0 * D * (L / 2.0);
    } else {
      const double din = o.ssm.expand * D, N = o.ssm.d_state, H = din / o.ssm.headdim;
      f += 2.0 * D * (2 * din + 2 * N + H) + 2.0 * din * D;
      // SSD: C.B^T, (CB).X and state terms, per token ~ 2*(Q*N + Q*din + 2*din*N).
      const double Q = o.ssm.chunk_size;
      f += 2.0 * (Q * N + Q * din / 2.0 + 2.0 * din * N);
    }
    if (l.mlp) f += 2.0 * 3.0 * D * o.d_intermediate;
  }
  return f;
}

}  // namespace dynarch
