// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Error messages start with "attnkit:" and name both shapes and the argument.
#include <catch2/catch.hpp>

#include "attnkit/core/error.hpp"
#include "attnkit/core/shape.hpp"

TEST_CASE("shape_error names the argument and both shapes", "[core][error]") {
  try {
    attnkit::throw_shape_mismatch("attention", "k", attnkit::Shape<4>{1, 2, 3, 4},
                                  attnkit::Shape<4>{1, 2, 3, 5});
    FAIL("no throw");
  } catch (const attnkit::shape_error& e) {
    REQUIRE(std::string(e.what()) ==
            "attnkit: attention: k has shape [1, 2, 3, 4], expected [1, 2, 3, 5]");
  }
}

TEST_CASE("error adds the prefix once", "[core][error]") {
  REQUIRE(std::string(attnkit::error("bad").what()) == "attnkit: bad");
  REQUIRE(std::string(attnkit::error("attnkit: bad").what()) == "attnkit: bad");
  const attnkit::shape_error se("x");
  const attnkit::error& base = se;  // shape_error is an error
  REQUIRE(std::string(base.what()) == "attnkit: x");
}
