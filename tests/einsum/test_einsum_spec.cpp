// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// einsum: spec parsing (at compile time and at run time) and the runtime errors.
#include <string>

#include "einsum_test_util.hpp"

using namespace einsum_test;
using attnkit::EinsumSpecErrorKind;
using attnkit::parse_einsum_spec_nothrow;

// The parser runs at compile time.
static_assert(parse_einsum_spec_nothrow("ij,jk->ik").ok());
static_assert(parse_einsum_spec_nothrow("ij,jk->ik").num_inputs == 2);
static_assert(parse_einsum_spec_nothrow("ij,jk").output.view() == "ik");
static_assert(parse_einsum_spec_nothrow("ba,ca").output.view() == "bc");
static_assert(parse_einsum_spec_nothrow("aB,Bc").output.view() == "ac");
static_assert(parse_einsum_spec_nothrow("bA").output.view() == "Ab");
static_assert(parse_einsum_spec_nothrow("ii").output.view().empty());
static_assert(parse_einsum_spec_nothrow("...ij,...jk").output.view() == ".ik");
static_assert(parse_einsum_spec_nothrow("i...j->j").inputs[0].has_ellipsis);
static_assert(parse_einsum_spec_nothrow("ij,jk-ik").error ==
              EinsumSpecErrorKind::arrow_without_greater);
static_assert(parse_einsum_spec_nothrow("ij,jk-ik").error_position == 5);

namespace {

struct BadSpec {
  const char* spec;
  EinsumSpecErrorKind kind;
  std::size_t position;
  char character;
};

}  // namespace

TEST_CASE("einsum spec errors name the character and its position", "[einsum][spec]") {
  using K = EinsumSpecErrorKind;
  const BadSpec cases[] = {
      {"ij,j1->i", K::invalid_character, 4, '1'},
      {"ij,jk->i_", K::invalid_character, 8, '_'},
      {"i.j->i", K::incomplete_ellipsis, 1, '.'},
      {"i..", K::incomplete_ellipsis, 1, '.'},
      {"...i...->i", K::second_ellipsis, 4, '.'},
      {"ij,jk-ik", K::arrow_without_greater, 5, '-'},
      {"ij-", K::arrow_without_greater, 2, '-'},
      {"ij>i", K::greater_without_arrow, 2, '>'},
      {"ij->i->j", K::second_arrow, 5, '-'},
      {"ij,jk->i,k", K::comma_in_output, 8, ','},
      {"ij,jk->ii", K::repeated_output_index, 8, 'i'},
      {"ij,jk->iz", K::output_index_not_in_inputs, 8, 'z'},
      {"ij->...i", K::output_ellipsis_not_in_inputs, 4, '.'},
  };
  for (const auto& c : cases) {
    INFO("spec " << c.spec);
    const auto s = parse_einsum_spec_nothrow(c.spec);
    REQUIRE(s.error == c.kind);
    REQUIRE(s.error_position == c.position);
    REQUIRE(s.error_character == c.character);
    // The runtime form throws a message with the spec, the character and the position.
    Tensor<float, 2> out({2, 2});
    const auto a = random_tensor<float, 2>({2, 2});
    const std::string expected =
        std::string("'") + c.character + "' at position " + std::to_string(c.position);
    REQUIRE_THROWS_AS(attnkit::einsum(c.spec, out, {a, a}), attnkit::einsum_spec_error);
    REQUIRE_THROWS_WITH(attnkit::einsum(c.spec, out, {a, a}),
                        Catch::StartsWith(std::string("attnkit: einsum spec '") + c.spec) &&
                            Catch::Contains(expected));
    REQUIRE_THROWS_AS(attnkit::EinsumPlan<double>::make(c.spec, Shape<2>{2, 2}),
                      attnkit::einsum_spec_error);
  }
}

TEST_CASE("einsum spec limits", "[einsum][spec]") {
  std::string many = "i";
  for (int i = 0; i < 32; ++i) many += ",i";
  REQUIRE(parse_einsum_spec_nothrow(many).error == EinsumSpecErrorKind::too_many_operands);
  REQUIRE(parse_einsum_spec_nothrow(many).error_position == 63);  // the 32nd comma
  const std::string long_term(65, 'a');
  REQUIRE(parse_einsum_spec_nothrow(long_term).error == EinsumSpecErrorKind::too_many_subscripts);
  REQUIRE(parse_einsum_spec_nothrow(long_term).error_position == 64);
  REQUIRE(parse_einsum_spec_nothrow(std::string(64, 'a')).ok());
}

TEST_CASE("einsum shape errors name the index, the operands and the extents", "[einsum][errors]") {
  const auto a = random_tensor<float, 2>({3, 4});
  const auto b = random_tensor<float, 2>({5, 6});
  Tensor<float, 2> out({3, 6});
  REQUIRE_THROWS_AS(attnkit::einsum("ij,jk->ik", out, {a, b}), attnkit::shape_error);
  REQUIRE_THROWS_WITH(
      attnkit::einsum("ij,jk->ik", out, {a, b}),
      "attnkit: einsum 'ij,jk->ik': index 'j' has extent 4 in operand 0 (shape [3, 4]) but 5 "
      "in operand 1 (shape [5, 6])");
  REQUIRE_THROWS_AS(attnkit::einsum<"ij,jk->ik">(out, a, b), attnkit::shape_error);
  // Diagonal of a non-square matrix.
  Tensor<float, 1> d({3});
  REQUIRE_THROWS_WITH(attnkit::einsum("ii->i", d, {a}),
                      Catch::Contains("index 'i' has extent 3 in operand 0") &&
                          Catch::Contains("but 4 in operand 0"));
  // Broadcast dimensions that do not broadcast.
  const auto x = random_tensor<float, 3>({2, 3, 4});
  const auto y = random_tensor<float, 3>({5, 4, 2});
  Tensor<float, 3> z({2, 3, 2});
  REQUIRE_THROWS_WITH(attnkit::einsum("...ij,...jk->...ik", z, {x, y}),
                      Catch::Contains("index '...' dimension 0 has extent 2 in operand 0"));
  // The output's shape.
  Tensor<float, 2> wrong({3, 5});
  const auto c = random_tensor<float, 2>({4, 6});
  REQUIRE_THROWS_WITH(attnkit::einsum("ij,jk->ik", wrong, {a, c}),
                      "attnkit: einsum 'ij,jk->ik': output has shape [3, 5], expected [3, 6]");
  REQUIRE_THROWS_WITH(attnkit::einsum<"ij,jk->ik">(wrong, a, c),
                      "attnkit: einsum 'ij,jk->ik': output has shape [3, 5], expected [3, 6]");
  // Ranks that do not fit the subscripts (runtime form and a StridedView of any rank).
  REQUIRE_THROWS_WITH(attnkit::einsum("ijk,jk->ik", out, {a, c}),
                      Catch::Contains("operand 0 has shape [3, 4] but its subscripts 'ijk' need "
                                      "rank 3"));
  REQUIRE_THROWS_WITH(attnkit::einsum<"...ijk,jk->ik">(out, StridedView<const float>(a), c),
                      Catch::Contains("need rank at least 3"));
}

TEST_CASE("einsum with the wrong number of operands is a clear error", "[einsum][errors]") {
  const auto a = random_tensor<double, 2>({3, 4});
  Tensor<double, 2> out({3, 3});
  REQUIRE_THROWS_AS(attnkit::einsum("ij,jk->ik", out, {a}), attnkit::shape_error);
  REQUIRE_THROWS_WITH(attnkit::einsum("ij,jk->ik", out, {a}),
                      "attnkit: einsum 'ij,jk->ik': the spec has 2 operand(s), got 1");
  REQUIRE_THROWS_WITH(attnkit::einsum("ij->ji", out, {a, a}),
                      "attnkit: einsum 'ij->ji': the spec has 1 operand(s), got 2");
  const auto plan = attnkit::EinsumPlan<double>::make("ij,kj->ik", a.shape(), a.shape());
  REQUIRE_THROWS_WITH(plan.run(out, {a}), Catch::Contains("the spec has 2 operand(s), got 1"));
  const auto other = random_tensor<double, 2>({3, 5});
  REQUIRE_THROWS_WITH(plan.run(out, {a, other}),
                      Catch::Contains("operand 1 has shape [3, 5], the plan was made for [3, 4]"));
  REQUIRE_THROWS_AS(attnkit::EinsumPlan<double>::make("ij,jk->ik", {a.shape()}),
                    attnkit::shape_error);
}

TEST_CASE("einsum of empty extents gives an empty or zero result", "[einsum][empty]") {
  Tensor<float, 2> a({3, 0}), b({0, 4});
  Tensor<float, 2> out({3, 4}, std::numeric_limits<float>::quiet_NaN());
  attnkit::einsum<"ij,jk->ik">(out, a, b);
  for (float v : out) REQUIRE(v == 0.0f);
  Tensor<float, 2> e({0, 4});
  attnkit::einsum<"ij,jk->ik">(e, Tensor<float, 2>({0, 5}), Tensor<float, 2>({5, 4}));
  float s = 1.0f;
  attnkit::einsum<"ij->">(s, a);
  REQUIRE(s == 0.0f);
}
