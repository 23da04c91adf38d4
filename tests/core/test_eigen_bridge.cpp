// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The Eigen bridge: maps over our memory and views over Eigen's, both ways, no copies.
#include <numeric>

#include <catch2/catch.hpp>

#include "attnkit/attnkit.hpp"
#include "attnkit/core/eigen_bridge.hpp"

TEST_CASE("as_eigen maps a tensor and a strided view", "[core][eigen]") {
  attnkit::Tensor<float, 2> t({3, 4});
  std::iota(t.begin(), t.end(), 0.0f);
  auto m = attnkit::as_eigen(t);
  REQUIRE(m.rows() == 3);
  REQUIRE(m.cols() == 4);
  REQUIRE(m(2, 3) == 11.0f);
  m(1, 1) = -5.0f;
  REQUIRE(t(1, 1) == -5.0f);
  auto tr = attnkit::as_eigen(t.view().transpose(0, 1));
  REQUIRE(tr(3, 2) == 11.0f);
  const attnkit::Tensor<float, 2>& ct = t;
  auto cm = attnkit::as_eigen(ct);
  REQUIRE((cm * cm.transpose())(0, 0) == Approx(0 + 1 + 4 + 9));
}

TEST_CASE("view_of wraps Eigen matrices in either storage order", "[core][eigen]") {
  Eigen::MatrixXd col(3, 2);  // column-major
  col << 1, 2, 3, 4, 5, 6;
  auto v = attnkit::view_of(col);
  REQUIRE(v(2, 1) == 6.0);
  REQUIRE(v(1, 0) == 3.0);
  REQUIRE_FALSE(v.is_contiguous());
  attnkit::EigenRowMatrix<float> row(2, 3);
  row << 1, 2, 3, 4, 5, 6;
  auto rv = attnkit::view_of(row);
  REQUIRE(rv.is_contiguous());
  REQUIRE(rv(1, 2) == 6.0f);
}

TEST_CASE("view_of wraps Eigen::Tensor, and as_eigen_tensor maps ours", "[core][eigen]") {
  Eigen::Tensor<float, 3> cm(2, 3, 4);  // column-major
  Eigen::Tensor<float, 3, Eigen::RowMajor> rm(2, 3, 4);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) cm(i, j, k) = rm(i, j, k) = float(100 * i + 10 * j + k);
  auto a = attnkit::view_of(cm);
  auto b = attnkit::view_of(rm);
  REQUIRE(b.is_contiguous());
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) {
        REQUIRE(a(i, j, k) == cm(i, j, k));
        REQUIRE(b(i, j, k) == rm(i, j, k));
      }
  attnkit::Tensor<float, 3> t({2, 3, 4});
  std::iota(t.begin(), t.end(), 0.0f);
  auto tm = attnkit::as_eigen_tensor(t.view());
  REQUIRE(tm(1, 2, 3) == 23.0f);
  REQUIRE_THROWS_AS(attnkit::as_eigen_tensor(t.view().transpose(0, 2)), attnkit::shape_error);
}
