// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Score mods: elementwise changes of the scaled score s that may read (b, h, i', j).
#pragma once

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/policy/concepts.hpp"

namespace attnkit::policy {

/// The do-nothing score mod.
struct NoScoreMod {
  static constexpr bool is_identity = true;
  template <class T>
  T apply(index_t, index_t, index_t, index_t, T s) const noexcept {
    return s;
  }
  template <class T>
  void apply_queries(index_t, index_t, index_t, index_t, T*, index_t) const noexcept {}
  /// d apply / d s (the backward pass): 1.
  template <class T>
  T slope(index_t, index_t, index_t, index_t, T) const noexcept {
    return T(1);
  }
  NoScoreMod bind(const Geometry&) const noexcept { return *this; }
};

/// ALiBi (Press et al. 2022): s += -slope[h] · |i' - j| (for causal attention this is the
/// usual slope · (j - i')). One slope per query head; none given (the default): the paper's
/// slopes for the call's head count. A positional encoding of its own: modules that use it need
/// no RoPE (see encodes_positions).
struct ALiBi {
  static constexpr bool is_identity = false;
  std::vector<double> slopes;  ///< one per query head

  ALiBi() = default;
  /// \param per_head_slopes slope of each query head (size Hq)
  explicit ALiBi(std::vector<double> per_head_slopes) : slopes(std::move(per_head_slopes)) {}

  /// The slopes of the ALiBi paper for `heads` heads, as its reference code and Hugging Face
  /// compute them. A power of two n: 2^(-8 (h + 1) / n), h = 0..n-1. Otherwise, with n the
  /// largest power of two below `heads`: those n slopes, then every other slope of the 2n-head
  /// set, 2^(-8 (2k + 1) / (2n)) for k = 0..heads-n-1 (interleaved between the first ones).
  static ALiBi standard(index_t heads) {
    if (heads < 1)
      throw shape_error("attnkit: ALiBi: the head count must be >= 1, got " +
                        std::to_string(heads));
    index_t n = 1;
    while (n * 2 <= heads) n *= 2;
    std::vector<double> s;
    s.reserve(static_cast<std::size_t>(heads));
    for (index_t h = 0; h < n; ++h)
      s.push_back(std::exp2(-8.0 * static_cast<double>(h + 1) / static_cast<double>(n)));
    for (index_t k = 0; k < heads - n; ++k)
      s.push_back(std::exp2(-8.0 * static_cast<double>(2 * k + 1) / static_cast<double>(2 * n)));
    return ALiBi(std::move(s));
  }

  template <class T>
  T apply(index_t, index_t h, index_t i, index_t j, T s) const noexcept {
    const index_t dist = i >= j ? i - j : j - i;
    return s - static_cast<T>(slopes[static_cast<std::size_t>(h)] * static_cast<double>(dist));
  }
  template <class T>
  void apply_queries(index_t, index_t h, index_t i0, index_t j, T* row, index_t n) const noexcept {
    const T m = static_cast<T>(slopes[static_cast<std::size_t>(h)]);
    for (index_t r = 0; r < n; ++r) {
      const index_t i = i0 + r;
      const index_t dist = i >= j ? i - j : j - i;
      row[r] -= m * static_cast<T>(dist);
    }
  }
  /// d apply / d s (the backward pass): 1.
  template <class T>
  T slope(index_t, index_t, index_t, index_t, T) const noexcept {
    return T(1);
  }
  ALiBi bind(const Geometry& g) const {
    if (slopes.empty()) return standard(g.heads_q);
    if (static_cast<index_t>(slopes.size()) != g.heads_q)
      throw shape_error("attnkit: ALiBi: slopes has " + std::to_string(slopes.size()) +
                        " entries, expected one per query head (" + std::to_string(g.heads_q) +
                        ")");
    return *this;
  }
};

/// Additive per-key bias: s += bias[b, j] (the attention boost on chosen key positions).
/// The bias is a [B, Nk] view (a stride of 0 broadcasts over the batch), or owned by the policy
/// when built with `boost`.
struct KeyBias {
  static constexpr bool is_identity = false;
  TensorView<const float, 2> bias;  ///< [B, Nk]
  std::shared_ptr<const std::vector<float>> owned;

  KeyBias() = default;
  /// \param b a [B, Nk] view of additive biases; it must outlive the attention calls
  explicit KeyBias(TensorView<const float, 2> b) : bias(b) {}

  /// A bias of `value` on the given key positions and 0 elsewhere, for every batch entry.
  static KeyBias boost(index_t nk, const std::vector<index_t>& positions, float value) {
    auto v = std::make_shared<std::vector<float>>(static_cast<std::size_t>(nk), 0.0f);
    for (index_t p : positions) {
      if (p < 0 || p >= nk)
        throw error("attnkit: KeyBias::boost: position " + std::to_string(p) + " is outside [0, " +
                    std::to_string(nk) + ")");
      (*v)[static_cast<std::size_t>(p)] += value;
    }
    KeyBias k;
    k.owned = v;
    k.bias = TensorView<const float, 2>(v->data(), {1, nk}, {0, 1});
    return k;
  }

  template <class T>
  T apply(index_t b, index_t, index_t, index_t j, T s) const noexcept {
    return s + static_cast<T>(bias(bias.extent(0) == 1 ? 0 : b, j));
  }
  template <class T>
  void apply_queries(index_t b, index_t, index_t, index_t j, T* row, index_t n) const noexcept {
    const T add = static_cast<T>(bias(bias.extent(0) == 1 ? 0 : b, j));
    for (index_t r = 0; r < n; ++r) row[r] += add;
  }
  /// d apply / d s (the backward pass): 1.
  template <class T>
  T slope(index_t, index_t, index_t, index_t, T) const noexcept {
    return T(1);
  }
  KeyBias bind(const Geometry& g) const {
    if ((bias.extent(0) != g.batch && bias.extent(0) != 1) || bias.extent(1) != g.nk)
      throw_shape_mismatch("attention", "KeyBias bias", bias.shape(), Shape<2>{g.batch, g.nk});
    return *this;
  }
};

/// Additive score bias: s += bias[b, h, i, j] with i the query row (an attention-bias tensor;
/// -inf hides a pair: weight 0). Any strides, 0 to broadcast: a key bias [B, Nk] is the view of
/// shape [B, Hq, Nq, Nk] with strides {Nk, 0, 0, 1}.
/// \tparam V element type of the bias (float or double)
template <class V = float>
struct ScoreBias {
  static constexpr bool is_identity = false;
  TensorView<const V, 4> bias;  ///< [B, Hq, Nq, Nk]; must outlive the attention calls
  index_t offset = 0;           ///< Nk - Nq of the bound call (row i = position i' - offset)

  ScoreBias() = default;
  /// \param b a [B, Hq, Nq, Nk] view of additive biases (any strides, 0 broadcasts)
  explicit ScoreBias(TensorView<const V, 4> b) : bias(b) {}

  template <class T>
  T apply(index_t b, index_t h, index_t i, index_t j, T s) const noexcept {
    return s + static_cast<T>(bias(b, h, i - offset, j));
  }
  template <class T>
  void apply_queries(index_t b, index_t h, index_t i0, index_t j, T* row,
                     index_t n) const noexcept {
    for (index_t r = 0; r < n; ++r) row[r] += static_cast<T>(bias(b, h, i0 - offset + r, j));
  }
  /// d apply / d s (the backward pass): 1.
  template <class T>
  T slope(index_t, index_t, index_t, index_t, T) const noexcept {
    return T(1);
  }
  ScoreBias bind(const Geometry& g) const {
    const Shape<4> want{g.batch, g.heads_q, g.nq, g.nk};
    if (bias.shape() != want)
      throw_shape_mismatch("attention", "ScoreBias bias", bias.shape(), want);
    ScoreBias r = *this;
    r.offset = g.query_offset();
    return r;
  }
};

/// Temperature: s /= tau.
struct Temperature {
  static constexpr bool is_identity = false;
  double tau = 1.0;  ///< > 0
  Temperature() = default;
  /// \param t the temperature (> 0)
  explicit Temperature(double t) : tau(t) {
    if (!(t > 0) || !std::isfinite(t)) throw error("attnkit: Temperature: tau must be > 0");
  }
  template <class T>
  T apply(index_t, index_t, index_t, index_t, T s) const noexcept {
    return s / static_cast<T>(tau);
  }
  template <class T>
  void apply_queries(index_t, index_t, index_t, index_t, T* row, index_t n) const noexcept {
    const T inv = static_cast<T>(1.0 / tau);
    for (index_t c = 0; c < n; ++c) row[c] *= inv;
  }
  /// d apply / d s (the backward pass): 1 / tau.
  template <class T>
  T slope(index_t, index_t, index_t, index_t, T) const noexcept {
    return static_cast<T>(1.0 / tau);
  }
  Temperature bind(const Geometry&) const noexcept { return *this; }
};

/// Several score mods applied left to right.
/// \tparam Mods models of score_mod
template <class... Mods>
struct ScoreModChain {
  static_assert((score_mod<Mods> && ...),
                "attnkit: every Mods of ScoreModChain must model attnkit::policy::score_mod");
  static constexpr bool is_identity = (Mods::is_identity && ...);
  std::tuple<Mods...> mods;
  ScoreModChain() = default;
  explicit ScoreModChain(Mods... m) : mods(std::move(m)...) {}
  template <class T>
  T apply(index_t b, index_t h, index_t i, index_t j, T s) const noexcept {
    std::apply([&](const auto&... m) { ((s = m.apply(b, h, i, j, s)), ...); }, mods);
    return s;
  }
  template <class T>
  void apply_queries(index_t b, index_t h, index_t i0, index_t j, T* row,
                     index_t n) const noexcept {
    std::apply([&](const auto&... m) { (m.apply_queries(b, h, i0, j, row, n), ...); }, mods);
  }
  /// d apply / d s (the backward pass): the product of the mods' slopes, each at its input.
  /// Needs every mod to have slope() (policy::has_score_slope).
  template <class T>
  T slope(index_t b, index_t h, index_t i, index_t j, T s) const noexcept {
    T d = T(1);
    std::apply(
        [&](const auto&... m) { ((d *= m.slope(b, h, i, j, s), s = m.apply(b, h, i, j, s)), ...); },
        mods);
    return d;
  }
  ScoreModChain bind(const Geometry& g) const {
    ScoreModChain r = *this;
    std::apply([&](auto&... m) { ((m = m.bind(g)), ...); }, r.mods);
    return r;
  }
};

static_assert(score_mod<NoScoreMod> && score_mod<ALiBi> && score_mod<KeyBias> &&
              score_mod<ScoreBias<float>> && score_mod<ScoreBias<double>> &&
              score_mod<Temperature>);

/// Whether a score mod encodes token positions itself (ALiBi, or a chain holding it), so the
/// attention using it takes no rotary embedding: model::Decoder::load then sets no RoPE.
/// Specialize it as true for a positional score mod of your own.
/// \tparam M a score_mod
template <class M>
inline constexpr bool encodes_positions = false;
template <>
inline constexpr bool encodes_positions<ALiBi> = true;
template <class... Mods>
inline constexpr bool encodes_positions<ScoreModChain<Mods...>> = (encodes_positions<Mods> || ...);

}  // namespace attnkit::policy
