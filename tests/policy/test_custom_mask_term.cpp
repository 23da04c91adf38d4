// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A user-defined mask term registered in a user's own list (extend_mask_terms): parsed from a
// spec string beside the built-in terms, listed in the help and the messages, its errors naming
// the term, and attention() through the runtime spec against the double reference.
#include <string>

#include "attnkit/policy/mask_spec.hpp"

#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;

namespace {

/// "stride=K": key j is visible when j is a multiple of K or j = i' (a strided summary plus
/// the row itself). Tiles: Full only when K = 1; never Empty (key 0 is always visible, but
/// only a tile holding a multiple of K or the diagonal sees anything).
struct Strided {
  static constexpr std::string_view spec_name = "stride";
  static constexpr std::string_view spec_form = "stride=K";
  static constexpr std::string_view spec_help = "j % K == 0 or j == i' (K >= 1)";
  template <class Args>
  static Strided from_spec(Args& a) {
    return Strided{a.integer(a.value(), "K", 1)};
  }
  index_t k = 1;
  bool visible(index_t, index_t, index_t i, index_t j) const noexcept {
    return j % k == 0 || j == i;
  }
  pol::TileClass classify(index_t, index_t, index_t i0, index_t i1, index_t j0,
                          index_t j1) const noexcept {
    if (k == 1) return pol::TileClass::full;
    const bool has_multiple = (j0 + k - 1) / k * k < j1;
    const bool has_diagonal = std::max(i0, j0) < std::min(i1, j1);
    return has_multiple || has_diagonal ? pol::TileClass::partial : pol::TileClass::empty;
  }
  Strided bind(const pol::Geometry&) const noexcept { return *this; }
};

using my_terms = pol::extend_mask_terms<pol::builtin_mask_terms, Strided>;

std::string error_of(const std::string& spec) {
  try {
    pol::parse_mask_spec<my_terms>(spec);
  } catch (const error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("a user's mask term: parsed beside the built-ins, errors name it",
          "[policy][mask_spec][extending]") {
  const auto m = pol::parse_mask_spec<my_terms>("causal+stride=5+none");
  REQUIRE(m.size() == 2);
  CHECK(m.text(1) == "stride=5");
  for (index_t i = 0; i < 40; ++i)
    for (index_t j = 0; j < 40; ++j) {
      INFO("i'=" << i << " j=" << j);
      CHECK(m.visible(0, 0, i, j) == (j <= i && (j % 5 == 0 || j == i)));
    }
  CHECK(pol::mask_term_forms<my_terms>().ends_with("block-sparse=FILE,BQ,BK, stride=K"));
  CHECK_THAT(pol::mask_term_help<my_terms>(),
             Catch::Contains("stride=K") && Catch::Contains("j % K == 0 or j == i'"));
  CHECK_THAT(error_of("stride=0"),
             Catch::Contains("term 'stride=0'") || Catch::Contains("mask spec 'stride=0'"));
  CHECK_THAT(error_of("stride=0"), Catch::Contains("K of stride=K must be >= 1, got 0"));
  CHECK_THAT(error_of("causal+stride"), Catch::Contains("needs a value, as in stride=K"));
  CHECK_THAT(error_of("strides=2"),
             Catch::Contains("unknown term 'strides'") && Catch::Contains("stride=K"));
  // The built-in list does not know the user's term.
  CHECK_THROWS_WITH(pol::parse_mask_spec("stride=2"), Catch::Contains("unknown term 'stride'"));
}

TEST_CASE("a user's mask term: attention() through the runtime spec", "[attention][extending]") {
  const auto ps = problems();
  for (std::size_t pi : {0u, 2u, 3u, 5u, 8u}) {
    for (index_t k : {1, 3, 64}) {
      const std::string text = "causal+stride=" + std::to_string(k);
      const auto spec_mask = pol::parse_mask_spec<my_terms>(text);
      ref::Spec spec;
      spec.activation = "softmax";
      ref::MaskTerm custom(ref::MaskTerm::custom);
      custom.predicate = [k](index_t, index_t, index_t ip, index_t j) {
        return j % k == 0 || j == ip;
      };
      spec.terms = {ref::MaskTerm{ref::MaskTerm::causal}, custom};
      INFO(text << ", " << ps[pi].str());
      check<float>(pol::AttentionPolicy(pol::Softmax{}, spec_mask), spec, ps[pi],
                   700 + static_cast<unsigned>(pi), pi % 2 == 0);
      spec.activation = "sigmoid";
      check<double>(pol::AttentionPolicy(pol::Sigmoid{}, spec_mask), spec, ps[pi],
                    710 + static_cast<unsigned>(pi));
    }
  }
}
