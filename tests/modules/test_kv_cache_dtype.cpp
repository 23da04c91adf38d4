// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// KVCache with bf16 and f16 storage: under every cache policy (full, window, sinks with their
// re-rotation, retention soft-delete and sparse) the stored keys and values are exactly the
// float cache's rounded to the storage type, step after step; a decoder layer reading them
// stays within the storage type's rounding of the float result; errors.
#include <cmath>
#include <random>
#include <vector>

#include "memory_test_util.hpp"

using namespace memory_test;
using attnkit::bf16;
using attnkit::f16;
using attnkit::TensorView;
namespace mod = attnkit::modules;

namespace {

constexpr index_t hq = 4, hkv = 2, d = 8;

/// What one attend call saw: the held keys and values widened to float.
struct Seen {
  Tensor<float, 4> k, v;
};

template <class KV>
Tensor<float, 4> widen(TensorView<const KV, 4> x) {
  Tensor<float, 4> r(x.shape());
  for (index_t a = 0; a < x.extent(0); ++a)
    for (index_t b = 0; b < x.extent(1); ++b)
      for (index_t c = 0; c < x.extent(2); ++c)
        for (index_t e = 0; e < x.extent(3); ++e) {
          if constexpr (std::is_same_v<KV, float>) {
            r(a, b, c, e) = x(a, b, c, e);
          } else {
            r(a, b, c, e) = x(a, b, c, e).to_float();
          }
        }
  return r;
}

/// Drives `cache` through steps of the given sizes with random k, v (the same for every cache
/// given the seed), RoPE, and synthetic decode weights (the same for every cache), recording
/// what each attend call saw.
std::vector<Seen> drive(mod::KVCache<float>& cache, const std::vector<index_t>& steps) {
  std::mt19937 g(17);
  std::normal_distribution<double> nd(0.0, 1.0);
  const attnkit::block::RoPE rope(d);
  std::vector<Seen> seen;
  index_t pos = 0;
  for (index_t n : steps) {
    Tensor<float, 4> k({1, hkv, n, d}), v({1, hkv, n, d});
    for (auto& x : k) x = static_cast<float>(nd(g));
    for (auto& x : v) x = static_cast<float>(nd(g));
    const std::vector<index_t> positions = iota(n, pos);
    pos += n;
    cache.step(k.cview(), v.cview(), positions, &rope, hq,
               [&](index_t, index_t, auto kc, auto vc, TensorView<float, 4> probs) {
                 seen.push_back({widen(kc), widen(vc)});
                 // Weights that reinforce every third held token.
                 for (index_t h = 0; h < probs.extent(1); ++h)
                   for (index_t j = 0; j < probs.extent(3); ++j)
                     probs(0, h, 0, j) = j % 3 == 0 ? 0.05f : 0.0f;
               });
  }
  return seen;
}

template <class KV>
float rounded(float x) {
  return KV::from_float(x).to_float();
}

/// Every call of `half` saw the keys and values of the same call of `ref` rounded to KV
/// (soft-delete keys: within two roundings, since they are scaled after storage).
template <class KV>
void check_rounded(const std::vector<Seen>& ref, const std::vector<Seen>& half, bool scaled) {
  REQUIRE(ref.size() == half.size());
  const double ulp = std::is_same_v<KV, bf16> ? 1.0 / 128 : 1.0 / 1024;
  long bad = 0;
  for (std::size_t s = 0; s < ref.size(); ++s) {
    REQUIRE(ref[s].k.shape() == half[s].k.shape());
    REQUIRE(ref[s].v.shape() == half[s].v.shape());
    for (index_t n = 0; n < ref[s].k.size(); ++n) {
      const float want = ref[s].k.data()[n], got = half[s].k.data()[n];
      const bool ok = scaled ? std::abs(got - want) <= 2 * ulp * std::abs(want) + 1e-30
                             : got == rounded<KV>(want);
      bad += ok ? 0 : 1;
    }
    for (index_t n = 0; n < ref[s].v.size(); ++n)
      bad += half[s].v.data()[n] == rounded<KV>(ref[s].v.data()[n]) ? 0 : 1;
  }
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("KVCache: bf16 and f16 storage holds the float cache's values, rounded",
          "[model][cache][dtype]") {
  const std::vector<index_t> steps{6, 1, 1, 3, 1, 1, 1, 1, 7, 1, 1, 1, 1, 1};
  mod::RetentionParams sparse_params;
  sparse_params.keep_fraction = 0.6;
  const std::vector<std::pair<mod::CachePolicy, bool>> policies{
      {mod::FullCache{}, false},
      {mod::WindowCache{5}, false},
      {mod::SinkCache{2, 5}, false},
      {mod::RetentionCache{mod::MemoryMode::soft_delete, {}}, true},
      {mod::RetentionCache{mod::MemoryMode::sparse, sparse_params}, false},
  };
  for (const auto& [policy, scaled] : policies) {
    INFO("cache " << mod::cache_policy_name(policy));
    mod::KVCache<float> f32(policy);
    mod::KVCache<float> b16(policy, mod::KVDtype::bf16);
    mod::KVCache<float> h16(policy, mod::KVDtype::f16);
    const auto ref = drive(f32, steps);
    check_rounded<bf16>(ref, drive(b16, steps), scaled);
    check_rounded<f16>(ref, drive(h16, steps), scaled);
    CHECK(b16.length() == f32.length());
    CHECK(b16.evicted() == f32.evicted());
    CHECK(b16.dtype() == mod::KVDtype::bf16);
    CHECK(b16.keys<bf16>().extent(2) == f32.length());
  }
}

TEST_CASE("KVCache: a decoder layer over bf16 and f16 caches", "[model][cache][dtype]") {
  using Policy = pol::AttentionPolicy<pol::Softmax, pol::Causal>;
  const index_t hid = 16, n = 40;
  const Weights<float> w(hid, hq, hkv, d, 3);
  const auto mha = make_mha<Policy, float>(w, hq, hkv, d, true);
  const auto x = random_x<float>(1, n, hid, 4);
  std::vector<index_t> calls{9};
  for (index_t r = 9; r < n; ++r) calls.push_back(1);
  mod::KVCache<float> f32;
  const auto want = run_calls(mha, f32, x, calls);
  for (mod::KVDtype dt : {mod::KVDtype::bf16, mod::KVDtype::f16}) {
    INFO("kv dtype " << mod::kv_dtype_name(dt));
    mod::KVCache<float> cache(mod::FullCache{}, dt);
    const auto got = run_calls(mha, cache, x, calls);
    double scale = 0;
    for (const float v : want) scale = std::max(scale, double(std::abs(v)));
    // Keys and values rounded to 8 (bf16) or 11 (f16) significant bits: the outputs move by a
    // few units of that rounding, never more.
    const double tol = (dt == mod::KVDtype::bf16 ? 0.03 : 0.004) * scale;
    CHECK(max_diff(got, want) <= tol);
    CHECK(max_diff(got, want) > 0.0);  // the storage really is 16-bit
  }
}

TEST_CASE("KVCache: storage dtype errors", "[model][cache][dtype]") {
  CHECK_THROWS_AS(mod::KVCache<double>(mod::FullCache{}, mod::KVDtype::bf16), attnkit::error);
  CHECK(mod::parse_kv_dtype("bf16") == mod::KVDtype::bf16);
  CHECK(mod::parse_kv_dtype("f16") == mod::KVDtype::f16);
  CHECK(mod::parse_kv_dtype("f32") == mod::KVDtype::compute);
  CHECK_THROWS_AS(mod::parse_kv_dtype("fp8"), attnkit::error);
  mod::KVCache<float> cache(mod::FullCache{}, mod::KVDtype::f16);
  Tensor<float, 4> k({1, hkv, 2, d}, 0.5f), v({1, hkv, 2, d}, 0.25f);
  const std::vector<index_t> pos{0, 1};
  cache.step(k.cview(), v.cview(), pos, nullptr, hq, [](index_t, index_t, auto, auto, auto) {});
  CHECK(cache.values<f16>()(0, 1, 1, 3).to_float() == 0.25f);
  CHECK_THROWS_AS(cache.keys<float>(), attnkit::error);
  CHECK_THROWS_AS(cache.keys<bf16>(), attnkit::error);
}
