// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// MaskSpec: a parsed spec sees exactly what the AND of the mask.hpp terms sees, classifies tiles
// soundly (Empty only if nothing is visible, Full only if everything is), and a bad spec or
// array is an error that names the term.
#include <random>
#include <string>

#include <catch2/catch.hpp>

#include "attnkit/policy/mask_spec.hpp"

using namespace attnkit;
namespace pol = attnkit::policy;

namespace {

const pol::Geometry geom{2, 3, 1, 37, 101, 4, 4};  // B, Hq, Hkv, Nq, Nk, D, Dv

/// The arrays of the file-backed terms for geom.
std::map<std::string, pol::MaskArray, std::less<>> arrays(unsigned seed) {
  std::mt19937 g(seed);
  std::map<std::string, pol::MaskArray, std::less<>> a;
  a["len"] = {{geom.batch}, {0, 80}};
  pol::MaskArray keep{{geom.batch, geom.nk}, {}}, seg{{geom.batch, geom.nk}, {}};
  for (index_t n = 0; n < geom.batch * geom.nk; ++n) {
    keep.values.push_back((n / 9) % 3 != 0 ? 1 : 0);  // runs: Empty, Full and Partial tiles
    seg.values.push_back((n % geom.nk) / 30);
  }
  a["keep"] = keep;
  a["seg"] = seg;
  const index_t nbq = (geom.nq + 7) / 8, nbk = (geom.nk + 15) / 16;
  pol::MaskArray lay{{geom.batch, geom.heads_q, nbq, nbk}, {}};
  for (index_t n = 0; n < geom.batch * geom.heads_q * nbq * nbk; ++n)
    lay.values.push_back(static_cast<index_t>(g() % 2));
  a["lay"] = lay;
  return a;
}

/// visible() of the spec against `want` everywhere, and classify() soundness on random tiles.
template <class Want>
void check_spec(const std::string& spec, Want&& want) {
  INFO("spec " << spec);
  const auto arr = arrays(3);
  const pol::MaskSpec m = pol::parse_mask_spec(spec, arr).bind(geom);
  const index_t off = geom.query_offset();
  for (index_t b = 0; b < geom.batch; ++b)
    for (index_t h = 0; h < geom.heads_q; ++h)
      for (index_t i = 0; i < geom.nq; ++i)
        for (index_t j = 0; j < geom.nk; ++j)
          if (m.visible(b, h, i + off, j) != want(b, h, i, i + off, j)) {
            INFO("b=" << b << " h=" << h << " i=" << i << " j=" << j);
            REQUIRE(m.visible(b, h, i + off, j) == want(b, h, i, i + off, j));
          }
  std::mt19937 g(11);
  int empties = 0;
  for (int t = 0; t < 400; ++t) {
    const index_t b = static_cast<index_t>(g() % 2), h = static_cast<index_t>(g() % 3);
    const index_t i0 = static_cast<index_t>(g() % geom.nq);
    const index_t j0 = static_cast<index_t>(g() % geom.nk);
    const index_t i1 = std::min(geom.nq, i0 + 1 + static_cast<index_t>(g() % 40));
    const index_t j1 = std::min(geom.nk, j0 + 1 + static_cast<index_t>(g() % 40));
    index_t vis = 0;
    for (index_t i = i0; i < i1; ++i)
      for (index_t j = j0; j < j1; ++j) vis += m.visible(b, h, i + off, j) ? 1 : 0;
    const pol::TileClass c = m.classify(b, h, i0 + off, i1 + off, j0, j1);
    if (c == pol::TileClass::empty) {
      REQUIRE(vis == 0);
      ++empties;
    }
    if (c == pol::TileClass::full) REQUIRE(vis == (i1 - i0) * (j1 - j0));
  }
  if (spec != "none") CHECK(empties > 0);
}

std::string error_of(const std::string& spec) {
  try {
    pol::parse_mask_spec(spec, arrays(1)).bind(geom);
  } catch (const error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("MaskSpec: every term and '+' follow docs/CLI.md", "[policy][mask_spec]") {
  const auto arr = arrays(3);
  auto at = [&](const char* name, index_t n) {
    return arr.at(name).values[static_cast<std::size_t>(n)];
  };
  const index_t nbq = (geom.nq + 7) / 8, nbk = (geom.nk + 15) / 16;
  check_spec("none", [](index_t, index_t, index_t, index_t, index_t) { return true; });
  check_spec("causal", [](index_t, index_t, index_t, index_t ip, index_t j) { return j <= ip; });
  check_spec("causal=bottom-right",
             [](index_t, index_t, index_t, index_t ip, index_t j) { return j <= ip; });
  // Top-left: the raw row i = i' - (Nk - Nq), as PyTorch's is_causal.
  check_spec("causal=top-left",
             [](index_t, index_t, index_t i, index_t, index_t j) { return j <= i; });
  check_spec("sliding=20", [](index_t, index_t, index_t, index_t ip, index_t j) {
    return j <= ip && ip - j < 20;
  });
  check_spec("local=5", [](index_t, index_t, index_t, index_t ip, index_t j) {
    return std::abs(ip - j) <= 5;
  });
  check_spec("sinks=3,10", [](index_t, index_t, index_t, index_t ip, index_t j) {
    return j <= ip && (j < 3 || ip - j < 10);
  });
  check_spec("prefix-lm=70",
             [](index_t, index_t, index_t, index_t ip, index_t j) { return j < 70 || j <= ip; });
  check_spec("padding=len",
             [&](index_t b, index_t, index_t, index_t, index_t j) { return j < at("len", b); });
  check_spec("keep=keep", [&](index_t b, index_t, index_t, index_t, index_t j) {
    return at("keep", b * geom.nk + j) != 0;
  });
  check_spec("document=seg", [&](index_t b, index_t, index_t, index_t ip, index_t j) {
    return at("seg", b * geom.nk + ip) == at("seg", b * geom.nk + j);
  });
  check_spec("block-sparse=lay,8,16", [&](index_t b, index_t h, index_t i, index_t, index_t j) {
    return at("lay", ((b * geom.heads_q + h) * nbq + i / 8) * nbk + j / 16) != 0;
  });
  check_spec("causal+keep=keep+none", [&](index_t b, index_t, index_t, index_t ip, index_t j) {
    return j <= ip && at("keep", b * geom.nk + j) != 0;
  });
  check_spec("sliding=30+document=seg+block-sparse=lay,8,16", [&](index_t b, index_t h, index_t i,
                                                                  index_t ip, index_t j) {
    return j <= ip && ip - j < 30 && at("seg", b * geom.nk + ip) == at("seg", b * geom.nk + j) &&
           at("lay", ((b * geom.heads_q + h) * nbq + i / 8) * nbk + j / 16) != 0;
  });
  CHECK(pol::parse_mask_spec("none+none").empty());
  CHECK(pol::parse_mask_spec("causal+sinks=1,2").size() == 2);
}

TEST_CASE("MaskSpec: errors name the term and what is wrong", "[policy][mask_spec]") {
  CHECK_THAT(error_of("causal+diag"), Catch::Contains("unknown term 'diag'"));
  CHECK_THAT(error_of(""), Catch::Contains("empty"));
  CHECK_THAT(error_of("causal+"), Catch::Contains("empty term"));
  CHECK_THAT(error_of("causal+sliding=0"),
             Catch::Contains("term 'sliding=0'") && Catch::Contains("must be >= 1"));
  CHECK_THAT(error_of("sliding"), Catch::Contains("sliding=W"));
  CHECK_THAT(error_of("local=x"), Catch::Contains("must be an integer, got 'x'"));
  CHECK_THAT(error_of("sinks=4"), Catch::Contains("sinks=S,W"));
  CHECK_THAT(error_of("causal=1"), Catch::Contains("bottom-right (the default) or top-left") &&
                                       Catch::Contains("not '1'"));
  CHECK_THAT(error_of("block-sparse=lay,8"), Catch::Contains("BQ"));
  CHECK_THAT(error_of("block-sparse=lay,8,0"), Catch::Contains("BK of block-sparse"));
  CHECK_THAT(error_of("keep=nope"), Catch::Contains("no array named 'nope'"));
  CHECK_THAT(error_of("padding=keep"), Catch::Contains("rank-1"));
  CHECK_THAT(error_of("block-sparse=lay,4,16"),
             Catch::Contains("'block-sparse=lay,4,16'") && Catch::Contains("[2, 3, 10, 7]"));
  CHECK_THROWS_AS(pol::parse_mask_spec("keep=keep"), error);  // no loader
}
