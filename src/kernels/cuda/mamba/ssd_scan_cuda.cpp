#include "kernels/cuda/mamba/ssd_scan_cuda.h"

#include <c10/cuda/CUDAGuard.h>

#include "kernels/cuda/binding.h"
#include "kernels/cuda/mamba/ssd_scan_launch.h"

namespace dynarch::cuda {

std::pair<at::Tensor, at::Tensor> ssd_chunk_scan_forward(const at::Tensor& x_in, const at::Tensor& dt,
                                                         const at::Tensor& a, const at::Tensor& Bm,
                                                         const at::Tensor& Cm, int64_t chunk, const at::Tensor& init) {
  const char* op = "ssd_chunk_scan_forward";
  check_tensor(op, "x", x_in, x_in.device(), {at::kFloat, at::kDouble});
  check(x_in.dim() == 4, std::string(op) + ": x must be (B, L, H, P), got " + c10::str(x_in.sizes()));
  const int64_t B = x_in.size(0), L = x_in.size(1), H = x_in.size(2), P = x_in.size(3);
  check(Bm.dim() == 3, std::string(op) + ": Bm must be (B, L, N), got " + c10::str(Bm.sizes()));
  const int64_t N = Bm.size(2);
  const auto dev = x_in.device();
  const auto dtype = x_in.scalar_type();
  check_tensor(op, "dt", dt, dev, {dtype});
  check_shape(op, "dt", dt, {B, L, H});
  check_tensor(op, "a", a, dev, {dtype});
  check_shape(op, "a", a, {H});
  check_tensor(op, "Bm", Bm, dev, {dtype});
  check_shape(op, "Bm", Bm, {B, L, N});
  check_tensor(op, "Cm", Cm, dev, {dtype});
  check_shape(op, "Cm", Cm, {B, L, N});
  if (init.defined()) {
    check_tensor(op, "init", init, dev, {dtype});
    check_shape(op, "init", init, {B, H, P, N});
  }
  check(chunk >= 1, std::string(op) + ": chunk must be >= 1, got " + std::to_string(chunk));
  c10::cuda::CUDAGuard guard(dev);
  auto x = x_in.contiguous(), d = dt.contiguous(), av = a.contiguous(), b = Bm.contiguous(), c = Cm.contiguous();
  auto h0 = init.defined() ? init.contiguous() : at::Tensor();
  const SsdShape s = make_ssd_shape(B, L, H, P, N, chunk);
  auto y = at::empty_like(x);
  auto fin = at::empty({B, H, P, N}, x.options());
  auto scratch = at::empty({ssd_scratch_elems(s)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(dtype, "ssd_chunk_scan_forward", [&] {
    using C = scalar_t;
    check_launch(ssd_forward_chunked<C>(x.data_ptr<C>(), d.data_ptr<C>(), av.data_ptr<C>(), b.data_ptr<C>(),
                                        c.data_ptr<C>(), h0.defined() ? h0.data_ptr<C>() : nullptr, y.data_ptr<C>(),
                                        fin.data_ptr<C>(), scratch.data_ptr<C>(), s, stream()),
                 op);
  });
  return {y, fin};
}

}  // namespace dynarch::cuda
