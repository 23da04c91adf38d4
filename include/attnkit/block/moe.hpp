// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A top-k mixture-of-experts feed-forward (Shazeer et al. 2017; Mixtral's sparse MoE block):
// a softmax router over E SwiGLU experts, k experts per token.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <numeric>
#include <string>
#include <vector>

#include "attnkit/block/feed_forward.hpp"
#include "attnkit/block/linear.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"

namespace attnkit::block {

/// The routing of one token: the chosen experts (best first) and their weights.
struct Routing {
  std::vector<index_t> experts;  ///< k expert indices, by decreasing router probability
  std::vector<double> weights;   ///< k weights, same order
};

/// y = Σ_{e in top-k} w_e · expert_e(x) per token.
///
/// Router: p = softmax(router · x) over all E experts (in double), the k largest p are chosen
/// (ties: the lower index first). Weights: with `renormalize` (default, Mixtral's
/// MixtralSparseMoeBlock and Qwen-MoE's norm_topk_prob=True) w_e = p_e / Σ_top-k p, which equals
/// the softmax of the k chosen logits; without it (Switch, DeepSeek-MoE style) w_e = p_e.
/// Experts are SwiGLU modules. Each expert runs once on the rows routed to it; the sum runs over
/// the experts in index order, so results do not depend on the thread count.
/// \tparam T float or double
template <std::floating_point T>
struct MixtureOfExperts {
  Weight<T> router;                ///< [E, H] (the "gate" of Mixtral)
  std::vector<SwiGLU<T>> experts;  ///< E experts, each [I, H] / [H, I]
  index_t top_k = 2;               ///< k, 1 <= k <= E
  bool renormalize = true;         ///< Mixtral: divide the top-k weights by their sum

  /// Bytes of the router and of every expert's weights in their stored dtype.
  std::size_t weight_bytes() const noexcept {
    std::size_t b = router.bytes();
    for (const SwiGLU<T>& ex : experts) b += ex.weight_bytes();
    return b;
  }

  /// Throws shape_error when the router, the experts and k do not fit together.
  void check() const {
    const index_t e = router.extent(0), h = router.extent(1);
    if (static_cast<index_t>(experts.size()) != e)
      throw shape_error("attnkit: MixtureOfExperts: router of shape " +
                        shape_string(router.shape()) + " routes to " + std::to_string(e) +
                        " experts, " + std::to_string(experts.size()) + " given");
    if (top_k < 1 || top_k > e)
      throw error("attnkit: MixtureOfExperts: top_k must be in [1, " + std::to_string(e) +
                  "], got " + std::to_string(top_k));
    for (const SwiGLU<T>& ex : experts) {
      ex.check();
      if (ex.hidden() != h)
        throw_shape_mismatch("MixtureOfExperts", "expert gate", ex.gate.shape(),
                             Shape<2>{ex.intermediate(), h});
    }
  }

  /// The routing of every row of x [M, H].
  std::vector<Routing> route(TensorView<const T, 2> x) const {
    check();
    const index_t m = x.extent(0), e = router.extent(0);
    if (x.extent(1) != router.extent(1))
      throw_shape_mismatch("MixtureOfExperts", "x", x.shape(), Shape<2>{m, router.extent(1)});
    Tensor<T, 2> logits({m, e});
    linear<T>(x, router, logits.view());
    std::vector<Routing> out(static_cast<std::size_t>(m));
    std::vector<double> p(static_cast<std::size_t>(e));
    std::vector<index_t> order(static_cast<std::size_t>(e));
    for (index_t r = 0; r < m; ++r) {
      double mx = -INFINITY;
      for (index_t j = 0; j < e; ++j) mx = std::max(mx, static_cast<double>(logits(r, j)));
      double sum = 0;
      for (index_t j = 0; j < e; ++j) {
        p[static_cast<std::size_t>(j)] = std::exp(static_cast<double>(logits(r, j)) - mx);
        sum += p[static_cast<std::size_t>(j)];
      }
      for (double& v : p) v /= sum;
      std::iota(order.begin(), order.end(), index_t{0});
      std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
        return p[static_cast<std::size_t>(a)] > p[static_cast<std::size_t>(b)];
      });
      Routing& ro = out[static_cast<std::size_t>(r)];
      ro.experts.assign(order.begin(), order.begin() + top_k);
      double top = 0;
      for (index_t j : ro.experts) top += p[static_cast<std::size_t>(j)];
      for (index_t j : ro.experts)
        ro.weights.push_back(renormalize ? p[static_cast<std::size_t>(j)] / top
                                         : p[static_cast<std::size_t>(j)]);
    }
    return out;
  }

  /// y [M, H] = MoE(x [M, H]). y must not alias x.
  void operator()(TensorView<const T, 2> x, TensorView<T, 2> y) const {
    const std::vector<Routing> routing = route(x);
    const index_t m = x.extent(0), h = x.extent(1);
    if (y.shape() != x.shape()) throw_shape_mismatch("MixtureOfExperts", "y", y.shape(), x.shape());
    fill(y, T(0));
    for (index_t e = 0; e < static_cast<index_t>(experts.size()); ++e) {
      std::vector<index_t> rows;
      std::vector<T> w;
      for (index_t r = 0; r < m; ++r) {
        const Routing& ro = routing[static_cast<std::size_t>(r)];
        for (std::size_t s = 0; s < ro.experts.size(); ++s)
          if (ro.experts[s] == e) {
            rows.push_back(r);
            w.push_back(static_cast<T>(ro.weights[s]));
          }
      }
      if (rows.empty()) continue;
      const index_t me = static_cast<index_t>(rows.size());
      Tensor<T, 2> xin({me, h}), yout({me, h});
      for (index_t i = 0; i < me; ++i)
        for (index_t c = 0; c < h; ++c) xin(i, c) = x(rows[static_cast<std::size_t>(i)], c);
      experts[static_cast<std::size_t>(e)](xin.cview(), yout.view());
      for (index_t i = 0; i < me; ++i)
        for (index_t c = 0; c < h; ++c)
          y(rows[static_cast<std::size_t>(i)], c) += w[static_cast<std::size_t>(i)] * yout(i, c);
    }
  }
};

}  // namespace attnkit::block
