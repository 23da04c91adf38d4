// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Shape helpers: element counts, strides, contiguity.
#include <limits>

#include <catch2/catch.hpp>

#include "attnkit/core/shape.hpp"

using attnkit::Shape;
using attnkit::Strides;

TEST_CASE("numel counts and rejects bad shapes", "[core][shape]") {
  REQUIRE(attnkit::numel(Shape<3>{2, 3, 4}) == 24);
  REQUIRE(attnkit::numel(Shape<2>{0, 9}) == 0);
  REQUIRE_THROWS_AS(attnkit::numel(Shape<2>{-1, 3}), attnkit::error);
  constexpr auto big = std::numeric_limits<attnkit::index_t>::max() / 2;
  REQUIRE_THROWS_WITH(attnkit::numel(Shape<2>{big, 3}), Catch::Contains("too many elements"));
}

TEST_CASE("contiguous strides and contiguity", "[core][shape]") {
  REQUIRE(attnkit::contiguous_strides(Shape<3>{2, 3, 4}) == Strides<3>{12, 4, 1});
  REQUIRE(attnkit::is_contiguous(Shape<3>{2, 3, 4}, Strides<3>{12, 4, 1}));
  REQUIRE_FALSE(attnkit::is_contiguous(Shape<3>{2, 3, 4}, Strides<3>{24, 8, 2}));
  // extent-1 dimensions may have any stride
  REQUIRE(attnkit::is_contiguous(Shape<3>{2, 1, 4}, Strides<3>{4, 999, 1}));
  REQUIRE(attnkit::is_contiguous(Shape<2>{0, 4}, Strides<2>{7, 3}));
}
