#include "kernels/cpu/mamba/ssd_chunked.h"

#include <limits>
#include <vector>

#include "core/forward_context.h"
#include "kernels/cpu/gemm/bmm.h"
#include "kernels/cpu/mamba/seq_starts.h"

#if DYNARCH_CUDA
#include "kernels/cuda/mamba/ssd_scan_cuda.h"
#endif

namespace dynarch {

namespace {
// segsum: out[..., i, j] = sum_{k=j+1..i} a_k for j <= i, -inf above the
// diagonal (so exp gives the within-chunk decay matrix).
at::Tensor segsum(const at::Tensor& a) {
  // As the official SSD kernels: differences of the in-chunk cumulative sum,
  // masked to -inf above the diagonal before exp (arguments are <= 0 below it,
  // so nothing overflows; fp32 error ~ eps * |cum| in the exponent).
  const int64_t T = a.size(-1);
  auto cs = a.cumsum(-1);
  auto d = cs.unsqueeze(-1) - cs.unsqueeze(-2);  // [..., i, j] = cum_i - cum_j
  auto upper = at::ones({T, T}, at::TensorOptions().dtype(at::kBool).device(a.device())).triu(1);
  return d.masked_fill(upper, -std::numeric_limits<double>::infinity());
}

// The masks of packed rows in the chunked form (B rows, nc chunks of Q), as
// 0/1 in `dtype`. Masks, not -inf in the log-decays: cumsum differences across
// a reset would lose precision. With `first` = max(chunk's first position, 1):
//   intra     (B,c,Q,Q) [i, j]: j >= start_i (j in i's sequence)
//   takes_in  (B,c,Q): the state entering the chunk reaches i: start_i < first
//             (i in the sequence of position first - 1; for chunk 0 the
//             init's, the first sequence)
//   to_state  (B,c,Q): j enters the chunk's final state: j >= start_last
//   carries   (B,c): the entering state reaches the final one: start_last < first
struct ResetMasks {
  at::Tensor intra, takes_in, to_state, carries;
};

ResetMasks reset_masks(const at::Tensor& st, int64_t nc, int64_t Q, at::ScalarType dtype) {
  const int64_t B = st.size(0);
  auto pos = at::arange(nc * Q, st.options()).view({1, nc, Q});
  auto stc = st.reshape({B, nc, Q});
  auto first = pos.select(2, 0).clamp_min(1).unsqueeze(2);  // (1, c, 1)
  auto last = stc.narrow(2, Q - 1, 1);                      // (B, c, 1): start of the chunk's last position
  return {(pos.unsqueeze(2) >= stc.unsqueeze(3)).to(dtype), (stc < first).to(dtype), (pos >= last).to(dtype),
          (last < first).squeeze(2).to(dtype)};
}
}  // namespace

SsdResult ssd_sequential(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a,
                         const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& init,
                         const at::Tensor& seq_start) {
  const int64_t B = x.size(0), L = x.size(1), H = x.size(2), P = x.size(3), N = Bm.size(2);
  auto S = init.defined() ? init : at::zeros({B, H, P, N}, x.options());
  at::Tensor keep;  // (B, L) 0 where a sequence starts after position 0: the state resets there
  if (seq_start.defined()) {
    auto st = seq_start_rows("ssd_sequential", seq_start, B, L, x.device());
    auto pos = at::arange(L, st.options()).view({1, L});
    keep = ((st < pos) | (pos == 0)).to(S.scalar_type());
  }
  std::vector<at::Tensor> ys;
  for (int64_t t = 0; t < L; ++t) {
    if (keep.defined()) S = S * keep.select(1, t).view({B, 1, 1, 1});
    auto dtt = dt.select(1, t);                                      // (B, H)
    auto decay = at::exp(dtt * a).view({B, H, 1, 1});
    auto xb = (dtt.unsqueeze(-1) * x.select(1, t)).unsqueeze(-1) *  // (B,H,P,1)
              Bm.select(1, t).view({B, 1, 1, N});
    S = decay * S + xb;
    ys.push_back(at::matmul(S, Cm.select(1, t).view({B, 1, N, 1})).squeeze(-1));  // (B,H,P)
  }
  return {at::stack(ys, 1), S};
}

SsdResult ssd_chunked(const at::Tensor& x_in, const at::Tensor& dt_in, const at::Tensor& a,
                      const at::Tensor& B_in, const at::Tensor& C_in, int64_t Q,
                      const at::Tensor& init, const at::Tensor& seq_start) {
  const int64_t B = x_in.size(0), L = x_in.size(1), H = x_in.size(2), P = x_in.size(3);
  const int64_t N = B_in.size(2);
  Q = std::min<int64_t>(Q, std::max<int64_t>(L, 1));
  const int64_t nc = (L + Q - 1) / Q, Lp = nc * Q, pad = Lp - L;
  // Zero padding at the end: dt = 0 there, so padded steps neither decay nor add.
  auto padL = [&](const at::Tensor& t) {
    if (pad == 0) return t;
    auto s = t.sizes().vec();
    s[1] = pad;
    return at::cat({t, at::zeros(s, t.options())}, 1);
  };
  auto x = padL(x_in), dt = padL(dt_in), Bm = padL(B_in), Cm = padL(C_in);
  auto xc = x.view({B, nc, Q, H, P}).permute({0, 3, 1, 2, 4});     // (B,H,c,Q,P)
  auto dtc = dt.view({B, nc, Q, H}).permute({0, 3, 1, 2});         // (B,H,c,Q)
  auto Bc = Bm.view({B, nc, Q, N});                                // (B,c,Q,N)
  auto Cc = Cm.view({B, nc, Q, N});
  auto dA = dtc * a.view({1, H, 1, 1});                            // (B,H,c,Q)
  auto cum = dA.cumsum(-1);
  auto Xb = xc * dtc.unsqueeze(-1);                                // dt-scaled inputs
  ResetMasks m;
  if (seq_start.defined()) {
    auto st = seq_start_rows("ssd_chunked", seq_start, B, L, x_in.device());
    if (pad) st = at::cat({st, st.narrow(1, L - 1, 1).expand({B, pad})}, 1);  // padded steps: the last sequence's
    m = reset_masks(st, nc, Q, Xb.scalar_type());
  }

  // 1. Intra-chunk (diagonal blocks): Y = (C B^T o exp(segsum)) Xb.
  auto Lmat = at::exp(segsum(dA));                                 // (B,H,c,Q,Q)
  if (m.intra.defined()) Lmat = Lmat * m.intra.unsqueeze(1);
  auto CB = bmm_small(Cc, Bc.transpose(-1, -2)).unsqueeze(1);     // (B,1,c,Q,Q)
  auto Y = bmm_small(CB * Lmat, Xb);                              // (B,H,c,Q,P)

  // 2. Per-chunk final states: S_blk = sum_j exp(cum_last - cum_j) Xb_j (x) B_j.
  auto decay_states = at::exp(cum.narrow(-1, Q - 1, 1) - cum);     // (B,H,c,Q)
  if (m.to_state.defined()) decay_states = decay_states * m.to_state.unsqueeze(1);
  auto Sblk = bmm_small((Xb * decay_states.unsqueeze(-1)).transpose(-1, -2),
                         Bc.unsqueeze(1));                         // (B,H,c,P,N)

  // 3. Inter-chunk recurrence (short sequential loop over chunks).
  auto chunk_decay = at::exp(cum.select(-1, Q - 1));               // (B,H,c)
  if (m.carries.defined()) chunk_decay = chunk_decay * m.carries.unsqueeze(1);
  auto S = init.defined() ? init.to(Sblk.scalar_type()) : at::zeros({B, H, P, N}, Sblk.options());
  std::vector<at::Tensor> S_in;
  S_in.reserve(nc);
  for (int64_t c = 0; c < nc; ++c) {
    S_in.push_back(S);
    S = chunk_decay.select(2, c).view({B, H, 1, 1}) * S + Sblk.select(2, c);
  }
  auto Sin = at::stack(S_in, 2);                                   // (B,H,c,P,N)

  // 4. Contribution of the incoming state: exp(cum_i) C_i . S_in.
  auto Yoff = bmm_small(Cc.unsqueeze(1), Sin.transpose(-1, -2)) * at::exp(cum).unsqueeze(-1);
  if (m.takes_in.defined()) Yoff = Yoff * m.takes_in.unsqueeze(1).unsqueeze(-1);
  auto y = (Y + Yoff).permute({0, 2, 3, 1, 4}).reshape({B, Lp, H, P});
  if (pad) y = y.narrow(1, 0, L);
  return {y, S};
}

SsdResult ssd_chunk_scan(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a, const at::Tensor& Bm,
                         const at::Tensor& Cm, int64_t chunk, const at::Tensor& init,
                         const at::Tensor& seq_start) {
#if DYNARCH_CUDA
  // The CUDA hook (docs/architecture.md, "kernels/cuda"); reference mode keeps the tensor ops.
  if (x.is_cuda() && !forward_context().reference()) {
    auto [y, state] = cuda::ssd_chunk_scan(x, dt, a, Bm, Cm, chunk, init, seq_start);
    return {y, state};
  }
#endif
  return ssd_chunked(x, dt, a, Bm, Cm, chunk, init, seq_start);
}

}  // namespace dynarch
