#include "model/layers/state.h"

namespace dynarch {

namespace {

at::Tensor sel(const at::Tensor& t, const at::Tensor& rows) {
  return t.defined() ? t.index_select(0, rows) : t;
}

void put(at::Tensor& dst, const at::Tensor& rows, const at::Tensor& src) {
  if (!src.defined()) return;
  // A sub-state's KV cache may have grown while stepping: grow the full one first.
  if (dst.dim() == 4 && src.dim() == 4 && dst.size(2) < src.size(2)) {
    auto n = at::zeros({dst.size(0), dst.size(1), src.size(2), dst.size(3)}, dst.options());
    n.narrow(2, 0, dst.size(2)).copy_(dst);
    dst = n;
  }
  if (dst.dim() == 4 && src.size(2) < dst.size(2)) {
    dst.narrow(2, 0, src.size(2)).index_copy_(0, rows, src);
    return;
  }
  dst.index_copy_(0, rows, src);
}

StackState select_stack(const StackState& s, const at::Tensor& rows) {
  StackState o;
  for (auto& c : s.layers) o.layers.push_back({sel(c.conv, rows), sel(c.ssm, rows), sel(c.k, rows), sel(c.v, rows), sel(c.h, rows)});
  if (s.pos.empty()) return o;  // stack not used at this stage
  const auto rows_cpu = rows.to(at::kCPU);  // row numbers on the host, whatever the device
  auto r = rows_cpu.accessor<int64_t, 1>();
  for (int64_t i = 0; i < rows.size(0); ++i) o.pos.push_back(s.pos[r[i]]);
  return o;
}

void scatter_stack(StackState& d, const at::Tensor& rows, const StackState& s) {
  for (size_t l = 0; l < d.layers.size(); ++l) {
    put(d.layers[l].conv, rows, s.layers[l].conv);
    put(d.layers[l].ssm, rows, s.layers[l].ssm);
    put(d.layers[l].k, rows, s.layers[l].k);
    put(d.layers[l].v, rows, s.layers[l].v);
    put(d.layers[l].h, rows, s.layers[l].h);
  }
  if (d.pos.empty()) return;
  const auto rows_cpu = rows.to(at::kCPU);  // row numbers on the host, whatever the device
  auto r = rows_cpu.accessor<int64_t, 1>();
  for (int64_t i = 0; i < rows.size(0); ++i) d.pos[r[i]] = s.pos[i];
}

}  // namespace

ModelState select_rows(const ModelState& s, const at::Tensor& rows) {
  ModelState o;
  o.main = select_stack(s.main, rows);
  o.enc = select_stack(s.enc, rows);
  o.dec = select_stack(s.dec, rows);
  o.last = sel(s.last, rows);
  o.seen = sel(s.seen, rows);
  o.last_zbar = sel(s.last_zbar, rows);
  if (s.inner) o.inner = std::make_shared<ModelState>(select_rows(*s.inner, rows));
  return o;
}

void scatter_rows(ModelState& d, const at::Tensor& rows, const ModelState& s) {
  scatter_stack(d.main, rows, s.main);
  scatter_stack(d.enc, rows, s.enc);
  scatter_stack(d.dec, rows, s.dec);
  put(d.last, rows, s.last);
  put(d.seen, rows, s.seen);
  put(d.last_zbar, rows, s.last_zbar);
  if (d.inner && s.inner) scatter_rows(*d.inner, rows, *s.inner);
}

}  // namespace dynarch
