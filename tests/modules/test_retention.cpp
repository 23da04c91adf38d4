// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The Ebbinghaus retention cache: retention, reinforcement and forgetting on
// hand-computed steps (weights injected through the attend callback), soft-delete's scaled keys,
// the dynamic threshold, and sparse mode's output against attention with the explicit KeepMask
// of the tokens it kept (double precision, real weights captured by the decode kernel).
#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <utility>
#include <vector>

#include "memory_test_util.hpp"
using namespace memory_test;

namespace {

/// Drives a retention cache with 1 kv head of dimension 2 and 2 query heads; the weights of each
/// decode step come from a map position -> head-mean weight (head 0 gets +0.05, head 1 -0.05).
struct Driver {
  attnkit::modules::KVCache<double> cache;
  index_t next = 0;
  std::vector<std::vector<double>> seen_keys;  // keys passed to attend at the last call

  explicit Driver(attnkit::modules::RetentionCache p) : cache(p) {}

  void call(index_t n, const std::map<index_t, double>& w = {}) {
    Tensor<double, 4> k({1, 1, n, 2}), v({1, 1, n, 2});
    for (index_t r = 0; r < n; ++r) {
      k(0, 0, r, 0) = double(next + r + 1);
      k(0, 0, r, 1) = 0.5;
      v(0, 0, r, 0) = 1.0;
    }
    const auto pos = iota(n, next);
    cache.step(k.cview(), v.cview(), pos, nullptr, 2,
               [&](index_t r0, index_t r1, attnkit::TensorView<const double, 4> keys,
                   attnkit::TensorView<const double, 4>, attnkit::TensorView<double, 4> probs) {
                 REQUIRE(r0 == 0);
                 REQUIRE(r1 == n);
                 seen_keys.assign(static_cast<std::size_t>(keys.extent(2)), {});
                 for (index_t j = 0; j < keys.extent(2); ++j)
                   seen_keys[static_cast<std::size_t>(j)] = {keys(0, 0, j, 0), keys(0, 0, j, 1)};
                 REQUIRE(probs.empty() == (n != 1));
                 if (probs.empty()) return;
                 for (index_t j = 0; j < probs.extent(3); ++j) {
                   const auto it = w.find(cache.position(j));
                   const double m = it == w.end() ? 0.0 : it->second;
                   probs(0, 0, 0, j) = m + 0.05;
                   probs(0, 1, 0, j) = m - 0.05;
                 }
               });
    next += n;
  }

  /// Held slot of a position (-1 when not held).
  index_t slot(index_t position) const {
    for (index_t j = 0; j < cache.length(); ++j)
      if (cache.position(j) == position) return j;
    return -1;
  }
  double retention(index_t position) const { return cache.retention(slot(position)); }
  double strength(index_t position) const { return cache.strength(slot(position)); }
};

attnkit::modules::RetentionParams hand_params() {
  attnkit::modules::RetentionParams p;
  p.initial_strength = 2.0;
  p.time_per_step = 1.0;
  p.reinforce_threshold = 0.3;
  p.strength_gain = 3.0;
  p.forget_threshold = 0.2;
  return p;
}

}  // namespace

TEST_CASE("retention: R = exp(-dt/S), reinforcement and forgetting on hand-computed steps",
          "[model][memory]") {
  Driver dr(attnkit::modules::RetentionCache{attnkit::modules::MemoryMode::sparse, hand_params()});
  // Step 0: the prompt (3 tokens) enters at S = 2, last = 0; a prefill reinforces nothing.
  dr.call(3);
  CHECK(dr.cache.length() == 3);
  for (index_t p = 0; p < 3; ++p) {
    CHECK(dr.strength(p) == 2.0);
    CHECK(dr.retention(p) == 1.0);
  }
  // Step 1: R(0..2) = exp(-1/2) >= 0.2, all kept; weights reinforce 0 (0.5) and 3 (0.31).
  dr.call(1, {{0, 0.5}, {1, 0.1}, {2, 0.1}, {3, 0.31}});
  CHECK(dr.cache.length() == 4);
  CHECK(dr.strength(0) == 5.0);
  CHECK(dr.strength(1) == 2.0);
  CHECK(dr.strength(3) == 5.0);
  CHECK(dr.retention(0) == 1.0);
  CHECK(dr.retention(1) == Approx(std::exp(-1.0 / 2.0)).epsilon(1e-15));
  CHECK(dr.retention(2) == Approx(std::exp(-1.0 / 2.0)).epsilon(1e-15));
  // Step 2: 2 and the new 4 reinforced.
  dr.call(1, {{0, 0.1}, {1, 0.05}, {2, 0.4}, {3, 0.05}, {4, 0.4}});
  CHECK(dr.cache.last_reinforced(dr.slot(2)) == 2);
  CHECK(dr.retention(0) == Approx(std::exp(-1.0 / 5.0)).epsilon(1e-15));
  CHECK(dr.retention(1) == Approx(std::exp(-2.0 / 2.0)).epsilon(1e-15));
  // Step 3: nothing reinforced; R(1) = exp(-3/2) = 0.223 >= 0.2 still held.
  dr.call(1, {{0, 0.2}, {1, 0.2}, {2, 0.2}, {3, 0.1}, {4, 0.1}, {5, 0.2}});
  CHECK(dr.slot(1) >= 0);
  CHECK(dr.retention(1) == Approx(std::exp(-3.0 / 2.0)).epsilon(1e-15));
  CHECK(dr.cache.evicted() == 0);
  // Step 4: R(1) = exp(-4/2) = 0.135 < 0.2: forgotten before the attention; 6 reinforced.
  dr.call(1, {{6, 0.5}});
  CHECK(dr.slot(1) == -1);
  CHECK(dr.seen_keys.size() == 6);  // the attention saw 0, 2, 3, 4, 5, 6
  CHECK(dr.cache.evicted() == 1);
  CHECK(dr.cache.length() == 6);
  const double want[] = {std::exp(-3.0 / 5.0), std::exp(-2.0 / 5.0), std::exp(-3.0 / 5.0),
                         std::exp(-2.0 / 5.0), std::exp(-1.0 / 2.0), 1.0};
  const index_t held[] = {0, 2, 3, 4, 5, 6};
  double mean = 0;
  for (int i = 0; i < 6; ++i) {
    CHECK(dr.retention(held[i]) == Approx(want[i]).epsilon(1e-15));
    mean += want[i] / 6;
  }
  CHECK(dr.strength(6) == 5.0);
  const attnkit::modules::CacheStats st = dr.cache.stats();
  CHECK(st.memory_tokens == 6);
  CHECK(st.seen == 7);
  CHECK(st.mean_retention == Approx(mean).epsilon(1e-14));
  CHECK(st.sparsity == Approx(1.0 / 7.0).epsilon(1e-15));
  // Retention at a later step follows the same formula.
  CHECK(dr.cache.retention(dr.slot(5), 9) == Approx(std::exp(-6.0 / 2.0)).epsilon(1e-15));
}

TEST_CASE("retention: soft-delete scales the keys by R and drops nothing", "[model][memory]") {
  Driver dr(
      attnkit::modules::RetentionCache{attnkit::modules::MemoryMode::soft_delete, hand_params()});
  dr.call(3);
  for (int s = 0; s < 6; ++s) dr.call(1, {{0, 0.9}});
  // Step 6: 0 was reinforced at every step (R = 1); 1 and 2 decayed for 6 steps at S = 2.
  CHECK(dr.cache.length() == 9);
  CHECK(dr.cache.evicted() == 0);
  CHECK(dr.strength(0) == 2.0 + 6 * 3.0);
  // 0 was last reinforced at step 5 with S = 2 + 5 · 3 = 17.
  CHECK(dr.seen_keys[static_cast<std::size_t>(dr.slot(0))][0] ==
        Approx(std::exp(-1.0 / 17.0)).epsilon(1e-15));
  const double r1 = std::exp(-6.0 / 2.0);
  CHECK(dr.seen_keys[static_cast<std::size_t>(dr.slot(1))][0] == Approx(2.0 * r1).epsilon(1e-15));
  CHECK(dr.seen_keys[static_cast<std::size_t>(dr.slot(2))][1] == Approx(0.5 * r1).epsilon(1e-15));
  CHECK(dr.cache.keys()(0, 0, dr.slot(1), 0) == 2.0);  // the cache keeps the unscaled key
  CHECK(dr.cache.stats().sparsity == 0.0);
  CHECK(dr.cache.stats().mean_retention < 1.0);
}

TEST_CASE("retention: the dynamic threshold keeps a target fraction, the most retained",
          "[model][memory]") {
  attnkit::modules::RetentionParams p = hand_params();
  p.keep_fraction = 0.5;
  p.reinforce_threshold = 0.95;  // only the head-mean weight 1 reinforces
  Driver dr(attnkit::modules::RetentionCache{attnkit::modules::MemoryMode::sparse, p});
  dr.call(4);
  for (int s = 0; s < 9; ++s) {
    // Token 3 is always attended, so always the most retained (at the first step all four
    // prompt tokens tie and the two older ones go).
    dr.call(1, {{3, 1.0}});
    const index_t seen = dr.cache.seen();
    INFO("step " << dr.cache.steps());
    CHECK(dr.cache.length() == (seen + 1) / 2);
    CHECK(dr.slot(3) >= 0);
    // Besides token 3, the newest tokens (no reinforcement: retention falls with age).
    std::vector<index_t> pos;
    for (index_t j = 0; j < dr.cache.length(); ++j)
      if (dr.cache.position(j) != 3) pos.push_back(dr.cache.position(j));
    std::sort(pos.begin(), pos.end());
    std::vector<index_t> newest;
    for (index_t p = seen - 1; p >= 0 && newest.size() < pos.size(); --p)
      if (p != 3) newest.insert(newest.begin(), p);
    CHECK(pos == newest);
  }
}

TEST_CASE("retention: the dynamic threshold drops the least retained, one or many at once",
          "[model][memory]") {
  // Decode steps drop one token or none (one selecting pass); multi-row calls drop about half
  // their rows' count at once (a selection over the cache). Both must drop exactly the c least
  // retained: largest (t - last) / S first, then the older position, computed here from the
  // cache's public state before each call. The cache holds several 64-slot scan blocks (the
  // selecting pass and the reinforcement pass skip blocks without a candidate), and every held
  // token's reinforcement is checked.
  attnkit::modules::RetentionParams p = hand_params();
  p.keep_fraction = 0.5;
  Driver dr(attnkit::modules::RetentionCache{attnkit::modules::MemoryMode::sparse, p});
  std::mt19937 g(11);
  dr.call(301);
  int few = 0, many = 0;
  for (int s = 0; s < 80; ++s) {
    const index_t n = s % 16 == 15 ? 40 + s % 5 : 1;
    const index_t t = dr.cache.steps(), len = dr.cache.length();
    const auto budget =
        static_cast<index_t>(std::ceil(0.5 * static_cast<double>(dr.cache.seen() + n)));
    const index_t c = std::max<index_t>(0, len - std::max<index_t>(0, budget - n));
    std::vector<std::pair<double, index_t>> held;  // (decay, position)
    for (index_t j = 0; j < len; ++j)
      held.emplace_back(double(t - dr.cache.last_reinforced(j)) / dr.cache.strength(j),
                        dr.cache.position(j));
    std::sort(held.begin(), held.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    std::vector<index_t> expected;
    for (std::size_t i = static_cast<std::size_t>(c); i < held.size(); ++i)
      expected.push_back(held[i].second);
    std::sort(expected.begin(), expected.end());
    // Reinforce a random third of the held tokens, or one in 60 (head-mean weight 1 >= the
    // threshold): most scan blocks then have none.
    std::map<index_t, double> w;
    for (const auto& h : held)
      if (g() % (s % 2 ? 3 : 60) == 0) w[h.second] = 1.0;
    std::map<index_t, std::pair<double, index_t>> before;  // position -> (S, last)
    for (index_t j = 0; j < len; ++j)
      before[dr.cache.position(j)] = {dr.cache.strength(j), dr.cache.last_reinforced(j)};
    const index_t first_new = dr.next;
    dr.call(n, w);
    std::vector<index_t> kept;
    int wrong = 0;  // held tokens whose reinforcement (by the decode step's weights) is wrong
    for (index_t j = 0; j < dr.cache.length(); ++j) {
      const index_t pos = dr.cache.position(j);
      if (pos >= first_new) continue;
      kept.push_back(pos);
      const auto [s0, last0] = before.at(pos);
      const bool hit = n == 1 && w.count(pos) != 0;
      wrong += dr.cache.strength(j) != (hit ? s0 + p.strength_gain : s0) ||
               dr.cache.last_reinforced(j) != (hit ? t : last0);
    }
    std::sort(kept.begin(), kept.end());
    INFO("step " << s << ", " << c << " dropped, " << len << " held");
    CHECK(kept == expected);
    CHECK(wrong == 0);
    (c > 16 ? many : few) += c > 0 ? 1 : 0;
  }
  CHECK(few > 10);
  CHECK(many >= 3);
}

TEST_CASE("retention: sparse decoding equals attention with the explicit keep mask",
          "[model][memory]") {
  // A real layer in double: the decode kernel captures the weights that reinforce; the reference
  // is the uncached pass with KeepMask(flags of the tokens the cache held) for the new row.
  using Causal = pol::AttentionPolicy<pol::Softmax, pol::Causal>;
  using Keep = pol::AttentionPolicy<pol::Softmax, pol::KeepMask>;
  const index_t hid = 24, hq = 4, hkv = 2, d = 8, n = 48, prompt = 6;
  const Weights<double> w(hid, hq, hkv, d, 7);
  const auto mha = make_mha<Causal, double>(w, hq, hkv, d, true);
  auto ref = make_mha<Keep, double>(w, hq, hkv, d, true);
  attnkit::modules::RetentionParams p;
  p.initial_strength = 1.0;
  p.time_per_step = 1.0;
  p.reinforce_threshold = 0.15;
  p.strength_gain = 2.0;
  p.forget_threshold = 0.05;
  attnkit::modules::KVCache<double> cache(
      attnkit::modules::RetentionCache{attnkit::modules::MemoryMode::sparse, p});
  const auto x = random_x<double>(1, n, hid, 9);
  {
    const Tensor<double, 3> xi = rows(x, 0, prompt);
    Tensor<double, 3> yi({1, prompt, hid});
    mha.forward(xi.cview(), iota(prompt), yi.view(), cache);
  }
  double err = 0;
  index_t oldest_survivor = n;
  for (index_t t = prompt; t < n; ++t) {
    const Tensor<double, 3> xi = rows(x, t, t + 1);
    Tensor<double, 3> yi({1, 1, hid});
    const auto pos = iota(1, t);
    mha.forward(xi.cview(), pos, yi.view(), cache);
    std::vector<std::uint8_t> flags(static_cast<std::size_t>(t + 1), 0);
    for (index_t j = 0; j < cache.length(); ++j)
      flags[static_cast<std::size_t>(cache.position(j))] = 1;
    REQUIRE(flags[static_cast<std::size_t>(t)] == 1);
    ref.policy.mask =
        pol::KeepMask(attnkit::TensorView<const std::uint8_t, 2>(flags.data(), {1, t + 1}));
    const Tensor<double, 3> xs = rows(x, 0, t + 1);
    Tensor<double, 3> ys({1, t + 1, hid});
    ref.forward(xs.cview(), iota(t + 1), ys.view());
    for (index_t c = 0; c < hid; ++c) err = std::max(err, std::abs(ys(0, t, c) - yi(0, 0, c)));
    for (index_t j = 0; j < cache.length(); ++j)
      if (t - cache.position(j) > 4) oldest_survivor = std::min(oldest_survivor, cache.position(j));
  }
  CHECK(err <= 1e-12);
  // The run both forgot tokens and kept reinforced old ones (the test means something).
  CHECK(cache.evicted() > 10);
  CHECK(oldest_survivor < n);
  CHECK(cache.stats().sparsity > 0.2);
  INFO("held " << cache.length() << " of " << cache.seen());
}
