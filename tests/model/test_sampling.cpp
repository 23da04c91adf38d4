// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Logits processors and samplers on hand-computed logits: the top-k and top-p sets (ties),
// temperature, repetition penalty, banned tokens, chaining, greedy choice, and seeded sampling
// (reproducible, seed-dependent, the right frequencies).
#include <cmath>
#include <limits>
#include <map>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/model/sampling.hpp"

namespace mdl = attnkit::model;
using attnkit::index_t;

namespace {
constexpr float ninf = -std::numeric_limits<float>::infinity();

std::vector<float> run(const auto& proc, std::vector<float> l, std::vector<std::int64_t> ctx = {}) {
  proc(std::span<float>(l), std::span<const std::int64_t>(ctx));
  return l;
}

/// The ids whose logit is still finite.
std::vector<int> alive(const std::vector<float>& l) {
  std::vector<int> a;
  for (std::size_t i = 0; i < l.size(); ++i)
    if (l[i] != ninf) a.push_back(static_cast<int>(i));
  return a;
}
}  // namespace

TEST_CASE("sampling: top-k keeps the k largest (ties: lower id)", "[model][sampling]") {
  const std::vector<float> l{1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 2.0f};
  CHECK(alive(run(mdl::TopK{1}, l)) == std::vector<int>{1});
  CHECK(alive(run(mdl::TopK{2}, l)) == std::vector<int>{1, 3});
  CHECK(alive(run(mdl::TopK{3}, l)) == std::vector<int>{1, 2, 3});
  CHECK(alive(run(mdl::TopK{0}, l)).size() == 6);
  CHECK(alive(run(mdl::TopK{10}, l)).size() == 6);
  CHECK(run(mdl::TopK{3}, l)[2] == 2.0f);  // kept logits are unchanged
}

TEST_CASE("sampling: top-p keeps the smallest most probable set reaching p", "[model][sampling]") {
  // Probabilities 0.5, 0.25, 0.125, 0.125 (logits are their natural logs).
  const std::vector<float> l{std::log(0.125f), std::log(0.5f), std::log(0.125f), std::log(0.25f)};
  CHECK(alive(run(mdl::TopP{0.3}, l)) == std::vector<int>{1});
  CHECK(alive(run(mdl::TopP{0.45}, l)) == std::vector<int>{1});
  CHECK(alive(run(mdl::TopP{0.6}, l)) == std::vector<int>{1, 3});
  CHECK(alive(run(mdl::TopP{0.8}, l)) == std::vector<int>{0, 1, 3});  // tie 0/2: lower id
  CHECK(alive(run(mdl::TopP{0.9}, l)) == std::vector<int>{0, 1, 2, 3});
  CHECK(alive(run(mdl::TopP{1.0}, l)).size() == 4);
  CHECK(alive(run(mdl::TopP{1e-9}, l)) == std::vector<int>{1});
}

TEST_CASE("sampling: temperature, repetition penalty, banned tokens", "[model][sampling]") {
  CHECK(run(mdl::Temperature{2.0}, {4.0f, -1.0f}) == std::vector<float>{2.0f, -0.5f});
  CHECK(run(mdl::Temperature{1.0}, {4.0f, -1.0f}) == std::vector<float>{4.0f, -1.0f});
  // CTRL: positive logits of seen tokens divided by the penalty, negative ones multiplied.
  CHECK(run(mdl::RepetitionPenalty{2.0}, {4.0f, -1.0f, 3.0f, 0.0f}, {0, 1, 1, 3, 99}) ==
        std::vector<float>{2.0f, -2.0f, 3.0f, 0.0f});
  CHECK(run(mdl::RepetitionPenalty{1.0}, {4.0f}, {0}) == std::vector<float>{4.0f});
  const auto b = run(mdl::BannedTokens{{2, 0, 7, -1}}, {1.0f, 2.0f, 3.0f});
  CHECK(alive(b) == std::vector<int>{1});
  CHECK_THROWS_AS(run(mdl::Temperature{0.0}, {1.0f, 2.0f}), attnkit::error);
}

TEST_CASE("sampling: chains apply in order; greedy picks the first maximum", "[model][sampling]") {
  // Penalty first (token 0 seen: 5 -> 2.5), then the ban, then top-k 1 of what is left.
  const auto c = mdl::chain(mdl::RepetitionPenalty{2.0}, mdl::BannedTokens{{1}}, mdl::TopK{1});
  const auto l = run(c, {5.0f, 4.5f, 3.0f, 1.0f}, {0});
  CHECK(alive(l) == std::vector<int>{2});
  CHECK(mdl::argmax(std::vector<float>{1.0f, 3.0f, 3.0f}) == 1);
  CHECK_THROWS_WITH(mdl::argmax(std::vector<float>{ninf, ninf}), Catch::Contains("no token left"));
  mdl::Sampler<> greedy;
  std::get<mdl::BannedTokens>(greedy.processors.steps).ids = {1};
  const std::vector<double> ld{0.0, 9.0, 8.0};
  CHECK(greedy.next(std::span<const double>(ld)) == 2);
}

TEST_CASE("sampling: seeded sampling is reproducible and follows the distribution",
          "[model][sampling]") {
  const std::vector<float> l{std::log(0.2f), std::log(0.5f), std::log(0.3f), ninf};
  auto draw = [&](std::uint64_t seed, int n) {
    mdl::Sampler<> s;
    s.greedy = false;
    s.seed(seed);
    std::vector<std::int64_t> out;
    for (int i = 0; i < n; ++i) out.push_back(s.next(std::span<const float>(l)));
    return out;
  };
  CHECK(draw(7, 50) == draw(7, 50));
  CHECK(draw(7, 50) != draw(8, 50));
  std::map<std::int64_t, int> count;
  for (std::int64_t id : draw(1, 20000)) ++count[id];
  CHECK(count[3] == 0);  // -inf never comes out
  CHECK(count[0] / 20000.0 == Approx(0.2).margin(0.015));
  CHECK(count[1] / 20000.0 == Approx(0.5).margin(0.015));
  CHECK(count[2] / 20000.0 == Approx(0.3).margin(0.015));
  // The first draw of seed 0, by hand: u = (rng() >> 11) · 2^-53; tokens walked 1, 2, 0.
  std::mt19937_64 g(0);
  const double u = static_cast<double>(g() >> 11) * 0x1.0p-53;
  const std::int64_t want = u < 0.5 ? 1 : (u < 0.8 ? 2 : 0);
  CHECK(draw(0, 1)[0] == want);
  // Top-k 1 under any temperature is the greedy choice.
  mdl::Sampler<> k1;
  k1.greedy = false;
  std::get<mdl::Temperature>(k1.processors.steps).value = 3.0;
  std::get<mdl::TopK>(k1.processors.steps).k = 1;
  for (int i = 0; i < 20; ++i) CHECK(k1.next(std::span<const float>(l)) == 1);
}
