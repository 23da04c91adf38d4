// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// KVCache policies against full recomputations in double: the full cache equals the causal pass,
// the window cache the SlidingWindow mask, the sink cache the Sinks mask (without RoPE) and
// StreamingLLM's in-cache positions (with RoPE), over prefill chunks longer than the cache,
// decode steps and compactions; the cache's contents and statistics; policy parsing; errors.
#include "memory_test_util.hpp"

using namespace memory_test;

namespace {

using Gate = attnkit::modules::SelectableSigmoidGate<double>;
using GatedCausal = pol::AttentionPolicy<pol::Softmax, pol::Causal, pol::NoScoreMod, Gate>;
using GatedWindow = pol::AttentionPolicy<pol::Softmax, pol::SlidingWindow, pol::NoScoreMod, Gate>;
using GatedSinks = pol::AttentionPolicy<pol::Softmax, pol::Sinks, pol::NoScoreMod, Gate>;

constexpr index_t hid = 16, hq = 4, hkv = 2, d = 8;

/// Headwise gate weights [Hq, hid].
struct Setup {
  Weights<double> w{hid, hq, hkv, d, 11};
  Tensor<double, 2> wg{{hq, hid}};
  Setup() {
    std::mt19937 g(5);
    std::uniform_real_distribution<double> u(-0.5, 0.5);
    for (auto& x : wg) x = u(g);
  }
  template <class Policy>
  attnkit::modules::MultiHeadAttention<Policy, double> mha(bool rope, const Policy& p = {}) const {
    auto m = make_mha<Policy, double>(w, hq, hkv, d, rope, p);
    m.g_proj = wg.cview();
    return m;
  }
};

/// Call sizes: a prefill of `first`, single steps, a chunk of `chunk` in the middle, single
/// steps to n.
std::vector<index_t> calls(index_t n, index_t first, index_t chunk) {
  std::vector<index_t> c{first};
  index_t r = first;
  while (r < n) {
    const index_t m = (r == first + 9 && r + chunk <= n) ? chunk : 1;
    c.push_back(m);
    r += m;
  }
  return c;
}

}  // namespace

TEST_CASE("KVCache: full cache decoding equals the causal pass", "[model][cache]") {
  const Setup s;
  const index_t n = 41;
  const auto x = random_x<double>(2, n, hid, 3);
  const auto mha = s.mha<GatedCausal>(true);
  Tensor<double, 3> want({2, n, hid});
  const auto pos = iota(n);
  mha.forward(x.cview(), pos, want.view());
  attnkit::modules::KVCache<double> cache;
  const auto got = run_calls(mha, cache, x, calls(n, 7, 5));
  CHECK(max_diff(got, want) <= 1e-12);
  CHECK(cache.length() == n);
  CHECK(cache.seen() == n);
  CHECK(cache.steps() == static_cast<index_t>(calls(n, 7, 5).size()));
  CHECK(cache.stats().sparsity == 0.0);
  CHECK(cache.stats().mean_retention == 1.0);
  for (index_t j = 0; j < n; ++j) REQUIRE(cache.position(j) == j);
}

TEST_CASE("KVCache: window cache equals the SlidingWindow mask (RoPE, gate)", "[model][cache]") {
  const Setup s;
  for (index_t w : {1, 5, 16}) {
    const index_t n = 70;
    const auto x = random_x<double>(2, n, hid, 4 + static_cast<unsigned>(w));
    Tensor<double, 3> want({2, n, hid});
    const auto pos = iota(n);
    s.mha<GatedWindow>(true, GatedWindow(pol::Softmax{}, pol::SlidingWindow(w)))
        .forward(x.cview(), pos, want.view());
    for (index_t first : {3, 13}) {
      attnkit::modules::KVCache<double> cache(attnkit::modules::WindowCache{w});
      const auto got = run_calls(s.mha<GatedCausal>(true), cache, x, calls(n, first, 4));
      INFO("window " << w << ", prefill " << first);
      CHECK(max_diff(got, want) <= 1e-12);
      CHECK(cache.length() == w);
      CHECK(cache.evicted() == n - w);
      for (index_t j = 0; j < w; ++j) REQUIRE(cache.position(j) == n - w + j);
      CHECK(cache.stats().sparsity == Approx(1.0 - double(w) / double(n)));
    }
  }
}

TEST_CASE("KVCache: sink cache equals the Sinks mask (no RoPE)", "[model][cache]") {
  const Setup s;
  for (auto [sinks, w] : {std::pair<index_t, index_t>{3, 5}, {4, 1}, {0, 6}, {1, 20}}) {
    const index_t n = 66;
    const auto x = random_x<double>(2, n, hid, 20 + static_cast<unsigned>(sinks * 7 + w));
    Tensor<double, 3> want({2, n, hid});
    const auto pos = iota(n);
    s.mha<GatedSinks>(false, GatedSinks(pol::Softmax{}, pol::Sinks(sinks, w)))
        .forward(x.cview(), pos, want.view());
    for (index_t first : {2, 11, 30}) {
      attnkit::modules::KVCache<double> cache(attnkit::modules::SinkCache{sinks, w});
      const auto got = run_calls(s.mha<GatedCausal>(false), cache, x, calls(n, first, 6));
      INFO("sinks " << sinks << ", window " << w << ", prefill " << first);
      CHECK(max_diff(got, want) <= 1e-12);
      REQUIRE(cache.length() == sinks + w);
      for (index_t j = 0; j < sinks; ++j) CHECK(cache.position(j) == j);
      for (index_t j = 0; j < w; ++j) CHECK(cache.position(sinks + j) == n - w + j);
    }
  }
}

TEST_CASE("KVCache: sink cache with RoPE uses StreamingLLM's in-cache positions",
          "[model][cache]") {
  // Reference: for the row at absolute position t, the causal pass over exactly the tokens the
  // cache holds (sinks, then the last W), at positions 0, 1, ... inside the cache; its last row.
  const Setup s;
  const index_t sinks = 4, w = 7, n = 90;
  const auto x = random_x<double>(1, n, hid, 31);
  const auto causal = s.mha<GatedCausal>(true);
  attnkit::modules::KVCache<double> cache(attnkit::modules::SinkCache{sinks, w});
  const auto got = run_calls(causal, cache, x, calls(n, 15, 5));
  double err = 0;
  for (index_t t = 0; t < n; ++t) {
    std::vector<index_t> held;
    for (index_t j = 0; j <= t; ++j)
      if (j < sinks || t - j < w) held.push_back(j);
    const index_t m = static_cast<index_t>(held.size());
    Tensor<double, 3> sub({1, m, hid}), out({1, m, hid});
    for (index_t i = 0; i < m; ++i)
      for (index_t c = 0; c < hid; ++c) sub(0, i, c) = x(0, held[static_cast<std::size_t>(i)], c);
    const auto in_cache = iota(m);
    causal.forward(sub.cview(), in_cache, out.view());
    for (index_t c = 0; c < hid; ++c)
      err = std::max(err, std::abs(out(0, m - 1, c) - got(0, t, c)));
  }
  CHECK(err <= 1e-11);
  // Absolute positions are not what the cache uses once it has evicted: they differ.
  Tensor<double, 3> absolute({1, n, hid});
  const auto pos = iota(n);
  s.mha<GatedSinks>(true, GatedSinks(pol::Softmax{}, pol::Sinks(sinks, w)))
      .forward(x.cview(), pos, absolute.view());
  CHECK(max_diff(absolute, got, 0, sinks + w) <= 1e-12);
  CHECK(max_diff(absolute, got, sinks + w + 1, n) > 1e-6);
}

TEST_CASE("KVCache: policies parse and print as in docs/CLI.md", "[model][cache]") {
  CHECK(std::holds_alternative<attnkit::modules::FullCache>(
      attnkit::modules::parse_cache_policy("full")));
  CHECK(std::get<attnkit::modules::WindowCache>(attnkit::modules::parse_cache_policy("window=128"))
            .window == 128);
  const auto sk =
      std::get<attnkit::modules::SinkCache>(attnkit::modules::parse_cache_policy("sinks=4,252"));
  CHECK(sk.sinks == 4);
  CHECK(sk.window == 252);
  CHECK(attnkit::modules::cache_policy_name(attnkit::modules::SinkCache{4, 252}) == "sinks=4,252");
  CHECK(attnkit::modules::cache_policy_name(attnkit::modules::WindowCache{9}) == "window=9");
  CHECK(attnkit::modules::cache_policy_name(attnkit::modules::FullCache{}) == "full");
  CHECK_THROWS_WITH(attnkit::modules::parse_cache_policy("window=0"),
                    Catch::Contains("window must be >= 1"));
  CHECK_THROWS_WITH(attnkit::modules::parse_cache_policy("window=x"), Catch::Contains("'x'"));
  CHECK_THROWS_WITH(attnkit::modules::parse_cache_policy("sinks=4"), Catch::Contains("sinks=S,W"));
  CHECK_THROWS_WITH(attnkit::modules::parse_cache_policy("ring=4"),
                    Catch::Contains("unknown cache 'ring=4'"));
  CHECK(attnkit::modules::parse_memory_mode("soft-delete") ==
        attnkit::modules::MemoryMode::soft_delete);
  CHECK(attnkit::modules::memory_mode_name(attnkit::modules::MemoryMode::sparse) == "sparse");
  CHECK_THROWS_WITH(attnkit::modules::parse_memory_mode("forget"),
                    Catch::Contains("baseline, soft-delete, sparse"));
  CHECK_THROWS_AS(attnkit::modules::KVCache<float>(attnkit::modules::SinkCache{-1, 4}),
                  attnkit::error);
  attnkit::modules::RetentionCache bad;
  bad.params.forget_threshold = 2;
  CHECK_THROWS_WITH(attnkit::modules::KVCache<float>(bad), Catch::Contains("RetentionParams"));
}

TEST_CASE("KVCache: shape errors", "[model][cache]") {
  attnkit::modules::KVCache<double> cache;
  Tensor<double, 4> k({1, 2, 3, 8}), v({1, 2, 3, 8}), k4({1, 2, 1, 4}), v4({1, 2, 1, 4});
  const auto pos = iota(3);
  auto none = [](index_t, index_t, auto, auto, auto) {};
  cache.step(k.cview(), v.cview(), pos, nullptr, 4, none);
  CHECK_THROWS_WITH(cache.step(k4.cview(), v4.cview(), iota(1), nullptr, 4, none),
                    Catch::Contains("the cache holds keys [1, 2, 16, 8]"));
  CHECK_THROWS_WITH(cache.step(k.cview(), v.cview(), iota(2), nullptr, 4, none),
                    Catch::Contains("2 positions for 3 rows"));
  CHECK_THROWS_AS(cache.step(k.cview(), v.cview(), pos, nullptr, 3, none), attnkit::shape_error);
  attnkit::modules::KVCache<double> sparse(
      attnkit::modules::RetentionCache{attnkit::modules::MemoryMode::sparse, {}});
  Tensor<double, 4> k2({2, 2, 3, 8});
  CHECK_THROWS_WITH(sparse.step(k2.cview(), k2.cview(), pos, nullptr, 4, none),
                    Catch::Contains("need batch 1"));
}
