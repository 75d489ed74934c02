// `dynarch score`: the per-byte negative log-likelihood of a whole input.
#pragma once
#include "model/lm.h"

namespace dynarch {

// Per-byte NLL in nats (float32, one per input byte) of the whole input as one
// sequence after a single BOS; processed in segments that carry the model
// state, so the result equals one full forward pass.
at::Tensor per_byte_nll(ByteLM& model, const uint8_t* data, int64_t n, int64_t segment, bool bf16,
                        bool progress = false);

}  // namespace dynarch
