// Packed rows in the device-op forms of Mamba-2's scan and conv
// (kernels/cpu/mamba/ssd_chunked.h, causal_conv.h, seq_starts.h): with
// per-position sequence starts, ssd_chunked == ssd_sequential == each
// sequence run on its own, and the conv reference == each sequence convolved
// on its own: outputs, final states and the gradients of every input, fp64.
// Boundaries inside chunks, at chunk edges, sequences of length 1, one longer
// than several chunks, a partial last chunk. Bad starts name the argument.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "cuda_test_util.h"
#include "expect_error.h"
#include "kernels/cpu/mamba/causal_conv.h"
#include "kernels/cpu/mamba/ssd_chunked.h"

using namespace dynarch;
using dynarch::testutil::expect_error;
using dynarch::testutil::rel;
using dynarch::testutil::starts_of;

namespace {

using Rows = std::vector<std::vector<int64_t>>;  // per row, its sequences' lengths (summing to L)

// Each sequence of each row through ssd_sequential alone (init for the first only).
SsdResult ssd_segments(const std::vector<at::Tensor>& v, const at::Tensor& init, const Rows& rows) {
  std::vector<at::Tensor> ys, states;
  for (size_t b = 0; b < rows.size(); ++b) {
    std::vector<at::Tensor> yb;
    at::Tensor S;
    int64_t t0 = 0;
    for (int64_t n : rows[b]) {
      auto seg = [&](const at::Tensor& t) { return t.narrow(0, b, 1).narrow(1, t0, n); };
      auto r = ssd_sequential(seg(v[0]), seg(v[1]), v[2], seg(v[3]), seg(v[4]),
                              t0 == 0 && init.defined() ? init.narrow(0, b, 1) : at::Tensor());
      yb.push_back(r.y);
      S = r.state;
      t0 += n;
    }
    ys.push_back(at::cat(yb, 1));
    states.push_back(S);
  }
  return {at::cat(ys), at::cat(states)};
}

// y, the final state and the gradients of <gy, y> + <gf, state> for x, dt, a, Bm, Cm (, init).
std::vector<at::Tensor> ssd_run(const std::function<SsdResult(const std::vector<at::Tensor>&)>& f,
                                const std::vector<at::Tensor>& in, const at::Tensor& gy, const at::Tensor& gf) {
  std::vector<at::Tensor> v;
  for (const auto& t : in) v.push_back(t.detach().clone().requires_grad_(true));
  auto r = f(v);
  auto g = torch::autograd::grad({(r.y * gy).sum() + (r.state * gf).sum()}, v);
  g.insert(g.begin(), {r.y.detach(), r.state.detach()});
  return g;
}

double worst(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b, const std::string& what) {
  static const char* names[] = {"y", "state", "dx", "ddt", "da", "dBm", "dCm", "dinit"};
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = rel(a[i], b[i]);
    EXPECT_LT(e, 1e-11) << what << ": " << names[i];
    m = std::max(m, e);
  }
  return m;
}

}  // namespace

TEST(SsdResets, ChunkedEqualsSequentialEqualsSegments) {
  torch::manual_seed(71);
  struct Case {
    int64_t Q;
    Rows rows;
  };
  // Q = 4: starts at 3 (inside a chunk), 8 (a chunk edge), 9 and 10 (length 1), 13
  // (after one sequence over three chunks); L = 18: a partial last chunk, a
  // sequence through the padding, two length-1 sequences first; Q = 1; Q > L.
  const std::vector<Case> cases{{4, {{3, 5, 1, 1, 6}, {13, 3}}},
                                {4, {{4, 4, 1, 9}, {1, 1, 16}}},
                                {1, {{2, 1, 3}, {6}}},
                                {32, {{4, 6}, {1, 9}}},
                                {4, {{1, 1, 1, 1, 1, 1, 1, 1}, {8}}}};
  double e_chunked = 0, e_seq = 0;
  for (const auto& c : cases)
    for (bool with_init : {false, true}) {
      int64_t L = 0;
      for (int64_t n : c.rows[0]) L += n;
      const int64_t B = (int64_t)c.rows.size(), H = 3, P = 4, N = 5;
      auto o = at::TensorOptions().dtype(at::kDouble);
      std::vector<at::Tensor> in{torch::randn({B, L, H, P}, o), torch::rand({B, L, H}, o) * 0.5 + 0.05,
                                 -torch::rand({H}, o) * 2 - 0.3, torch::randn({B, L, N}, o), torch::randn({B, L, N}, o)};
      if (with_init) in.push_back(torch::randn({B, H, P, N}, o));
      auto gy = torch::randn({B, L, H, P}, o), gf = torch::randn({B, H, P, N}, o);
      const auto st = starts_of(c.rows);
      auto init_of = [&](const std::vector<at::Tensor>& v) { return with_init ? v[5] : at::Tensor(); };
      auto seg = ssd_run([&](auto& v) { return ssd_segments(v, init_of(v), c.rows); }, in, gy, gf);
      auto chunked = ssd_run([&](auto& v) { return ssd_chunked(v[0], v[1], v[2], v[3], v[4], c.Q, init_of(v), st); },
                             in, gy, gf);
      auto seq = ssd_run([&](auto& v) { return ssd_sequential(v[0], v[1], v[2], v[3], v[4], init_of(v), st); }, in,
                         gy, gf);
      const std::string what = "Q=" + std::to_string(c.Q) + " L=" + std::to_string(L) + " init=" +
                               std::to_string(with_init);
      e_chunked = std::max(e_chunked, worst(chunked, seg, what + " chunked"));
      e_seq = std::max(e_seq, worst(seq, seg, what + " sequential"));
      if (B == 2 && c.rows[1].size() == 1) {  // a row of one sequence: as without starts
        auto one = ssd_run([&](auto& v) { return ssd_chunked(v[0], v[1], v[2], v[3], v[4], c.Q, init_of(v)); }, in,
                           gy, gf);
        for (size_t i = 0; i < one.size(); ++i)
          if (i != 4)  // da sums over both rows
            EXPECT_LT(rel(chunked[i].narrow(0, 1, 1), one[i].narrow(0, 1, 1)), 1e-12) << what << " tensor " << i;
      }
    }
  std::printf("[ max rel error ] ssd_chunked with resets vs per-sequence runs: %.2e; ssd_sequential: %.2e\n",
              e_chunked, e_seq);
}

TEST(SsdResets, ZeroStartsChangeNothingAndOneRowOfStartsServesAll) {
  torch::manual_seed(72);
  auto o = at::TensorOptions().dtype(at::kDouble);
  const int64_t B = 2, L = 11, H = 2, P = 3, N = 4;
  auto x = torch::randn({B, L, H, P}, o), dt = torch::rand({B, L, H}, o), a = -torch::rand({H}, o) - 0.2;
  auto Bm = torch::randn({B, L, N}, o), Cm = torch::randn({B, L, N}, o), init = torch::randn({B, H, P, N}, o);
  // All starts 0: masks of ones, the same numbers bit for bit.
  auto zero = torch::zeros({L}, at::kLong);
  auto r0 = ssd_chunked(x, dt, a, Bm, Cm, 4, init), r1 = ssd_chunked(x, dt, a, Bm, Cm, 4, init, zero);
  EXPECT_TRUE(torch::equal(r0.y, r1.y));
  EXPECT_TRUE(torch::equal(r0.state, r1.state));
  // (L) starts = the same (B, L) starts in every row.
  auto st = starts_of({{2, 6, 3}});
  auto r2 = ssd_chunked(x, dt, a, Bm, Cm, 4, init, st.squeeze(0));
  auto r3 = ssd_chunked(x, dt, a, Bm, Cm, 4, init, st.expand({B, L}));
  EXPECT_TRUE(torch::equal(r2.y, r3.y));
  EXPECT_TRUE(torch::equal(r2.state, r3.state));
}

TEST(SsdResets, CausalConvReferenceEqualsSegments) {
  torch::manual_seed(73);
  const Rows rows{{3, 5, 1, 1, 6}, {1, 2, 13}};
  const int64_t B = 2, L = 16, C = 5, K = 4;
  auto st = starts_of(rows);
  double e = 0;
  for (bool with_init : {false, true}) {
    auto o = at::TensorOptions().dtype(at::kDouble);
    auto x = torch::randn({B, L, C}, o).requires_grad_(true), w = torch::randn({C, 1, K}, o).requires_grad_(true);
    auto b = torch::randn({C}, o).requires_grad_(true);
    auto init = with_init ? torch::randn({B, K - 1, C}, o) : at::Tensor();
    auto y = causal_conv1d_silu_reference(x, w, b, init, st);
    // Each sequence alone: init's rows for the first, zeros before the others.
    std::vector<at::Tensor> ys;
    for (int64_t r = 0; r < B; ++r) {
      int64_t t0 = 0;
      for (int64_t n : rows[r]) {
        auto seg_init = t0 == 0 && with_init ? init.narrow(0, r, 1) : at::Tensor();
        ys.push_back(causal_conv1d_silu_reference(x.narrow(0, r, 1).narrow(1, t0, n), w, b, seg_init));
        t0 += n;
      }
    }
    const auto mid = ys.begin() + (int64_t)rows[0].size();
    auto ref = at::cat({at::cat(std::vector<at::Tensor>(ys.begin(), mid), 1), at::cat(std::vector<at::Tensor>(mid, ys.end()), 1)});
    auto G = torch::randn({B, L, C}, o);
    auto g = torch::autograd::grad({(y * G).sum()}, {x, w, b}), gr = torch::autograd::grad({(ref * G).sum()}, {x, w, b});
    e = std::max({e, rel(y, ref), rel(g[0], gr[0]), rel(g[1], gr[1]), rel(g[2], gr[2])});
    EXPECT_LT(rel(y, ref), 1e-13) << with_init;
    for (int i = 0; i < 3; ++i) EXPECT_LT(rel(g[i], gr[i]), 1e-13) << with_init << " gradient " << i;
    // The op entry on the CPU is this reference.
    EXPECT_TRUE(torch::equal(causal_conv1d_silu(x, w, b, init, st), y));
  }
  std::printf("[ max rel error ] causal_conv1d_silu_reference with starts vs per-sequence convs: %.2e\n", e);
}

TEST(SsdResets, BadStartsNameTheArgument) {
  auto o = at::TensorOptions().dtype(at::kDouble);
  auto x = torch::randn({2, 5, 2, 3}, o), dt = torch::rand({2, 5, 2}, o), a = -torch::rand({2}, o);
  auto Bm = torch::randn({2, 5, 4}, o), Cm = torch::randn({2, 5, 4}, o);
  auto good = torch::tensor({0, 0, 2, 2, 4}, at::kLong);
  EXPECT_NO_THROW(ssd_chunked(x, dt, a, Bm, Cm, 2, {}, good));
  expect_error([&] { ssd_chunked(x, dt, a, Bm, Cm, 2, {}, good.to(at::kFloat)); },
               "ssd_chunked: seq_start must be int64, got Float");
  expect_error([&] { ssd_chunk_scan(x, dt, a, Bm, Cm, 2, {}, torch::zeros({6}, at::kLong)); },
               "ssd_chunked: seq_start must have shape (5) or (2, 5), got [6]");
  expect_error([&] { ssd_sequential(x, dt, a, Bm, Cm, {}, torch::zeros({3, 5}, at::kLong)); },
               "ssd_sequential: seq_start must have shape (5) or (2, 5), got [3, 5]");
  expect_error([&] { ssd_sequential(x, dt, a, Bm, Cm, {}, torch::tensor({0, 0, 1, 1, 1}, at::kLong)); },
               "ssd_sequential: seq_start at position 2 of row 0 must be 2 or 0, got 1");
  expect_error([&] { ssd_chunked(x, dt, a, Bm, Cm, 2, {}, torch::tensor({1, 1, 2, 2, 4}, at::kLong)); },
               "seq_start must be 0 at position 0");
  auto xc = torch::randn({2, 5, 3}, o), w = torch::randn({3, 1, 4}, o), b = torch::randn({3}, o);
  expect_error([&] { causal_conv1d_silu(xc, w, b, {}, good.to(at::kInt)); },
               "causal_conv1d_silu: seq_start must be int64, got Int");
  expect_error([&] { causal_conv1d_silu(xc, w, b, {}, good.view({5, 1})); },
               "causal_conv1d_silu: seq_start must have shape (5) or (2, 5), got [5, 1]");
  expect_error([&] { causal_conv1d_silu(xc, w, b, {}, at::empty({5}, at::TensorOptions(at::kLong).device(c10::kMeta))); },
               "causal_conv1d_silu: seq_start is on meta, expected cpu");
}
