// Per-position sequence starts of packed rows (model/layers/packing.h): the
// optional `seq_start` argument of the device-op forms of Mamba-2's conv and
// scan (causal_conv1d_silu, ssd_sequential, ssd_chunked, ssd_chunk_scan).
// seq_start[b, t] is the first position of the sequence that position t of
// row b belongs to: 0 at t = 0, and at each t either t (a new sequence) or
// seq_start[b, t - 1]. Undefined: one sequence per row (no resets).
#pragma once
#include <ATen/ATen.h>

namespace dynarch {

// Checks seq_start for an op over rows (B, L) on `device`: int64, shape (L)
// (the same starts for every row) or (B, L), on that device; for CPU tensors
// also the values (device tensors are not read back: that would sync). Errors
// name the op and "seq_start". Returns the starts as (B, L).
at::Tensor seq_start_rows(const char* op, const at::Tensor& seq_start, int64_t B, int64_t L,
                          const at::Device& device);

}  // namespace dynarch
