// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Tensor and TensorView: layout, slicing, conversions, bounds checks.
#include <cstdint>
#include <numeric>

#include <catch2/catch.hpp>

#include "attnkit/attnkit.hpp"

using attnkit::index_t;
using attnkit::Shape;
using attnkit::Tensor;
using attnkit::TensorView;

TEMPLATE_TEST_CASE("Tensor is zeroed, aligned and row-major", "[core][tensor]", float, double,
                   std::int32_t, std::uint8_t) {
  const index_t a = GENERATE(1, 2, 3, 7, 17);
  const index_t b = GENERATE(1, 5, 16, 33);
  Tensor<TestType, 3> t({a, 2, b});
  REQUIRE(t.size() == a * 2 * b);
  REQUIRE(reinterpret_cast<std::uintptr_t>(t.data()) % attnkit::buffer_alignment == 0);
  for (auto x : t) REQUIRE(x == TestType(0));
  REQUIRE(t.strides() == attnkit::Strides<3>{2 * b, b, 1});
  index_t n = 0;
  for (index_t i = 0; i < a; ++i)
    for (index_t j = 0; j < 2; ++j)
      for (index_t k = 0; k < b; ++k) t(i, j, k) = static_cast<TestType>(n++ % 100);
  for (index_t i = 0; i < t.size(); ++i) REQUIRE(t.data()[i] == static_cast<TestType>(i % 100));
}

TEST_CASE("Buffers of 2 MiB or more are 2 MiB aligned, zeroed, and released as allocated",
          "[core][tensor]") {
  // Just under, at, and past the threshold (the byte counts are padded to 64 first).
  const std::size_t huge = attnkit::huge_page_bytes;
  const std::size_t floats =
      GENERATE(std::size_t{1}, (std::size_t{2} << 20) / 4 - 16, (std::size_t{2} << 20) / 4 - 15,
               (std::size_t{2} << 20) / 4, (std::size_t{5} << 20) / 4 + 3);
  const std::size_t bytes = (floats * 4 + 63) / 64 * 64;
  auto p = attnkit::make_aligned<float>(floats);
  const auto at = reinterpret_cast<std::uintptr_t>(p.get());
  REQUIRE(at % attnkit::buffer_alignment == 0);
  if (bytes >= huge) REQUIRE(at % huge == 0);
  REQUIRE(p.get_deleter().alignment == (bytes >= huge ? huge : attnkit::buffer_alignment));
  for (std::size_t i = 0; i < floats; i += 997) REQUIRE(p[i] == 0.0f);
  REQUIRE(p[floats - 1] == 0.0f);
  p[floats - 1] = 1.0f;  // written to the end; released by the deleter (ASan checks the match)
  Tensor<float, 2> t({1024, 1024});  // 4 MiB
  REQUIRE(reinterpret_cast<std::uintptr_t>(t.data()) % huge == 0);
  REQUIRE(t(1023, 1023) == 0.0f);
}

TEST_CASE("Tensor copies deeply and moves cheaply", "[core][tensor]") {
  Tensor<float, 2> t({3, 4}, 1.5f);
  Tensor<float, 2> c = t;
  c(1, 2) = 7.0f;
  REQUIRE(t(1, 2) == 1.5f);
  REQUIRE(c(1, 2) == 7.0f);
  const float* p = c.data();
  Tensor<float, 2> m = std::move(c);
  REQUIRE(m.data() == p);
  REQUIRE(m.shape() == Shape<2>{3, 4});
  t = m;
  REQUIRE(t(1, 2) == 7.0f);
  Tensor<float, 2> empty({0, 5});
  REQUIRE(empty.size() == 0);
  REQUIRE(empty.empty());
}

TEST_CASE("TensorView slices, transposes and reshapes without copying", "[core][view]") {
  Tensor<int, 3> t({4, 3, 5});
  std::iota(t.begin(), t.end(), 0);
  TensorView<int, 3> v = t;
  TensorView<const int, 3> cv = v;  // mutable -> const
  REQUIRE(cv.data() == t.data());

  auto row = v[2];  // [3, 5]
  REQUIRE(row.shape() == Shape<2>{3, 5});
  REQUIRE(row(1, 4) == 2 * 15 + 1 * 5 + 4);

  auto s = v.slice(1, 3);  // [2, 3, 5]
  REQUIRE(s.shape() == Shape<3>{2, 3, 5});
  REQUIRE(s(0, 0, 0) == 15);
  REQUIRE(s.is_contiguous());
  auto s2 = v.slice(1, 4, 2);  // [4, 3, 3]
  REQUIRE_FALSE(s2.is_contiguous());
  REQUIRE(s2(3, 2, 0) == 3 * 15 + 2 * 5 + 1);

  auto tr = v.transpose(0, 2);  // [5, 3, 4]
  REQUIRE(tr(4, 1, 3) == t(3, 1, 4));
  REQUIRE_FALSE(tr.is_contiguous());

  auto r = v.reshape(Shape<2>{12, 5});
  REQUIRE(r(11, 4) == 59);
  REQUIRE_THROWS_AS(v.reshape(Shape<2>{7, 5}), attnkit::shape_error);
  REQUIRE_THROWS_AS(tr.reshape(Shape<1>{60}), attnkit::shape_error);
  REQUIRE_THROWS_AS(v.slice(2, 5), attnkit::shape_error);
  REQUIRE_THROWS_AS(v.slice(-1, 2), attnkit::shape_error);
  REQUIRE_THROWS_AS(v.at(4), attnkit::shape_error);
  REQUIRE(v.at(3)(0, 0) == 45);

  row(0, 0) = -1;  // writes through
  REQUIRE(t(2, 0, 0) == -1);
}

TEST_CASE("fill and copy work on strided views", "[core][view]") {
  Tensor<double, 2> a({5, 7});
  auto col = a.view().slice(2, 3, 1);  // one column, stride 7
  attnkit::fill(col, 3.0);
  for (index_t i = 0; i < 5; ++i) {
    REQUIRE(a(i, 2) == 3.0);
    REQUIRE(a(i, 1) == 0.0);
  }
  Tensor<float, 2> b({7, 5});
  attnkit::copy(TensorView<const double, 2>(a.view().transpose(0, 1)), b.view());
  REQUIRE(b(2, 4) == 3.0f);
  REQUIRE_THROWS_AS(attnkit::copy(TensorView<const double, 2>(a.view()), b.view()),
                    attnkit::shape_error);
  Tensor<float, 2> c(a.view());  // converting deep copy
  REQUIRE(c(4, 2) == 3.0f);
}

TEST_CASE("ATTNKIT_ASSERT guards element access in tests", "[core][view]") {
  Tensor<float, 2> t({2, 2});
  REQUIRE_THROWS_AS(t.view()(2, 0), attnkit::error);
}
