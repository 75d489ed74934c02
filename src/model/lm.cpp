#include "model/lm.h"

#include <torch/torch.h>

#include "core/error.h"
#include "kernels/cpu/dense/linear_rows.h"
#include "model/hmodel/hmodel.h"
#include "model/residual/residual.h"

namespace dynarch {

ByteLM::ByteLM(const ModelConfig& c) : config(c) {
  const int64_t D0 = c.d_model[0];
  embeddings = register_module("embeddings", torch::nn::Embedding(c.vocab_size, D0));
  backbone = register_module("backbone", std::make_shared<HNetStage>(c, 0, D0));
  if (c.task.classify())
    cls_head = register_module("cls_head", torch::nn::Linear(torch::nn::LinearOptions(D0, c.task.num_classes)));
  else
    lm_head = register_module("lm_head", torch::nn::Linear(torch::nn::LinearOptions(D0, c.vocab_size).bias(false)));
  init_weights();
}

namespace {
void check_lm(const ByteLM& m) {
  check(!m.lm_head.is_empty(), "this model is a classifier (task.type = classify): it has no byte predictions; "
                               "use dynarch eval --file ITEMS.jsonl");
}
}  // namespace

at::Tensor ByteLM::forward(const at::Tensor& ids, ModelState* state) {
  check_lm(*this);
  check(!config.hmodel || config.hmodel->granularity == "per_token",
        "hmodel.routing.granularity: per_sequence routing is not causal and cannot be used for language modelling "
        "(use per_token, or the classification task)");
  auto h = embeddings->forward(ids.to(device()));
  if (embeddings->weight.scalar_type() == at::kDouble) h = h.to(at::kDouble);
  h = backbone->forward(h, {}, state);
  auto logits = lm_head->forward(h);
  return logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);
}

at::Tensor ByteLM::step(const at::Tensor& ids, ModelState& state) {
  check_lm(*this);
  auto h = backbone->step(embeddings->forward(ids.to(device())), state);
  auto logits = linear_rows(h, lm_head->weight, lm_head->bias);  // GEMV for few rows (at::linear else)
  return logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);
}

at::Tensor ByteLM::classify(const at::Tensor& ids_in, const at::Tensor& lengths_in) {
  const auto ids = ids_in.to(device());
  const auto lengths = lengths_in.defined() ? lengths_in.to(device()) : lengths_in;
  check(!cls_head.is_empty(), "this model is a byte LM, not a classifier (config has no task.type = classify)");
  auto h = embeddings->forward(ids);
  if (embeddings->weight.scalar_type() == at::kDouble) h = h.to(at::kDouble);
  h = backbone->forward(h, lengths, nullptr);  // ends with RMSNorm; fp32 (fp64 in tests)
  const int64_t B = ids.size(0), L = ids.size(1);
  auto len = lengths.defined() ? lengths : at::full({B}, L, ids.options().dtype(at::kLong));
  at::Tensor pooled;
  if (config.task.pool == "last") {  // causal backbones: only the last byte has seen the whole input
    auto idx = (len.to(ids.device()) - 1).clamp_min(0).view({B, 1, 1}).expand({B, 1, h.size(2)});
    pooled = h.gather(1, idx).squeeze(1);
  } else {
    auto mask = (at::arange(L, len.options()).view({1, L}) < len.view({B, 1})).to(h.scalar_type());
    pooled = (h * mask.unsqueeze(-1)).sum(1) / len.to(h.scalar_type()).clamp_min(1).unsqueeze(-1);
  }
  auto logits = cls_head->forward(pooled);
  return logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);
}

ModelState ByteLM::new_state(int64_t batch) const {
  return backbone->new_state(batch, embeddings->weight.scalar_type());
}

void ByteLM::init_weights() {
  torch::NoGradGuard ng;
  const double sigma = 0.02;
  if (lm_head) lm_head->weight.normal_(0.0, sigma);
  if (cls_head) {
    cls_head->weight.normal_(0.0, sigma);
    cls_head->bias.zero_();
  }
  embeddings->weight.normal_(0.0, 1.0);
  backbone->init_weights(0.0);
}

std::vector<ParamInfo> ByteLM::param_infos(const std::vector<double>& lr_mults) {
  std::vector<ParamInfo> out;
  for (auto& kv : named_parameters()) {
    const std::string& n = kv.key();
    if (!kv.value().requires_grad()) continue;  // frozen (H-Model pretrained nodes): not optimised
    auto ends_with = [&](const std::string& s) {
      return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
    };
    bool is_norm = n.find("norm") != std::string::npos;  // norm1/norm2/rmsnorm/mixer.norm
    bool no_wd = ends_with(".bias") || is_norm || residual_no_decay(n);
    double mult = 1.0;
    if (!lr_mults.empty()) {
      // embeddings and the head train with stage 0's multiplier
      const std::string prefix = "backbone.";
      int s = n.rfind(prefix, 0) == 0 ? backbone->stage_of(n.substr(prefix.size())) : 0;
      mult = lr_mults.at(s);
    }
    out.push_back({n, kv.value(), mult, !no_wd});
  }
  return out;
}

int64_t ByteLM::num_parameters() {
  int64_t n = 0;
  for (auto& p : parameters()) n += p.numel();
  return n;
}

namespace {
// Forward matmul FLOPs per token of one stack at stage s with sequence length L.
double stack_flops(const ModelConfig& c, int s, const std::vector<LayerSpec>& layers, double L) {
  const auto o = stack_options(c, s);
  const double D = c.d_model[s];
  double f = 0;
  for (auto& l : layers) {
    if (l.mixer == 't') {
      const double keys = o.window >= 0 ? std::min<double>(o.window + 1, L / 2.0) : L / 2.0;
      f += 2.0 * 4.0 * D * D + 2.0 * 2.0 * D * keys;
    } else if (l.mixer == 'g') {
      f += 2.0 * 7.0 * D * D;  // 3 gates x (input + hidden) + out_proj
    } else if (l.mixer == 'm') {
      const double din = o.ssm.expand * D, N = o.ssm.d_state, H = din / o.ssm.headdim, Q = o.ssm.chunk_size;
      f += 2.0 * D * (2 * din + 2 * N + H) + 2.0 * din * D;
      f += 2.0 * (Q * N + Q * din / 2.0 + 2.0 * din * N);  // SSD: CB^T, (CB)X, states
    }
    if (l.mlp) f += 2.0 * 3.0 * D * o.d_intermediate;
  }
  return f;
}
}  // namespace

double ByteLM::flops_per_byte(int64_t L, const std::vector<double>& ratios_in) const {
  // 2 FLOPs per multiply-accumulate; attention scores/values counted (causal: L/2 keys).
  const int S = config.num_stages();
  auto ratios = ratios_in.empty() ? default_ratio_targets(S) : ratios_in;
  double f = config.task.classify() ? 0.0 : 2.0 * config.d_model[0] * config.vocab_size;  // lm_head
  double per_byte = 1.0, len = L;
  for (int s = 0; s <= S; ++s) {
    const auto& st = config.stages[s];
    if (st.innermost) {
      // H-Model: every node may run in each of the T iterations (dense), plus the heads.
      const auto& hm = config.hmodel;
      const double K = st.main.size() + 1.0;
      f += per_byte * (hm ? hm->T * stack_flops(config, s, st.main, len) + (hm->T + 1) * K * 2.0 * config.d_model[s] * K
                          : stack_flops(config, s, st.main, len));
    } else {
      const double D = config.d_model[s];
      f += per_byte * (stack_flops(config, s, st.encoder, len) + stack_flops(config, s, st.decoder, len) +
                       2.0 * 3.0 * D * D);  // routing q/k + residual_proj
      per_byte /= ratios.at(s);
      len /= ratios.at(s);
    }
  }
  return f;
}

HModel* find_hmodel(ByteLM& m) {
  HNetStage* s = m.backbone.get();
  while (s && !s->innermost) s = s->inner.get();
  return s ? dynamic_cast<HModel*>(s->main_stack.get()) : nullptr;
}

void set_hmodel_training_step(ByteLM& m, int64_t step) {
  if (auto* h = find_hmodel(m)) h->set_training_step(step);
}

}  // namespace dynarch
