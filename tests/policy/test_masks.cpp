// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Masks: visible() follows docs/CLI.md's table (the reference terms), and classify() is sound on
// random tiles (Empty only if nothing is visible, Full only if everything is) and finds Empty
// and Full tiles where the structure makes them obvious.
#include <random>

#include <catch2/catch.hpp>

#include "attnkit/policy/mask.hpp"

#include "attention/attention_test_util.hpp"

using namespace attnkit;
using namespace attnkit::test;
using pol::TileClass;

namespace {

template <class Mask>
void check_mask(const Mask& unbound, const ref::MaskTerm& term, const Problem& p, unsigned seed,
                int& empties, int& fulls) {
  const pol::Geometry geom{p.b, p.hq, p.hkv, p.nq, p.nk, p.d, p.dv};
  const Mask m = unbound.bind(geom);
  const index_t off = p.nk - p.nq;
  // visible() against the reference term for every (b, h, i, j).
  for (index_t b = 0; b < p.b; ++b)
    for (index_t h = 0; h < p.hq; ++h)
      for (index_t i = 0; i < p.nq; ++i)
        for (index_t j = 0; j < p.nk; ++j) {
          bool want;
          if (term.kind == ref::MaskTerm::block_sparse)
            want = term.ints[static_cast<std::size_t>(
                       ((b * p.hq + h) * term.nbq + i / term.a) * term.nbk + j / term.c)] != 0;
          else
            want = ref::term_visible(term, b, h, i + off, j, p.nk);
          if (m.visible(b, h, i + off, j) != want) {
            INFO("b=" << b << " h=" << h << " i=" << i << " j=" << j);
            REQUIRE(m.visible(b, h, i + off, j) == want);
          }
        }
  // classify() soundness on random tiles.
  std::mt19937 g(seed);
  for (int t = 0; t < 300; ++t) {
    const index_t b = static_cast<index_t>(g() % p.b), h = static_cast<index_t>(g() % p.hq);
    const index_t i0 = static_cast<index_t>(g() % p.nq), j0 = static_cast<index_t>(g() % p.nk);
    const index_t i1 = std::min(p.nq, i0 + 1 + static_cast<index_t>(g() % 70));
    const index_t j1 = std::min(p.nk, j0 + 1 + static_cast<index_t>(g() % 70));
    index_t vis = 0;
    for (index_t i = i0; i < i1; ++i)
      for (index_t j = j0; j < j1; ++j) vis += m.visible(b, h, i + off, j) ? 1 : 0;
    const TileClass c = m.classify(b, h, i0 + off, i1 + off, j0, j1);
    INFO("tile rows [" << i0 << ", " << i1 << ") keys [" << j0 << ", " << j1 << ") visible "
                       << vis);
    if (c == TileClass::empty) {
      REQUIRE(vis == 0);
      ++empties;
    }
    if (c == TileClass::full) {
      REQUIRE(vis == (i1 - i0) * (j1 - j0));
      ++fulls;
    }
  }
}

}  // namespace

TEST_CASE("masks: visible() follows docs/CLI.md and classify() is sound", "[policy][mask]") {
  for (const Problem& p : problems()) {
    MaskStore st;
    for_each_mask(p, st, 5, [&](auto mask, const ref::MaskTerm& term, const std::string& name) {
      INFO(p.str() << " mask " << name);
      int e = 0, f = 0;
      check_mask(mask, term, p, 17, e, f);
    });
  }
}

TEST_CASE("masks: classify() finds Empty and Full tiles", "[policy][mask]") {
  const pol::Causal c;
  CHECK(c.classify(0, 0, 0, 64, 64, 128) == TileClass::empty);
  CHECK(c.classify(0, 0, 64, 128, 0, 64) == TileClass::full);
  CHECK(c.classify(0, 0, 0, 64, 0, 64) == TileClass::partial);
  const pol::SlidingWindow s(256);
  CHECK(s.classify(0, 0, 1000, 1064, 0, 64) == TileClass::empty);
  CHECK(s.classify(0, 0, 1000, 1064, 900, 936) == TileClass::full);
  const pol::Sinks k(4, 252);
  CHECK(k.classify(0, 0, 1000, 1064, 0, 4) == TileClass::full);
  CHECK(k.classify(0, 0, 1000, 1064, 64, 128) == TileClass::empty);
  std::vector<std::uint8_t> flags(256, 0);
  for (int j = 64; j < 128; ++j) flags[std::size_t(j)] = 1;
  const pol::KeepMask keep(TensorView<const std::uint8_t, 2>(flags.data(), {1, 256}));
  CHECK(keep.classify(0, 0, 0, 64, 0, 64) == TileClass::empty);
  CHECK(keep.classify(0, 0, 0, 64, 64, 128) == TileClass::full);
  CHECK(keep.classify(0, 0, 0, 64, 100, 140) == TileClass::partial);
  std::vector<index_t> seg(256);
  for (int j = 0; j < 256; ++j) seg[std::size_t(j)] = j / 100;
  const pol::Document doc(TensorView<const index_t, 2>(seg.data(), {1, 256}));
  CHECK(doc.classify(0, 0, 0, 64, 0, 64) == TileClass::full);
  CHECK(doc.classify(0, 0, 0, 64, 128, 192) == TileClass::empty);
  CHECK(doc.classify(0, 0, 0, 64, 64, 128) == TileClass::partial);
  const pol::KeyPadding pad({std::vector<index_t>{70}});
  CHECK(pad.classify(0, 0, 0, 64, 0, 64) == TileClass::full);
  CHECK(pad.classify(0, 0, 0, 64, 64, 128) == TileClass::partial);
  CHECK(pad.classify(0, 0, 0, 64, 128, 192) == TileClass::empty);
  const auto both = pol::And(pol::Causal{}, keep);
  CHECK(both.classify(0, 0, 0, 64, 64, 128) == TileClass::empty);
  CHECK(both.classify(0, 0, 128, 192, 64, 128) == TileClass::full);
  const auto either = pol::Or(pol::Causal{}, keep);
  CHECK(either.classify(0, 0, 0, 64, 64, 128) == TileClass::full);
  CHECK(either.classify(0, 0, 0, 64, 192, 256) == TileClass::empty);
}

TEST_CASE("activations: scalar maps follow docs/CLI.md", "[policy][activation]") {
  CHECK(pol::Sigmoid{}.map(0.0) == 0.5);
  const pol::Geometry g{1, 1, 1, 4, 100, 8, 8};
  CHECK(pol::SigmoidBias{}.bind(g).bias == Approx(-std::log(100.0)));
  CHECK(pol::SigmoidBias(0.5).bind(g).bias == 0.5);
  CHECK(pol::Softcap(2.0).map(100.0) == Approx(2.0));
  CHECK(pol::ReLU{}.map(-3.0) == 0.0);
  CHECK(pol::Linear{}.map(-3.0) == -3.0);
  CHECK_THROWS_AS(pol::Softcap(0.0), error);
  CHECK_THROWS_AS(pol::SlidingWindow(0), error);
}

namespace {
// The ALiBi paper's reference get_slopes(n), written as that code reads (recursive for a head
// count that is not a power of two), independent of the library's formula.
std::vector<double> paper_slopes(int n) {
  auto power_of_2 = [](int m) {
    const double start = std::pow(2.0, -std::pow(2.0, -(std::log2(double(m)) - 3.0)));
    std::vector<double> out;
    for (int i = 0; i < m; ++i) out.push_back(start * std::pow(start, double(i)));
    return out;
  };
  if (std::log2(double(n)) == std::floor(std::log2(double(n)))) return power_of_2(n);
  const int closest = 1 << int(std::floor(std::log2(double(n))));
  std::vector<double> out = power_of_2(closest);
  const std::vector<double> twice = paper_slopes(2 * closest);
  for (int i = 0; int(out.size()) < n; i += 2) out.push_back(twice[std::size_t(i)]);
  return out;
}
}  // namespace

TEST_CASE("ALiBi::standard follows the ALiBi paper's slopes for every head count",
          "[policy][alibi]") {
  for (int n = 1; n <= 40; ++n) {
    INFO("heads " << n);
    const std::vector<double> want = paper_slopes(n);
    const std::vector<double> got = pol::ALiBi::standard(n).slopes;
    REQUIRE(got.size() == want.size());
    for (std::size_t h = 0; h < want.size(); ++h) CHECK(got[h] == Approx(want[h]).epsilon(1e-14));
  }
  // Hugging Face's (BLOOM) values for 12 heads: 2^-1 .. 2^-8, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
  const std::vector<double> s12 = pol::ALiBi::standard(12).slopes;
  CHECK(s12[7] == Approx(std::pow(2.0, -8.0)));
  CHECK(s12[8] == Approx(std::pow(2.0, -0.5)));
  CHECK(s12[11] == Approx(std::pow(2.0, -3.5)));
  // An unbound ALiBi takes the call's head count.
  const pol::Geometry g{1, 6, 6, 4, 4, 8, 8};
  CHECK(pol::ALiBi{}.bind(g).slopes == paper_slopes(6));
  CHECK_THROWS_AS(pol::ALiBi::standard(0), error);
}
