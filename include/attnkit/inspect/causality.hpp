// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The causality-leak checker: perturbs the inputs at positions >= t and reports whether any
// output at a position < t changed, for any callable (a model on token ids, an attention
// function on q, k, v, or anything that maps a perturbation cut to outputs per position).
// A model that sees the future shows abnormally high validation accuracy; e.g. a
// softmax across heads with an additive -1e9 mask gives every masked key the weight 1/H.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/model/decoder.hpp"

namespace attnkit::inspect {

/// How to probe.
struct LeakOptions {
  /// Smallest cut t (positions >= t are perturbed). Positions before `first_cut` may see each
  /// other: for PrefixLM give its prefix length P.
  index_t first_cut = 1;
  /// 0: every cut in [first_cut, N); else at most this many, spread evenly, both ends included.
  index_t max_cuts = 0;
  /// An output counts as changed when |Δ| > tolerance (0: any change; NaN vs a number counts).
  double tolerance = 0.0;
  /// Seed of the perturbations (deterministic).
  std::uint64_t seed = 0x5eedULL;
  /// Stop at the first cut that shows a leak.
  bool stop_at_first = true;
};

/// The verdict.
struct LeakReport {
  bool leak = false;      ///< some output before a cut changed
  index_t cut = -1;       ///< the first leaking run perturbed the positions [cut, N)
  index_t position = -1;  ///< the earliest position before `cut` whose output changed
  /// The first output stage that changed in that run: for a Decoder the layer whose hidden
  /// state changed first (the number of layers: only the logits), else 0.
  index_t stage = -1;
  double max_change = 0.0;  ///< largest |Δ| before the cut over all runs
  index_t runs = 0;         ///< perturbed runs made
};

namespace detail {

/// splitmix64: a small deterministic generator (same on every platform).
inline std::uint64_t mix64(std::uint64_t& s) noexcept {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A uniform double in [0, 1).
inline double uniform01(std::uint64_t& s) noexcept {
  return static_cast<double>(mix64(s) >> 11) * 0x1.0p-53;
}

/// The cuts to probe.
inline std::vector<index_t> leak_cuts(index_t n, const LeakOptions& opts) {
  const index_t lo = std::max<index_t>(1, opts.first_cut);
  std::vector<index_t> cuts;
  if (lo >= n) return cuts;
  const index_t count = n - lo;
  if (opts.max_cuts <= 0 || opts.max_cuts >= count) {
    for (index_t t = lo; t < n; ++t) cuts.push_back(t);
  } else if (opts.max_cuts == 1) {
    cuts.push_back(lo);
  } else {
    for (index_t c = 0; c < opts.max_cuts; ++c)
      cuts.push_back(lo + (count - 1) * c / (opts.max_cuts - 1));
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  }
  return cuts;
}

template <class X>
inline constexpr bool is_stage_list = false;
template <class T>
inline constexpr bool is_stage_list<std::vector<Tensor<T, 2>>> = true;

/// |a - b| with NaN against a number as infinity and NaN against NaN as 0.
inline double change(double a, double b) noexcept {
  if (std::isnan(a) || std::isnan(b))
    return std::isnan(a) && std::isnan(b) ? 0.0 : std::numeric_limits<double>::infinity();
  if (a == b) return 0.0;  // also equal infinities
  return std::fabs(a - b);
}

}  // namespace detail

/// The generic checker. `run(t)` returns the outputs computed from inputs whose positions >= t
/// are perturbed (`run(n)`: the original inputs), as a Tensor<T, 2> [n, F] (row = position) or
/// a std::vector of such stages (e.g. each layer's hidden state, then the logits).
/// \tparam Run callable index_t -> Tensor<T, 2> or std::vector<Tensor<T, 2>>
template <class Run>
LeakReport check_causality(index_t n, Run&& run, const LeakOptions& opts = {}) {
  auto stages = [&](index_t cut) {
    auto out = run(cut);
    if constexpr (detail::is_stage_list<decltype(out)>) {
      return out;
    } else {
      std::vector<decltype(out)> v;
      v.push_back(std::move(out));
      return v;
    }
  };
  const auto base = stages(n);
  for (const auto& s : base)
    if (s.extent(0) != n)
      throw shape_error("attnkit: check_causality: an output stage has " +
                        std::to_string(s.extent(0)) + " rows, expected one per position (" +
                        std::to_string(n) + ")");
  LeakReport rep;
  for (index_t cut : detail::leak_cuts(n, opts)) {
    const auto got = stages(cut);
    ++rep.runs;
    if (got.size() != base.size())
      throw error("attnkit: check_causality: the number of output stages changed between runs");
    // Stages in order and rows ascending: the first change is the earliest stage and row.
    for (std::size_t s = 0; s < got.size(); ++s) {
      if (got[s].shape() != base[s].shape())
        throw_shape_mismatch("check_causality", "output", got[s].shape(), base[s].shape());
      const index_t f = base[s].extent(1);
      for (index_t i = 0; i < cut; ++i)
        for (index_t c = 0; c < f; ++c) {
          const double d =
              detail::change(static_cast<double>(got[s](i, c)), static_cast<double>(base[s](i, c)));
          rep.max_change = std::max(rep.max_change, d);
          if (d > opts.tolerance && !rep.leak) {
            rep.leak = true;
            rep.cut = cut;
            rep.stage = static_cast<index_t>(s);
            rep.position = i;
          }
        }
    }
    if (rep.leak && opts.stop_at_first) break;
  }
  return rep;
}

/// Checks a model on token ids: `fn(ids)` returns a Tensor<T, 2> [n, F] (e.g. the logits) or a
/// vector of stages; the ids at positions >= t are replaced by other ids in [0, vocab).
/// \tparam Fn callable std::span<const std::int64_t> -> Tensor<T, 2> or vector of them
template <class Fn>
LeakReport check_causality_tokens(Fn&& fn, std::span<const std::int64_t> ids, index_t vocab,
                                  const LeakOptions& opts = {}) {
  if (vocab < 2) throw error("attnkit: check_causality_tokens: needs a vocabulary of >= 2 ids");
  const index_t n = static_cast<index_t>(ids.size());
  return check_causality(
      n,
      [&](index_t cut) {
        std::vector<std::int64_t> x(ids.begin(), ids.end());
        std::uint64_t s = opts.seed ^ (static_cast<std::uint64_t>(cut) * 0x9e3779b97f4a7c15ULL);
        for (index_t i = cut; i < n; ++i) {
          const auto shift = 1 + static_cast<std::int64_t>(detail::mix64(s) %
                                                           static_cast<std::uint64_t>(vocab - 1));
          x[static_cast<std::size_t>(i)] = (x[static_cast<std::size_t>(i)] + shift) % vocab;
        }
        return fn(std::span<const std::int64_t>(x));
      },
      opts);
}

/// Checks a decoder on a prompt: the stages are every layer's hidden state and the logits, so a
/// leak is reported with the first layer where it shows.
/// \tparam Policy the decoder's attention policy
/// \tparam T float or double
template <class Policy, class T, class Layer>
LeakReport check_causality(const model::Decoder<Policy, T, Layer>& model,
                           std::span<const std::int64_t> ids, const LeakOptions& opts = {}) {
  return check_causality_tokens(
      [&](std::span<const std::int64_t> x) {
        std::vector<Tensor<T, 2>> st;
        model::DecoderHooks<T> hooks;
        hooks.hidden = [&](index_t, TensorView<const T, 2> h) { st.emplace_back(h); };
        st.push_back(model.forward(x, hooks));
        return st;
      },
      ids, model.config.vocab_size, opts);
}

/// Checks an attention function `fn(q, k, v, out)` over [B, H, N, D] self-attention inputs
/// (Nq = Nk = N): the rows of q, k and v at positions >= t get a deterministic perturbation.
/// The output is [B, Hq, N, Dv].
/// \tparam T float or double
/// \tparam Fn callable (TensorView<const T, 4> q, k, v, TensorView<T, 4> out)
template <class T, class Fn>
LeakReport check_causality_attention(Fn&& fn, std::type_identity_t<TensorView<const T, 4>> q,
                                     std::type_identity_t<TensorView<const T, 4>> k,
                                     std::type_identity_t<TensorView<const T, 4>> v,
                                     const LeakOptions& opts = {}) {
  const index_t nb = q.extent(0), hq = q.extent(1), n = q.extent(2), dv = v.extent(3);
  if (k.extent(2) != n || v.extent(2) != n)
    throw shape_error("attnkit: check_causality_attention: needs self-attention shapes (q " +
                      shape_string(q.shape()) + ", k " + shape_string(k.shape()) + ", v " +
                      shape_string(v.shape()) + ")");
  const Tensor<T, 4> q0(q), k0(k), v0(v);
  return check_causality(
      n,
      [&](index_t cut) {
        Tensor<T, 4> qq(q0), kk(k0), vv(v0);
        std::uint64_t s = opts.seed ^ (static_cast<std::uint64_t>(cut) * 0x9e3779b97f4a7c15ULL);
        for (Tensor<T, 4>* t : {&qq, &kk, &vv})
          for (index_t b = 0; b < t->extent(0); ++b)
            for (index_t h = 0; h < t->extent(1); ++h)
              for (index_t i = cut; i < n; ++i)
                for (index_t c = 0; c < t->extent(3); ++c) {
                  const double u = detail::uniform01(s);
                  (*t)(b, h, i, c) += static_cast<T>(u < 0.5 ? -1.0 - u : u + 0.5);
                }
        Tensor<T, 4> out({nb, hq, n, dv});
        fn(qq.cview(), kk.cview(), vv.cview(), out.view());
        Tensor<T, 2> rows({n, nb * hq * dv});
        for (index_t b = 0; b < nb; ++b)
          for (index_t h = 0; h < hq; ++h)
            for (index_t i = 0; i < n; ++i)
              for (index_t c = 0; c < dv; ++c) rows(i, (b * hq + h) * dv + c) = out(b, h, i, c);
        return rows;
      },
      opts);
}

}  // namespace attnkit::inspect
