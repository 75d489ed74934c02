// Bits-per-byte evaluation and per-byte negative log-likelihood.
#pragma once
#include "data/corpus.h"
#include "model/lm.h"

namespace dynarch {

struct EvalResult {
  double nats = 0;
  int64_t bytes = 0;
  double bpb() const { return bytes ? nats / bytes / std::log(2.0) : 0.0; }
};

// Mean NLL over windows of L bytes at `offsets`, each predicted after a BOS.
EvalResult evaluate(ByteLM& model, const ByteSpan& span, const std::vector<int64_t>& offsets, int64_t L,
                    int64_t batch, bool bf16, bool progress = false);
// Offsets 0, L, 2L, ... covering the whole span (the last window may be short).
std::vector<int64_t> tiling_offsets(int64_t size, int64_t L);
// n windows of length L spread evenly over the span (fixed validation set).
std::vector<int64_t> spread_offsets(int64_t size, int64_t L, int64_t n);

// Per-byte NLL in nats (float32, one per input byte) of the whole input as one
// sequence after a single BOS; processed in segments that carry the model
// state, so the result equals one full forward pass.
at::Tensor per_byte_nll(ByteLM& model, const uint8_t* data, int64_t n, int64_t segment, bool bf16,
                        bool progress = false);

// Token-mean cross-entropy (nats) of logits (B, L, V) against targets (B, L); -1 is ignored.
at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& targets);

}  // namespace dynarch
