// Mamba-2 layer exactly as hnet.md §11: in_proj split [z | xBC | dt], causal
// depthwise conv over xBC, SSD recurrence with D skip, gated RMSNorm, out_proj.
#pragma once
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "kernels/cpu/mamba/ssd_chunked.h"  // SsdResult, ssd_sequential, ssd_chunked
#include "model/layers/mixer.h"
#include "model/layers/norm.h"

namespace dynarch {

class Mamba2 : public Mixer {
 public:
  Mamba2(int64_t d_model, int64_t d_state, int64_t d_conv, int64_t expand, int64_t headdim,
         int64_t chunk_size);
  // Training/prefill: in_proj, the fused core (kernels/cpu/mamba/mamba_core.h),
  // out_proj; forward_reference in KernelMode::reference (core/forward_context.h).
  at::Tensor forward(const at::Tensor& x, LayerCache* cache, int64_t pos0, const at::Tensor& lengths = {}) override;
  // Op-by-op form (conv1d, sequential SSD scan, gated norm): the reference of the fused core.
  at::Tensor forward_reference(const at::Tensor& x, LayerCache* cache, int64_t pos0, const at::Tensor& lengths = {});
  // The same ops with the conv and the scan as device ops (causal_conv1d_silu,
  // ssd_chunk_scan: CUDA kernels on CUDA, their tensor-op forms elsewhere): what
  // forward runs off the CPU in fast mode (no sequential loop over positions).
  at::Tensor forward_chunked(const at::Tensor& x, LayerCache* cache, int64_t pos0, const at::Tensor& lengths = {});
  // Packed: on the CPU the fused core with the conv and the scan state reset
  // at each sequence start; off the CPU forward_packed_chunked; in reference
  // mode the padded default.
  at::Tensor forward_packed(const at::Tensor& x, const PackedSeqs& seqs) override;
  // forward_chunked on the packed row (1, T, D): the device ops with the
  // sequence starts (conv taps and scan state reset at each start), no cache.
  at::Tensor forward_packed_chunked(const at::Tensor& x, const PackedSeqs& seqs);
  // Decode step: GEMV in_proj, fused conv + SSM + gated norm (kernels/cpu/mamba/
  // mamba_step.h; on CUDA its hook's kernel), GEMV out_proj; step_reference (reference
  // mode, and devices without a step kernel) is the op-by-op form.
  at::Tensor step(const at::Tensor& x, LayerCache& cache, const std::vector<int64_t>& pos) override;
  at::Tensor step_reference(const at::Tensor& x, LayerCache& cache);
  // fp32 decode of a plain-residual block in one call (mamba_block_step).
  at::Tensor fused_residual_step(const at::Tensor& r, const at::Tensor& norm_w, double norm_eps, LayerCache& cache,
                                 const std::vector<int64_t>& pos) override;
  LayerCache new_cache(int64_t batch, at::ScalarType dtype) const override;
  // Mamba-2's own init for dt_bias, A_log, D (hnet.md §11.4).
  void reset_ssm_parameters();

  torch::nn::Linear in_proj{nullptr}, out_proj{nullptr};
  torch::nn::Conv1d conv1d{nullptr};
  at::Tensor dt_bias, A_log, D;
  std::shared_ptr<RMSNorm> norm;
  int64_t d_model, d_state, d_conv, d_inner, headdim, nheads, conv_dim, chunk_size;

 private:
  at::Tensor forward_ops(const at::Tensor& x, LayerCache* cache, int64_t pos0, const at::Tensor& lengths,
                         bool device_ops, const at::Tensor& seq_start = {});
};

}  // namespace dynarch
