#include "model/layers/mlp.h"

#include <torch/torch.h>

#include "kernels/cpu/dense/linear_rows.h"
#include "kernels/cpu/dense/norm_act.h"

namespace dynarch {

SwiGLU::SwiGLU(int64_t d_model, int64_t d_int) {
  fc1 = register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(d_model, 2 * d_int).bias(false)));
  fc2 = register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(d_int, d_model).bias(false)));
}

at::Tensor SwiGLU::forward(const at::Tensor& x) {
  // linear_rows: a GEMV for decode steps (few rows, no autograd), else at::linear.
  return linear_rows(swiglu_fused(linear_rows(x, fc1->weight)), fc2->weight);
}

}  // namespace dynarch
