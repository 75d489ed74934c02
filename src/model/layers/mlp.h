// SwiGLU MLP: [v | g] = fc1(x) (value first, gate second), out = fc2(v * silu(g)).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

namespace dynarch {

class SwiGLU : public torch::nn::Module {
 public:
  SwiGLU(int64_t d_model, int64_t d_int);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

}  // namespace dynarch
