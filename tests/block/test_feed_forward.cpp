// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// linear(), SwiGLU, the GELU MLP and the top-k mixture of experts against double references.
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/block/feed_forward.hpp"
#include "attnkit/block/linear.hpp"
#include "attnkit/block/moe.hpp"

#include "block_reference.hpp"

using attnkit::index_t;
using attnkit::Tensor;
using namespace block_test;
namespace blk = attnkit::block;

TEMPLATE_TEST_CASE("linear: y = x W^T + b, strided x, errors", "[block][linear]", float, double) {
  using T = TestType;
  const index_t m = GENERATE(1, 3, 33, 130);
  const index_t in = GENERATE(1, 17, 64);
  const index_t out = GENERATE(1, 15, 97);
  const Mat x = rounded<T>(random_mat(m, in, 1)), w = rounded<T>(random_mat(out, in, 2, 0.3));
  const Mat b = rounded<T>(random_mat(1, out, 3));
  const Tensor<T, 2> xt = to_tensor<T>(x), wt = to_tensor<T>(w);
  const Tensor<T, 1> bt = to_tensor1<T>(b.v);
  Tensor<T, 2> y({m, out});
  blk::Linear<T> lin{wt.cview(), bt.cview()};
  lin(xt.cview(), y.view());
  CHECK(max_abs_diff(y, ref_linear(x, w, b.v)) <= 4 * tol<T>());
  blk::linear<T>(xt.cview(), wt.cview(), y.view());
  CHECK(max_abs_diff(y, ref_linear(x, w)) <= 4 * tol<T>());
  Tensor<T, 2> bad({m, out + 1});
  CHECK_THROWS_WITH(blk::linear<T>(xt.cview(), wt.cview(), bad.view()),
                    Catch::Contains("y has shape"));
}

TEMPLATE_TEST_CASE("SwiGLU: down(silu(gate x) * up x)", "[block][ffn]", float, double) {
  using T = TestType;
  const index_t m = GENERATE(1, 7, 40);
  const index_t h = GENERATE(16, 33);
  const index_t i = GENERATE(1, 31, 64);
  const Mat x = rounded<T>(random_mat(m, h, 4, 1.5));
  const Mat g = rounded<T>(random_mat(i, h, 5, 0.4)), u = rounded<T>(random_mat(i, h, 6, 0.4));
  const Mat d = rounded<T>(random_mat(h, i, 7, 0.3));
  const Tensor<T, 2> xt = to_tensor<T>(x), gt = to_tensor<T>(g), ut = to_tensor<T>(u),
                     dt = to_tensor<T>(d);
  Tensor<T, 2> y({m, h});
  blk::SwiGLU<T>{gt.cview(), ut.cview(), dt.cview()}(xt.cview(), y.view());
  CHECK(max_abs_diff(y, ref_swiglu(x, g, u, d)) <= 8 * tol<T>());
  CHECK_THROWS_WITH((blk::SwiGLU<T>{gt.cview(), dt.cview(), dt.cview()}(xt.cview(), y.view())),
                    Catch::Contains("up has shape"));
}

TEMPLATE_TEST_CASE("GeluMLP: exact and tanh GELU, with and without biases", "[block][ffn]", float,
                   double) {
  using T = TestType;
  const bool tanh_form = GENERATE(false, true);
  const bool with_bias = GENERATE(false, true);
  const index_t m = 9, h = 24, i = 37;
  const Mat x = rounded<T>(random_mat(m, h, 8, 1.5));
  const Mat f1 = rounded<T>(random_mat(i, h, 9, 0.4)), f2 = rounded<T>(random_mat(h, i, 10, 0.3));
  const Mat b1 = rounded<T>(random_mat(1, i, 11)), b2 = rounded<T>(random_mat(1, h, 12));
  const Tensor<T, 2> xt = to_tensor<T>(x), f1t = to_tensor<T>(f1), f2t = to_tensor<T>(f2);
  const Tensor<T, 1> b1t = to_tensor1<T>(b1.v), b2t = to_tensor1<T>(b2.v);
  blk::GeluMLP<T> mlp{f1t.cview(), with_bias ? b1t.cview() : attnkit::TensorView<const T, 1>{},
                      f2t.cview(), with_bias ? b2t.cview() : attnkit::TensorView<const T, 1>{},
                      tanh_form ? blk::GeluKind::tanh : blk::GeluKind::exact};
  Tensor<T, 2> y({m, h});
  mlp(xt.cview(), y.view());
  const std::vector<double> none;
  CHECK(max_abs_diff(y, ref_gelu_mlp(x, f1, with_bias ? b1.v : none, f2, with_bias ? b2.v : none,
                                     tanh_form)) <= 8 * tol<T>());
}

TEMPLATE_TEST_CASE("MixtureOfExperts: softmax router, top-k, renormalized or not", "[block][moe]",
                   float, double) {
  using T = TestType;
  const index_t k = GENERATE(1, 2, 4);
  const bool renorm = GENERATE(true, false);
  const index_t m = 23, h = 20, i = 12, e = 4;
  const Mat x = rounded<T>(random_mat(m, h, 13, 1.0));
  const Mat router = rounded<T>(random_mat(e, h, 14, 0.8));
  std::vector<Mat> gs, us, ds;
  std::vector<Tensor<T, 2>> store;
  blk::MixtureOfExperts<T> moe;
  for (index_t j = 0; j < e; ++j) {
    gs.push_back(rounded<T>(random_mat(i, h, 100 + static_cast<std::uint32_t>(j), 0.4)));
    us.push_back(rounded<T>(random_mat(i, h, 200 + static_cast<std::uint32_t>(j), 0.4)));
    ds.push_back(rounded<T>(random_mat(h, i, 300 + static_cast<std::uint32_t>(j), 0.4)));
  }
  store.reserve(static_cast<std::size_t>(3 * e));
  for (index_t j = 0; j < e; ++j) {
    const auto sj = static_cast<std::size_t>(j);
    store.push_back(to_tensor<T>(gs[sj]));
    store.push_back(to_tensor<T>(us[sj]));
    store.push_back(to_tensor<T>(ds[sj]));
    moe.experts.push_back(
        {store[3 * sj].cview(), store[3 * sj + 1].cview(), store[3 * sj + 2].cview()});
  }
  const Tensor<T, 2> xt = to_tensor<T>(x), rt = to_tensor<T>(router);
  moe.router = rt.cview();
  moe.top_k = k;
  moe.renormalize = renorm;
  Tensor<T, 2> y({m, h});
  moe(xt.cview(), y.view());
  CHECK(max_abs_diff(y, ref_moe(x, router, gs, us, ds, k, renorm)) <= 8 * tol<T>());
  // With k = E and renormalization the routing weights of every token sum to 1.
  const auto routing = moe.route(xt.cview());
  for (const auto& r : routing) {
    double s = 0;
    for (double w : r.weights) s += w;
    if (renorm)
      CHECK(s == Approx(1.0).epsilon(1e-12));
    else
      CHECK(s <= 1.0 + 1e-12);
    for (std::size_t t = 1; t < r.weights.size(); ++t) CHECK(r.weights[t - 1] >= r.weights[t]);
  }
  moe.top_k = e + 1;
  CHECK_THROWS_WITH(moe(xt.cview(), y.view()), Catch::Contains("top_k"));
}
