// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// block::Weight: bf16 / f16 / native weights in linear() (the GEMV kernel for a few rows, widened
// panels through the GEMM for more) against a double reference on the stored values; the same
// bits for any thread count; the modules that take a Weight; errors.
#include <cmath>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/block/feed_forward.hpp"
#include "attnkit/block/linear.hpp"
#include "attnkit/block/weight.hpp"
#include "attnkit/core/parallel.hpp"

#include "block_reference.hpp"

using attnkit::index_t;
using attnkit::Shape;
using attnkit::Tensor;
using attnkit::TensorView;
using namespace block_test;
namespace blk = attnkit::block;

namespace {

/// A weight stored as E (bf16, f16 or float) and the values it holds, in double.
template <class E>
struct Stored {
  std::vector<E> data;
  Mat values;
  index_t ld = 0;  // row stride in elements (>= cols: padded rows test the stride)
};

template <class E>
Stored<E> store(const Mat& w, index_t pad) {
  Stored<E> s;
  s.ld = w.cols + pad;
  s.data.resize(static_cast<std::size_t>(w.rows * s.ld));
  s.values = w;
  for (index_t r = 0; r < w.rows; ++r)
    for (index_t c = 0; c < w.cols; ++c) {
      E e;
      if constexpr (std::is_same_v<E, float>) {
        e = static_cast<float>(w(r, c));
        s.values(r, c) = e;
      } else {
        e = E::from_float(static_cast<float>(w(r, c)));
        s.values(r, c) = e.to_float();
      }
      s.data[static_cast<std::size_t>(r * s.ld + c)] = e;
    }
  return s;
}

template <class E>
TensorView<const E, 2> view_of(const Stored<E>& s) {
  return TensorView<const E, 2>(s.data.data(), Shape<2>{s.values.rows, s.values.cols}, {s.ld, 1});
}

/// |y - ref| <= rel · Σ_k |x_k w_k| per element (float accumulation over `in` terms).
template <class T>
bool close(const Tensor<T, 2>& y, const Mat& x, const Mat& w, const std::vector<double>& b,
           double rel) {
  const Mat ref = ref_linear(x, w, b);
  for (index_t i = 0; i < x.rows; ++i)
    for (index_t o = 0; o < w.rows; ++o) {
      double mag = b.empty() ? 0.0 : std::abs(b[static_cast<std::size_t>(o)]);
      for (index_t k = 0; k < x.cols; ++k) mag += std::abs(x(i, k) * w(o, k));
      const double err = std::abs(static_cast<double>(y(i, o)) - ref(i, o));
      if (!(err <= rel * mag + 1e-30)) {
        UNSCOPED_INFO("row " << i << " col " << o << ": " << y(i, o) << " vs " << ref(i, o));
        return false;
      }
    }
  return true;
}

template <class T, class E>
void check_linear(index_t m, index_t in, index_t out, bool with_bias) {
  const Mat x = rounded<T>(random_mat(m, in, 11 + static_cast<std::uint32_t>(m)));
  const Stored<E> w = store<E>(random_mat(out, in, 7 + static_cast<std::uint32_t>(in), 0.5), 3);
  const Mat bm = rounded<T>(random_mat(1, out, 5));
  const std::vector<double> b = with_bias ? bm.v : std::vector<double>{};
  const Tensor<T, 2> xt = to_tensor<T>(x);
  const Tensor<T, 1> bt = to_tensor1<T>(bm.v);
  Tensor<T, 2> y({m, out});
  const blk::Weight<T> weight(view_of(w));
  blk::linear<T>(xt.cview(), weight, with_bias ? bt.cview() : TensorView<const T, 1>{}, y.view());
  const double rel = std::is_same_v<T, float> ? 2e-6 * std::sqrt(double(in) + 1) : 1e-14;
  CHECK(close(y, x, w.values, b, rel));
}

}  // namespace

TEMPLATE_TEST_CASE("Weight: linear with bf16, f16 and float weights, few and many rows",
                   "[block][weight]", attnkit::bf16, attnkit::f16, float) {
  using E = TestType;
  const index_t m = GENERATE(1, 2, 3, 4, 5, 17);
  const index_t in = GENERATE(1, 7, 16, 33, 100);
  const index_t out = GENERATE(1, 3, 5, 70);
  const bool bias = GENERATE(false, true);
  CAPTURE(m, in, out, bias);
  check_linear<float, E>(m, in, out, bias);
  if constexpr (!std::is_same_v<E, float>) check_linear<double, E>(m, in, out, bias);
}

TEST_CASE("Weight: one x row into a strided y, small and large weights", "[block][weight]") {
  // out = 37: two groups of 16 rows and 5 single rows when the weight is small enough for the
  // cache-resident GEMV (AVX-512); out = 700 with in = 100 takes the streaming GEMV. y's
  // elements are every third float of a buffer, whose other elements must stay untouched.
  for (const auto& [out, in] : {std::pair<index_t, index_t>{37, 33}, {700, 100}}) {
    CAPTURE(out, in);
    const Mat x = rounded<float>(random_mat(1, in, 21));
    const Stored<attnkit::bf16> w = store<attnkit::bf16>(random_mat(out, in, 23, 0.5), 1);
    const blk::Weight<float> weight(view_of(w));
    const Tensor<float, 2> xt = to_tensor<float>(x);
    std::vector<float> buf(static_cast<std::size_t>(3 * out), -7.0f);
    const TensorView<float, 2> y(buf.data(), Shape<2>{1, out}, attnkit::Strides<2>{3 * out, 3});
    blk::linear<float>(xt.cview(), weight, y);
    Tensor<float, 2> yc({1, out});
    for (index_t o = 0; o < out; ++o) yc(0, o) = y(0, o);
    CHECK(close(yc, x, w.values, {}, 2e-6 * std::sqrt(double(in) + 1)));
    bool untouched = true;
    for (std::size_t i = 0; i < buf.size(); ++i)
      if (i % 3 != 0) untouched = untouched && buf[i] == -7.0f;
    CHECK(untouched);
  }
}

TEST_CASE("Weight: large products split over threads and panels give the same bits",
          "[block][weight]") {
  // out·in above the GEMV's parallel threshold and in·out above one widened panel; out = 1003
  // leaves different rows outside the four-stream groups for 1, 2 and 3 threads.
  const index_t in = 300, out = 1003;
  const Stored<attnkit::bf16> w = store<attnkit::bf16>(random_mat(out, in, 3, 0.2), 0);
  const blk::Weight<float> weight(view_of(w));
  const int threads = attnkit::max_threads();
  for (const index_t m : {index_t{1}, index_t{3}, index_t{19}}) {
    CAPTURE(m);
    const Mat x = rounded<float>(random_mat(m, in, 9));
    const Tensor<float, 2> xt = to_tensor<float>(x);
    Tensor<float, 2> y1({m, out});
    attnkit::set_threads(1);
    blk::linear<float>(xt.cview(), weight, y1.view());
    CHECK(close(y1, x, w.values, {}, 2e-6 * std::sqrt(double(in))));
    for (const int t : {2, 3}) {
      CAPTURE(t);
      Tensor<float, 2> yt({m, out});
      attnkit::set_threads(t);
      blk::linear<float>(xt.cview(), weight, yt.view());
      bool same = true;
      for (index_t i = 0; i < m; ++i)
        for (index_t o = 0; o < out; ++o) same = same && y1(i, o) == yt(i, o);
      CHECK(same);
    }
  }
  attnkit::set_threads(threads);
}

TEST_CASE("Weight: rows, elements, bytes and errors", "[block][weight]") {
  const Stored<attnkit::f16> w = store<attnkit::f16>(random_mat(5, 37, 2), 2);
  const blk::Weight<float> weight(view_of(w));
  CHECK(weight.type() == blk::WeightType::f16);
  CHECK(weight.shape() == Shape<2>{5, 37});
  CHECK(weight.bytes() == 5 * 37 * 2);
  std::vector<float> row(37);
  weight.row(3, row.data());
  for (index_t c = 0; c < 37; ++c) {
    CHECK(row[static_cast<std::size_t>(c)] == w.values(3, c));
    CHECK(weight(4, c) == w.values(4, c));
  }
  CHECK_THROWS_WITH(weight.native(), Catch::Contains("bf16/f16 weight"));
  // A half weight must have contiguous rows.
  const TensorView<const attnkit::f16, 2> strided(w.data.data(), Shape<2>{5, 10}, {w.ld, 2});
  CHECK_THROWS_WITH(blk::Weight<float>(strided), Catch::Contains("contiguous rows"));
  // Shapes are checked against x and y, naming the weight.
  Tensor<float, 2> x({2, 36}), y({2, 5});
  CHECK_THROWS_WITH(blk::linear<float>(x.cview(), weight, y.view()),
                    Catch::Contains("weight has shape [5, 37]"));
  // A native weight with columns strided (a transposed view) goes to the GEMM.
  const Mat wm = rounded<float>(random_mat(37, 5, 4));
  const Tensor<float, 2> wt = to_tensor<float>(wm);
  const TensorView<const float, 2> transposed(wt.data(), Shape<2>{5, 37}, {1, 5});
  Mat wtm(5, 37);
  for (index_t r = 0; r < 5; ++r)
    for (index_t c = 0; c < 37; ++c) wtm(r, c) = wm(c, r);
  const Mat xm = rounded<float>(random_mat(1, 37, 8));
  const Tensor<float, 2> x1 = to_tensor<float>(xm);
  Tensor<float, 2> y1({1, 5});
  blk::linear<float>(x1.cview(), blk::Weight<float>(transposed), y1.view());
  CHECK(close(y1, xm, wtm, {}, 2e-5));
}

TEST_CASE("Weight: SwiGLU with bf16 weights equals the float module on the widened weights",
          "[block][weight][ffn]") {
  const index_t h = 24, i = 40;
  const Stored<attnkit::bf16> g = store<attnkit::bf16>(random_mat(i, h, 1, 0.3), 0),
                              u = store<attnkit::bf16>(random_mat(i, h, 2, 0.3), 0),
                              d = store<attnkit::bf16>(random_mat(h, i, 3, 0.3), 0);
  const Tensor<float, 2> gf = to_tensor<float>(g.values), uf = to_tensor<float>(u.values),
                         df = to_tensor<float>(d.values);
  blk::SwiGLU<float> half_mlp{view_of(g), view_of(u), view_of(d)};
  blk::SwiGLU<float> float_mlp{gf.cview(), uf.cview(), df.cview()};
  CHECK(half_mlp.weight_bytes() == 3 * h * i * 2);
  CHECK(float_mlp.weight_bytes() == 3 * h * i * 4);
  for (const index_t m : {index_t{1}, index_t{9}}) {
    const Tensor<float, 2> x = to_tensor<float>(random_mat(m, h, 6));
    Tensor<float, 2> a({m, h}), b({m, h});
    half_mlp(x.cview(), a.view());
    float_mlp(x.cview(), b.view());
    double err = 0, mag = 0;
    for (index_t r = 0; r < m; ++r)
      for (index_t c = 0; c < h; ++c) {
        err = std::max(err, double(std::abs(a(r, c) - b(r, c))));
        mag = std::max(mag, double(std::abs(b(r, c))));
      }
    CHECK(err <= 1e-5 * (mag + 1));
  }
}
