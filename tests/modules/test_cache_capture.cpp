// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Weight capture under every cache policy (full, window, sinks, retention soft-delete and
// sparse): each call's captured P [1, Hq, rows, held keys] equals the double softmax of the
// call's q against the keys the cache held (bottom-right causal within the call, exact zeros
// above it), the held-key counts follow the policy, and the window and sink captures equal the
// SlidingWindow and Sinks masks' weights of a full prefill on the keys they hold.
#include "memory_test_util.hpp"

using namespace memory_test;
namespace mod = attnkit::modules;

namespace {

constexpr index_t hid = 16, hq = 4, hkv = 2, d = 8;

using Causal = pol::AttentionPolicy<pol::Softmax, pol::Causal>;
using Window = pol::AttentionPolicy<pol::Softmax, pol::SlidingWindow>;
using Sinks = pol::AttentionPolicy<pol::Softmax, pol::Sinks>;

/// One call's capture: its rows, the held key count and P [Hq, rows, keys].
struct Record {
  index_t rows = 0, keys = 0;
  Tensor<double, 3> p;
};

/// Runs x [1, N, hid] through `mha` and `cache` in calls of the given sizes with a capture;
/// checks every captured P against the double softmax of the observed q and k and returns the
/// records of each call (one per attend call of the cache).
template <class Mha>
std::vector<Record> run_captured(const Mha& mha, mod::KVCache<double>& cache,
                                 const Tensor<double, 3>& x, const std::vector<index_t>& calls,
                                 double& err) {
  std::vector<Record> recs;
  Tensor<double, 4> buf;
  mod::AttentionCapture<double> cap;
  cap.probs = [&](const attnkit::Shape<4>& s) {
    buf = Tensor<double, 4>(s);
    return buf.view();
  };
  cap.observe = [&](attnkit::TensorView<const double, 4> q, attnkit::TensorView<const double, 4> k,
                    attnkit::TensorView<const double, 4>, attnkit::TensorView<const double, 4> p) {
    REQUIRE_FALSE(p.empty());
    const index_t rows = q.extent(2), keys = k.extent(2), g = hq / hkv;
    REQUIRE(p.extent(1) == hq);
    REQUIRE(p.extent(2) == rows);
    REQUIRE(p.extent(3) == keys);
    Record r{rows, keys, Tensor<double, 3>({hq, rows, keys})};
    for (index_t h = 0; h < hq; ++h)
      for (index_t i = 0; i < rows; ++i) {
        const index_t last = keys - rows + i;  // bottom-right causal: keys [0, last] visible
        std::vector<double> s(static_cast<std::size_t>(keys));
        double mx = -INFINITY, sum = 0;
        for (index_t j = 0; j <= last; ++j) {
          double dot = 0;
          for (index_t c = 0; c < d; ++c) dot += q(0, h, i, c) * k(0, h / g, j, c);
          s[static_cast<std::size_t>(j)] = dot / std::sqrt(double(d));
          mx = std::max(mx, s[static_cast<std::size_t>(j)]);
        }
        for (index_t j = 0; j <= last; ++j) sum += std::exp(s[static_cast<std::size_t>(j)] - mx);
        for (index_t j = 0; j < keys; ++j) {
          const double want = j <= last ? std::exp(s[static_cast<std::size_t>(j)] - mx) / sum : 0;
          if (j > last) REQUIRE(p(0, h, i, j) == 0.0);  // exact zeros, not small
          err = std::max(err, std::abs(p(0, h, i, j) - want));
          r.p(h, i, j) = p(0, h, i, j);
        }
      }
    recs.push_back(std::move(r));
  };
  run_calls(mha, cache, x, calls, &cap);
  return recs;
}

/// A prefill of `first` rows, then single steps to n.
std::vector<index_t> steps(index_t n, index_t first) {
  std::vector<index_t> c{first};
  for (index_t r = first; r < n; ++r) c.push_back(1);
  return c;
}

/// The full prefill's P [1, Hq, N, N] under the module's policy (mask).
template <class Mha>
Tensor<double, 4> prefill_probs(const Mha& mha, const Tensor<double, 3>& x) {
  const index_t n = x.extent(1);
  Tensor<double, 4> p;
  mod::AttentionCapture<double> cap;
  cap.probs = [&](const attnkit::Shape<4>& s) {
    p = Tensor<double, 4>(s);
    return p.view();
  };
  Tensor<double, 3> y({1, n, hid});
  const auto pos = iota(n);
  mha.forward(x.cview(), pos, y.view(), &cap);
  return p;
}

}  // namespace

TEST_CASE("capture with every cache policy: the weights over the keys the cache holds",
          "[model][cache][capture]") {
  const Weights<double> w(hid, hq, hkv, d, 17);
  const index_t n = 37, first = 9;
  const auto x = random_x<double>(1, n, hid, 23);
  mod::RetentionParams fast;  // forgets within a few steps, so sparse drops tokens
  fast.initial_strength = 2.0;
  fast.time_per_step = 1.0;
  fast.reinforce_threshold = 0.3;
  fast.strength_gain = 3.0;
  fast.forget_threshold = 0.2;
  const index_t win = 5, sinks = 3, swin = 4;
  const std::vector<std::pair<std::string, mod::CachePolicy>> policies = {
      {"full", mod::FullCache{}},
      {"window", mod::WindowCache{win}},
      {"sinks", mod::SinkCache{sinks, swin}},
      {"soft-delete", mod::RetentionCache{mod::MemoryMode::soft_delete, fast}},
      {"sparse", mod::RetentionCache{mod::MemoryMode::sparse, fast}},
  };
  for (const auto& [name, policy] : policies) {
    for (bool rope : {true, false}) {
      INFO(name << (rope ? ", RoPE" : ", no RoPE"));
      const auto mha = make_mha<Causal, double>(w, hq, hkv, d, rope);
      mod::KVCache<double> cache(policy);
      double err = 0;
      const auto recs = run_captured(mha, cache, x, steps(n, first), err);
      CHECK(err <= 1e-12);
      // One record per call here (the prefill fits every cache whole or is split by it).
      REQUIRE(recs.size() >= static_cast<std::size_t>(n - first + 1));
      const std::size_t k0 = recs.size() - static_cast<std::size_t>(n - first);
      index_t fewer = 0;
      for (index_t t = first; t < n; ++t) {
        const Record& r = recs[k0 + static_cast<std::size_t>(t - first)];
        REQUIRE(r.rows == 1);
        if (name == "window") CHECK(r.keys == std::min(t + 1, win));
        if (name == "sinks") CHECK(r.keys == std::min(t + 1, sinks + swin));
        if (name == "full" || name == "soft-delete") CHECK(r.keys == t + 1);
        if (name == "sparse") CHECK(r.keys <= t + 1);
        if (r.keys < t + 1) ++fewer;
      }
      if (name == "sparse") CHECK(fewer > 0);  // the cache did forget
      // Window and sinks: the captured row over the held keys is the mask's prefill row on
      // those keys (sinks without RoPE: with RoPE, the cache uses in-cache positions).
      if (name == "window" || (name == "sinks" && !rope)) {
        const bool window = name == "window";
        Tensor<double, 4> full =
            window ? prefill_probs(
                         make_mha<Window, double>(w, hq, hkv, d, rope,
                                                  Window(pol::Softmax{}, pol::SlidingWindow(win))),
                         x)
                   : prefill_probs(
                         make_mha<Sinks, double>(w, hq, hkv, d, rope,
                                                 Sinks(pol::Softmax{}, pol::Sinks(sinks, swin))),
                         x);
        double merr = 0;
        for (index_t t = first; t < n; ++t) {
          const Record& r = recs[k0 + static_cast<std::size_t>(t - first)];
          std::vector<index_t> held;  // absolute positions, in the cache's order
          for (index_t j = 0; j <= t; ++j)
            if (window ? t - j < win : (j < sinks || t - j < swin)) held.push_back(j);
          REQUIRE(static_cast<index_t>(held.size()) == r.keys);
          for (index_t h = 0; h < hq; ++h)
            for (index_t j = 0; j < r.keys; ++j)
              merr = std::max(
                  merr, std::abs(r.p(h, 0, j) - full(0, h, t, held[static_cast<std::size_t>(j)])));
        }
        CHECK(merr <= 1e-12);
      }
    }
  }
}
