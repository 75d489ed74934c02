#include "train/parallel.h"

#include <torch/torch.h>

#include <cstdio>
#include <functional>
#include <map>

#include "core/error.h"

namespace dynarch {

std::unique_ptr<DataParallel> DataParallel::from_environment() {
  auto env = dist::Env::from_process_environment();
  if (!env.from_environment) return nullptr;
  return std::make_unique<DataParallel>(env);
}

DataParallel::DataParallel(const dist::Env& env) : group_(env) {}

void DataParallel::check_same(const std::string& what, const std::string& text) {
  const int64_t h = (int64_t)(std::hash<std::string>{}(text) >> 1);
  auto all = group_.all_gather(h);
  for (int r = 1; r < world(); ++r)
    check(all[r] == all[0], "rank " + std::to_string(r) + " runs another " + what + " than rank 0 (every rank " +
                                "must be started with the same command)");
}

void DataParallel::start(ByteLM& model, AdamW& opt, bool zero) {
  torch::NoGradGuard ng;
  std::vector<dist::Pending> pending;
  std::vector<at::Tensor> params;
  for (auto& p : model.parameters()) {
    params.push_back(p);
    pending.push_back(group_.broadcast_async(p, 0));
  }
  for (auto& w : pending) w.wait();
  reducer_ = std::make_unique<dist::GradReducer>(group_, params);
  opt_ = &opt;
  zero_ = zero;
  if (zero) opt.shard(rank(), world());
  // One line for the run: what each rank keeps of the optimizer state.
  auto held = group_.all_gather(opt.state_numel());
  if (rank() == 0) {
    std::string per;
    for (auto n : held) per += (per.empty() ? "" : " / ") + std::to_string(n);
    std::fprintf(stderr, "data-parallel: %d ranks, ZeRO-1 %s, optimizer state values per rank: %s\n", world(),
                 zero ? "on" : "off", per.c_str());
  }
}

void DataParallel::after_step() {
  if (!zero_) return;
  torch::NoGradGuard ng;
  const auto& ps = opt_->params();
  std::vector<dist::Pending> pending;
  for (size_t i = 0; i < ps.size(); ++i) {
    auto p = ps[i].param;
    pending.push_back(group_.broadcast_async(p, opt_->owner(i)));
  }
  for (auto& w : pending) w.wait();
}

std::vector<std::pair<std::string, at::Tensor>> DataParallel::gather_state() {
  if (!zero_) return rank() == 0 ? opt_->state_tensors() : std::vector<std::pair<std::string, at::Tensor>>{};
  // Owners send their moments to rank 0 in parameter order; rank 0 keeps its own.
  std::map<std::string, at::Tensor> own;
  for (auto& [k, v] : opt_->state_tensors()) own[k] = v;
  std::vector<std::pair<std::string, at::Tensor>> out;
  const auto& ps = opt_->params();
  for (size_t i = 0; i < ps.size(); ++i) {
    const int o = opt_->owner(i);
    for (const char* prefix : {"exp_avg.", "exp_avg_sq."}) {
      const std::string key = prefix + ps[i].name;
      if (o == 0) {
        if (rank() == 0) out.emplace_back(key, own.at(key));
      } else if (rank() == o) {
        group_.send(own.at(key), 0);
      } else if (rank() == 0) {
        auto t = at::empty_like(ps[i].param, at::MemoryFormat::Contiguous).detach();
        group_.recv(t, o);
        out.emplace_back(key, t);
      }
    }
  }
  return out;
}

}  // namespace dynarch
