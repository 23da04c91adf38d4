// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// RMSNorm and LayerNorm against double references: every architecture's row kernel, awkward
// row lengths around the SIMD widths, strided rows, in place, bias or none, and shape errors.
#include <catch2/catch.hpp>

#include "attnkit/block/norm.hpp"

#include "block_reference.hpp"

using attnkit::index_t;
using attnkit::Tensor;
using namespace block_test;

namespace {

template <class F>
void for_each_arch(F&& f) {
  using namespace attnkit::simd;
  f(generic{});
  if constexpr (arch_compiled<avx2>)
    if (arch_available<avx2>()) f(avx2{});
  if constexpr (arch_compiled<avx512>)
    if (arch_available<avx512>()) f(avx512{});
}

constexpr index_t sizes[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 97, 128, 257};

}  // namespace

TEMPLATE_TEST_CASE("RMSNorm row kernel matches the double reference on every architecture",
                   "[block][norm]", float, double) {
  using T = TestType;
  for_each_arch([](auto arch) {
    using A = decltype(arch);
    for (index_t n : sizes) {
      const Mat x = rounded<T>(random_mat(3, n, 11 + static_cast<std::uint32_t>(n), 2.0, 0.5));
      const Mat w = rounded<T>(random_mat(1, n, 5, 0.3, 1.0));
      const Tensor<T, 2> xt = to_tensor<T>(x), wt = to_tensor<T>(w);
      Tensor<T, 2> y({3, n});
      const attnkit::block::RMSNorm norm(1e-5);
      for (index_t r = 0; r < 3; ++r)
        norm.template row<A>(xt[r].data(), wt.data(), static_cast<const T*>(nullptr), y[r].data(),
                             n);
      const Mat ref = ref_rmsnorm(x, w.v, 1e-5);
      INFO("n = " << n << ", arch " << A::name());
      CHECK(max_abs_diff(y, ref) <= tol<T>());
    }
  });
}

TEMPLATE_TEST_CASE("LayerNorm row kernel matches the double reference on every architecture",
                   "[block][norm]", float, double) {
  using T = TestType;
  for_each_arch([](auto arch) {
    using A = decltype(arch);
    for (index_t n : sizes) {
      // An offset mean makes a one-pass variance lose digits; the two-pass form must not.
      const Mat x = rounded<T>(random_mat(3, n, 21 + static_cast<std::uint32_t>(n), 1.5, 4.0));
      const Mat w = rounded<T>(random_mat(1, n, 6, 0.3, 1.0));
      const Mat b = rounded<T>(random_mat(1, n, 7, 0.5));
      const Tensor<T, 2> xt = to_tensor<T>(x), wt = to_tensor<T>(w), bt = to_tensor<T>(b);
      Tensor<T, 2> y({3, n}), y2({3, n});
      const attnkit::block::LayerNorm norm(1e-5);
      for (index_t r = 0; r < 3; ++r) {
        norm.template row<A>(xt[r].data(), wt.data(), bt.data(), y[r].data(), n);
        norm.template row<A>(xt[r].data(), wt.data(), static_cast<const T*>(nullptr), y2[r].data(),
                             n);
      }
      INFO("n = " << n << ", arch " << A::name());
      CHECK(max_abs_diff(y, ref_layernorm(x, w.v, b.v, 1e-5)) <= 4 * tol<T>());
      CHECK(max_abs_diff(y2, ref_layernorm(x, w.v, {}, 1e-5)) <= 4 * tol<T>());
    }
  });
}

TEMPLATE_TEST_CASE("normalize_rows: strided rows, in place, constant rows, threads",
                   "[block][norm]", float, double) {
  using T = TestType;
  const index_t m = GENERATE(1, 5, 300);
  const index_t n = GENERATE(1, 17, 64, 100);
  const Mat x = rounded<T>(random_mat(m, n, 3, 1.0, 0.2));
  const Mat w = rounded<T>(random_mat(1, n, 4, 0.2, 1.0));
  const Mat b = rounded<T>(random_mat(1, n, 8, 0.2));
  const Tensor<T, 2> wt = to_tensor<T>(w);
  const Tensor<T, 1> w1 = to_tensor1<T>(w.v), b1 = to_tensor1<T>(b.v);
  // x inside a buffer with padded rows (stride n + 3).
  Tensor<T, 2> buf({m, n + 3}, T(99));
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) buf(i, j) = static_cast<T>(x(i, j));
  const auto xv = attnkit::TensorView<T, 2>(buf.data(), {m, n}, {n + 3, 1});
  Tensor<T, 2> y({m, n});
  attnkit::block::normalize_rows<attnkit::block::RMSNorm, T>(attnkit::block::RMSNorm(1e-6), xv,
                                                             w1.cview(), y.view());
  CHECK(max_abs_diff(y, ref_rmsnorm(x, w.v, 1e-6)) <= tol<T>());
  attnkit::block::normalize_rows<attnkit::block::LayerNorm, T>(
      attnkit::block::LayerNorm(1e-5), xv, w1.cview(), b1.cview(), xv);  // in place
  const Tensor<T, 2> in_place{attnkit::TensorView<const T, 2>(xv)};
  CHECK(max_abs_diff(in_place, ref_layernorm(x, w.v, b.v, 1e-5)) <= 4 * tol<T>());
  CHECK(buf(m - 1, n) == T(99));  // padding untouched

  // A constant row: LayerNorm gives the bias exactly (variance 0, no NaN).
  Tensor<T, 2> c({2, n}, T(3.25)), yc({2, n});
  attnkit::block::normalize_rows<attnkit::block::LayerNorm, T>(
      attnkit::block::LayerNorm(1e-5), c.cview(), w1.cview(), b1.cview(), yc.view());
  for (index_t j = 0; j < n; ++j) CHECK(yc(1, j) == Approx(double(b1(j))).margin(1e-6));
}

TEST_CASE("normalize_rows: shape errors name the argument", "[block][norm]") {
  Tensor<float, 2> x({4, 8}), y({4, 7});
  Tensor<float, 1> w({8}), w7({7});
  using attnkit::block::RMSNorm;
  CHECK_THROWS_WITH(
      (attnkit::block::normalize_rows<RMSNorm, float>(RMSNorm{}, x.cview(), w.cview(), y.view())),
      Catch::Contains("y has shape [4, 7]"));
  CHECK_THROWS_WITH(
      (attnkit::block::normalize_rows<RMSNorm, float>(RMSNorm{}, x.cview(), w7.cview(), x.view())),
      Catch::Contains("weight has shape [7]"));
  CHECK_THROWS_WITH((attnkit::block::normalize_rows<RMSNorm, float>(RMSNorm{}, x.cview(), w.cview(),
                                                                    w.cview(), x.view())),
                    Catch::Contains("takes no bias"));
  CHECK_THROWS_AS(attnkit::block::RMSNorm(-1.0), attnkit::error);
}
