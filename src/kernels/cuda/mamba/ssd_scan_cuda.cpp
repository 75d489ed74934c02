#include "kernels/cuda/mamba/ssd_scan_cuda.h"

#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/cuda/binding.h"
#include "kernels/cuda/mamba/ssd_scan_launch.h"

namespace dynarch::cuda {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// The argument checks shared by both entry points; returns the shape.
SsdShape check_ssd_args(const char* op, const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a,
                        const at::Tensor& Bm, const at::Tensor& Cm, int64_t chunk, const at::Tensor& init,
                        const at::Tensor& seq_start) {
  check_tensor(op, "x", x, x.device(), {at::kFloat, at::kDouble});
  check(x.dim() == 4, std::string(op) + ": x must be (B, L, H, P), got " + c10::str(x.sizes()));
  const int64_t B = x.size(0), L = x.size(1), H = x.size(2), P = x.size(3);
  check_tensor(op, "Bm", Bm, x.device(), {x.scalar_type()});
  check(Bm.dim() == 3, std::string(op) + ": Bm must be (B, L, N), got " + c10::str(Bm.sizes()));
  const int64_t N = Bm.size(2);
  check_tensor(op, "dt", dt, x.device(), {x.scalar_type()});
  check_shape(op, "dt", dt, {B, L, H});
  check_tensor(op, "a", a, x.device(), {x.scalar_type()});
  check_shape(op, "a", a, {H});
  check_shape(op, "Bm", Bm, {B, L, N});
  check_tensor(op, "Cm", Cm, x.device(), {x.scalar_type()});
  check_shape(op, "Cm", Cm, {B, L, N});
  if (init.defined()) {
    check_tensor(op, "init", init, x.device(), {x.scalar_type()});
    check_shape(op, "init", init, {B, H, P, N});
  }
  if (seq_start.defined()) {
    check_tensor(op, "seq_start", seq_start, x.device(), {at::kLong});
    check((seq_start.dim() == 1 && seq_start.size(0) == L) || seq_start.sizes() == at::IntArrayRef{B, L},
          std::string(op) + ": seq_start must have shape (" + std::to_string(L) + ") or (" + std::to_string(B) +
              ", " + std::to_string(L) + "), got " + c10::str(seq_start.sizes()));
  }
  check(chunk >= 1, std::string(op) + ": chunk must be >= 1, got " + std::to_string(chunk));
  return make_ssd_shape(B, L, H, P, N, chunk);
}

// The starts as the kernels read them, (B, L) contiguous; numel 0 for none.
at::Tensor starts_rows(const at::Tensor& st, int64_t B, int64_t L, const at::Tensor& like) {
  if (!st.defined() || !st.numel()) return at::empty({0}, like.options().dtype(at::kLong));
  return (st.dim() == 1 ? st.unsqueeze(0).expand({B, L}) : st).contiguous();
}

template <class C>
C* ssd_ptr(const at::Tensor& t) {
  return t.defined() && t.numel() ? t.data_ptr<C>() : nullptr;
}

// Forward launch on contiguous inputs (init: undefined or numel 0 for zeros;
// st: starts_rows).
std::pair<at::Tensor, at::Tensor> run_forward(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a,
                                              const at::Tensor& Bm, const at::Tensor& Cm, const at::Tensor& init,
                                              const at::Tensor& st, const SsdShape& s, const char* what) {
  auto y = at::empty_like(x);
  auto fin = at::empty({s.B, s.H, s.P, s.N}, x.options());
  auto scratch = at::empty({ssd_scratch_elems(s)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ssd_chunk_scan_forward", [&] {
    using C = scalar_t;
    check_launch(ssd_forward_chunked<C>(ssd_ptr<C>(x), ssd_ptr<C>(dt), ssd_ptr<C>(a), ssd_ptr<C>(Bm), ssd_ptr<C>(Cm),
                                        ssd_ptr<C>(init), ssd_ptr<int64_t>(st), ssd_ptr<C>(y), ssd_ptr<C>(fin),
                                        ssd_ptr<C>(scratch), s, stream()),
                 what);
  });
  return {y, fin};
}

struct SsdScanCudaFn : torch::autograd::Function<SsdScanCudaFn> {
  // init and st (starts_rows): numel 0 for none (autograd Functions take defined tensors).
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& dt_in,
                             const at::Tensor& a_in, const at::Tensor& Bm_in, const at::Tensor& Cm_in,
                             const at::Tensor& init_in, const at::Tensor& st, int64_t chunk) {
    c10::cuda::CUDAGuard guard(x_in.device());
    auto x = x_in.contiguous(), dt = dt_in.contiguous(), a = a_in.contiguous(), Bm = Bm_in.contiguous(),
         Cm = Cm_in.contiguous(), init = init_in.contiguous();
    const SsdShape s = make_ssd_shape(x.size(0), x.size(1), x.size(2), x.size(3), Bm.size(2), chunk);
    auto [y, fin] = run_forward(x, dt, a, Bm, Cm, init, st, s, "ssd_chunk_scan forward");
    ctx->save_for_backward({x, dt, a, Bm, Cm, init, st});
    ctx->saved_data["chunk"] = chunk;
    ctx->set_materialize_grads(false);  // an undefined upstream gradient reaches the kernel as null (zeros)
    return {y, fin};
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto sv = ctx->get_saved_variables();
    const auto &x = sv[0], &dt = sv[1], &a = sv[2], &Bm = sv[3], &Cm = sv[4], &init = sv[5], &st = sv[6];
    c10::cuda::CUDAGuard guard(x.device());
    const SsdShape s = make_ssd_shape(x.size(0), x.size(1), x.size(2), x.size(3), Bm.size(2),
                                      ctx->saved_data["chunk"].toInt());
    auto upstream = [&](const at::Tensor& g) { return g.defined() ? g.to(x.scalar_type()).contiguous() : g; };
    auto gy = upstream(grads[0]), gf = upstream(grads[1]);
    // Only the gradients autograd asks for are computed (the others get null pointers).
    auto want = [&](size_t i, const at::Tensor& like) {
      return ctx->needs_input_grad(i) ? at::empty_like(like) : at::Tensor();
    };
    auto dx = want(0, x), ddt = want(1, dt), da = want(2, a), dBm = want(3, Bm), dCm = want(4, Cm);
    auto dinit = init.numel() ? want(5, init) : at::Tensor();
    auto scratch = at::empty({ssd_backward_scratch_elems(s)}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ssd_chunk_scan_backward", [&] {
      using C = scalar_t;
      check_launch(ssd_backward_chunked<C>(ssd_ptr<C>(x), ssd_ptr<C>(dt), ssd_ptr<C>(a), ssd_ptr<C>(Bm),
                                           ssd_ptr<C>(Cm), ssd_ptr<C>(init), ssd_ptr<int64_t>(st), ssd_ptr<C>(gy),
                                           ssd_ptr<C>(gf), ssd_ptr<C>(dx), ssd_ptr<C>(ddt), ssd_ptr<C>(da),
                                           ssd_ptr<C>(dBm), ssd_ptr<C>(dCm), ssd_ptr<C>(dinit), ssd_ptr<C>(scratch), s,
                                           stream()),
                   "ssd_chunk_scan backward");
    });
    return {dx, ddt, da, dBm, dCm, dinit, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::pair<at::Tensor, at::Tensor> ssd_chunk_scan(const at::Tensor& x, const at::Tensor& dt, const at::Tensor& a,
                                                 const at::Tensor& Bm, const at::Tensor& Cm, int64_t chunk,
                                                 const at::Tensor& init, const at::Tensor& seq_start) {
  const SsdShape s = check_ssd_args("ssd_chunk_scan", x, dt, a, Bm, Cm, chunk, init, seq_start);
  auto out = SsdScanCudaFn::apply(x, dt, a, Bm, Cm, init.defined() ? init : at::empty({0}, x.options()),
                                  starts_rows(seq_start, s.B, s.L, x), chunk);
  return {out[0], out[1]};
}

std::pair<at::Tensor, at::Tensor> ssd_chunk_scan_forward(const at::Tensor& x, const at::Tensor& dt,
                                                         const at::Tensor& a, const at::Tensor& Bm,
                                                         const at::Tensor& Cm, int64_t chunk, const at::Tensor& init,
                                                         const at::Tensor& seq_start) {
  const char* op = "ssd_chunk_scan_forward";
  const SsdShape s = check_ssd_args(op, x, dt, a, Bm, Cm, chunk, init, seq_start);
  c10::cuda::CUDAGuard guard(x.device());
  return run_forward(x.contiguous(), dt.contiguous(), a.contiguous(), Bm.contiguous(), Cm.contiguous(),
                     init.defined() ? init.contiguous() : at::Tensor(), starts_rows(seq_start, s.B, s.L, x), s, op);
}

}  // namespace dynarch::cuda
