// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Helpers of the KV-cache and memory tests: a MultiHeadAttention with random weights in double
// (or float), random input rows, and running a sequence through a cache call by call.
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/core/tensor.hpp"
#include "attnkit/modules/kv_cache.hpp"
#include "attnkit/modules/multi_head_attention.hpp"

namespace memory_test {

using attnkit::index_t;
using attnkit::Tensor;
namespace pol = attnkit::policy;

/// Weights of one attention layer (owning), random with the usual 1/sqrt(fan-in) scale.
template <class T>
struct Weights {
  Tensor<T, 2> wq, wk, wv, wo;
  Weights(index_t hid, index_t hq, index_t hkv, index_t d, unsigned seed)
      : wq({hq * d, hid}), wk({hkv * d, hid}), wv({hkv * d, hid}), wo({hid, hq * d}) {
    std::mt19937 g(seed);
    auto fill = [&](Tensor<T, 2>& w, double scale) {
      std::uniform_real_distribution<double> u(-scale, scale);
      for (auto& x : w) x = static_cast<T>(u(g));
    };
    // Large enough q/k scales that softmax weights are far from uniform.
    fill(wq, 3.0 / std::sqrt(double(hid)));
    fill(wk, 3.0 / std::sqrt(double(hid)));
    fill(wv, 1.0 / std::sqrt(double(hid)));
    fill(wo, 1.0 / std::sqrt(double(hq * d)));
  }
};

/// A module over `w` with the given policy (mask), optional RoPE.
template <class Policy, class T>
attnkit::modules::MultiHeadAttention<Policy, T> make_mha(const Weights<T>& w, index_t hq,
                                                         index_t hkv, index_t d, bool rope,
                                                         const Policy& p = {}) {
  attnkit::modules::MultiHeadAttention<Policy, T> m;
  m.heads = hq;
  m.kv_heads = hkv;
  m.head_dim = d;
  m.q_proj.weight = w.wq.cview();
  m.k_proj.weight = w.wk.cview();
  m.v_proj.weight = w.wv.cview();
  m.o_proj.weight = w.wo.cview();
  if (rope) m.rope.emplace(d, 10000.0);
  m.policy = p;
  return m;
}

/// Random input x [B, N, hid].
template <class T>
Tensor<T, 3> random_x(index_t b, index_t n, index_t hid, unsigned seed) {
  Tensor<T, 3> x({b, n, hid});
  std::mt19937 g(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (auto& v : x) v = static_cast<T>(nd(g));
  return x;
}

/// 0, 1, ..., n-1.
inline std::vector<index_t> iota(index_t n, index_t from = 0) {
  std::vector<index_t> p(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) p[static_cast<std::size_t>(i)] = from + i;
  return p;
}

/// Rows [r0, r1) of x as a contiguous tensor [B, r1 - r0, hid].
template <class T>
Tensor<T, 3> rows(const Tensor<T, 3>& x, index_t r0, index_t r1) {
  Tensor<T, 3> y({x.extent(0), r1 - r0, x.extent(2)});
  for (index_t b = 0; b < x.extent(0); ++b)
    for (index_t r = r0; r < r1; ++r)
      for (index_t c = 0; c < x.extent(2); ++c) y(b, r - r0, c) = x(b, r, c);
  return y;
}

/// Runs x [B, N, hid] through `mha` with `cache` in calls of the given sizes (summing to N),
/// with an optional weight capture; returns y [B, N, hid].
template <class Mha, class T>
Tensor<T, 3> run_calls(const Mha& mha, attnkit::modules::KVCache<T>& cache, const Tensor<T, 3>& x,
                       const std::vector<index_t>& calls,
                       const attnkit::modules::AttentionCapture<T>* capture = nullptr) {
  Tensor<T, 3> y({x.extent(0), x.extent(1), x.extent(2)});
  index_t r = 0;
  for (index_t n : calls) {
    const Tensor<T, 3> xi = rows(x, r, r + n);
    Tensor<T, 3> yi({x.extent(0), n, x.extent(2)});
    const std::vector<index_t> pos = iota(n, r);
    mha.forward(xi.cview(), pos, yi.view(), cache, capture);
    for (index_t b = 0; b < x.extent(0); ++b)
      for (index_t i = 0; i < n; ++i)
        for (index_t c = 0; c < x.extent(2); ++c) y(b, r + i, c) = yi(b, i, c);
    r += n;
  }
  REQUIRE(r == x.extent(1));
  return y;
}

/// max |a - b| over rows [r0, r1) of every batch entry.
template <class T>
double max_diff(const Tensor<T, 3>& a, const Tensor<T, 3>& b, index_t r0 = 0, index_t r1 = -1) {
  if (r1 < 0) r1 = a.extent(1);
  double e = 0;
  for (index_t bb = 0; bb < a.extent(0); ++bb)
    for (index_t r = r0; r < r1; ++r)
      for (index_t c = 0; c < a.extent(2); ++c)
        e = std::max(e, std::abs(double(a(bb, r, c)) - double(b(bb, r, c))));
  return e;
}

}  // namespace memory_test
