#include "model/mlp.h"

#include <torch/torch.h>

namespace dynarch {

SwiGLU::SwiGLU(int64_t d_model, int64_t d_int) {
  fc1 = register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(d_model, 2 * d_int).bias(false)));
  fc2 = register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(d_int, d_model).bias(false)));
}

at::Tensor SwiGLU::forward(const at::Tensor& x) {
  auto h = fc1->forward(x);
  auto vg = h.chunk(2, -1);
  return fc2->forward(vg[0] * at::silu(vg[1]));
}

}  // namespace dynarch
