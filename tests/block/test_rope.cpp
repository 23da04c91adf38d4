// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// RoPE (rotate-half and interleaved) against the double reference: given positions (not 0..N-1),
// partial rotary dimension, strided [B, H, N, D] views, and errors.
#include <tuple>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/block/rope.hpp"

#include "block_reference.hpp"

using attnkit::index_t;
using attnkit::Tensor;
using attnkit::block::RoPE;
using attnkit::block::RopeStyle;
using namespace block_test;

TEMPLATE_TEST_CASE("RoPE matches the double reference in both forms", "[block][rope]", float,
                   double) {
  using T = TestType;
  const bool interleaved = GENERATE(false, true);
  // (head dimension, rotary dimension): full and partial rotary, around the SIMD widths.
  const auto dims = GENERATE(
      table<index_t, index_t>({{2, 2}, {16, 16}, {16, 8}, {18, 16}, {64, 64}, {64, 32}, {34, 34}}));
  const index_t d = std::get<0>(dims), rdim = std::get<1>(dims);
  const double theta = GENERATE(10000.0, 500000.0);
  const index_t nb = 2, nh = 3, n = 7;
  const std::vector<index_t> pos = {0, 1, 5, 2, 100, 4095, 37};
  // Head-major data inside a [B, N, H, D] buffer, viewed as [B, H, N, D] (the MHA layout).
  const Mat src = rounded<T>(random_mat(nb * n * nh, d, 9, 1.0));
  Tensor<T, 2> buf = to_tensor<T>(src);
  attnkit::TensorView<T, 4> x(buf.data(), {nb, nh, n, d}, {n * nh * d, d, nh * d, 1});
  RoPE rope(rdim, theta, interleaved ? RopeStyle::interleaved : RopeStyle::rotate_half);
  rope.apply<T>(x, pos);
  double err = 0;
  for (index_t b = 0; b < nb; ++b)
    for (index_t h = 0; h < nh; ++h)
      for (index_t r = 0; r < n; ++r) {
        std::vector<double> row(static_cast<std::size_t>(d));
        for (index_t c = 0; c < d; ++c)
          row[static_cast<std::size_t>(c)] = src((b * n + r) * nh + h, c);
        const auto want =
            ref_rope_row(row, double(pos[static_cast<std::size_t>(r)]), rdim, theta, interleaved);
        for (index_t c = 0; c < d; ++c)
          err = std::max(err, std::abs(double(x(b, h, r, c)) - want[static_cast<std::size_t>(c)]));
      }
  INFO("d " << d << " rotary " << rdim << " interleaved " << interleaved);
  CHECK(err <= (sizeof(T) == 4 ? 1e-6 : 1e-14));
}

TEST_CASE("RoPE: inv_freq, position 0 is the identity, relative property, errors",
          "[block][rope]") {
  RoPE rope(8, 10000.0);
  REQUIRE(rope.inv_freq().size() == 4);
  CHECK(rope.inv_freq()[0] == 1.0);
  CHECK(rope.inv_freq()[1] == Approx(std::pow(10000.0, -0.25)));
  // q at position m and k at position n: the dot product depends on m - n only.
  const Mat qk = random_mat(2, 8, 3);
  auto dot_at = [&](index_t m, index_t n) {
    Tensor<double, 4> q({1, 1, 1, 8}), k({1, 1, 1, 8});
    for (index_t c = 0; c < 8; ++c) {
      q(0, 0, 0, c) = qk(0, c);
      k(0, 0, 0, c) = qk(1, c);
    }
    const std::vector<index_t> pm{m}, pn{n};
    rope.apply<double>(q.view(), pm);
    rope.apply<double>(k.view(), pn);
    double s = 0;
    for (index_t c = 0; c < 8; ++c) s += q(0, 0, 0, c) * k(0, 0, 0, c);
    return s;
  };
  CHECK(dot_at(7, 3) == Approx(dot_at(104, 100)).epsilon(1e-12));
  CHECK(dot_at(0, 0) == Approx(qk(0, 0) * qk(1, 0) + qk(0, 1) * qk(1, 1) + qk(0, 2) * qk(1, 2) +
                               qk(0, 3) * qk(1, 3) + qk(0, 4) * qk(1, 4) + qk(0, 5) * qk(1, 5) +
                               qk(0, 6) * qk(1, 6) + qk(0, 7) * qk(1, 7)));
  Tensor<float, 4> x({1, 2, 3, 8});
  const std::vector<index_t> two{0, 1};
  CHECK_THROWS_WITH(rope.apply<float>(x.view(), two), Catch::Contains("2 positions"));
  Tensor<float, 4> small({1, 2, 2, 6});
  CHECK_THROWS_WITH(rope.apply<float>(small.view(), two), Catch::Contains("rotary_dim 8"));
  CHECK_THROWS_AS(RoPE(7), attnkit::error);
  CHECK_THROWS_AS(RoPE(8, -1.0), attnkit::error);
}
