// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The concepts of the attention policy families (activation, score mod, mask, gate), each built
// from small named sub-concepts so a failing requirement is named in the compiler's message.
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "attnkit/core/shape.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit::policy {

/// What a mask says about a tile of (query, key) pairs.
enum class TileClass : std::uint8_t {
  empty,    ///< no pair is visible: the kernel skips the tile
  full,     ///< every pair is visible: the kernel tests no element
  partial,  ///< some pairs may be visible: the kernel tests each element
};

/// How an activation normalizes its weights.
enum class Normalization : std::uint8_t {
  none,           ///< P = f(s) elementwise (sigmoid, linear, relu): no running state
  over_keys_exp,  ///< P = exp(g(s)) / Σ_keys exp(g(s)) (softmax, softcap, normalized sigmoid
                  ///< with g = log sigmoid): online max and sum
  over_keys_sum,  ///< P = f(s) / Σ_keys f(s) with f >= 0 bounded (user types): running sum
  over_heads,     ///< P = exp(s_h) / Σ_heads exp(s_h') (head softmax): per (i, j) across heads
};

/// The shapes of one attention call, given to policies when the call binds them.
struct Geometry {
  index_t batch = 0;     ///< B
  index_t heads_q = 0;   ///< Hq
  index_t heads_kv = 0;  ///< Hkv
  index_t nq = 0;        ///< query rows
  index_t nk = 0;        ///< keys
  index_t d = 0;         ///< head dimension of q and k
  index_t dv = 0;        ///< head dimension of v
  /// Absolute position of query row 0 (bottom-right alignment): i' = i + (Nk - Nq).
  constexpr index_t query_offset() const noexcept { return nk - nq; }
};

// ---------------------------------------------------------------------------------------------
// score activation

/// Requirements: `A::normalization` is a constexpr Normalization.
template <class A>
concept activation_normalization = requires {
  { A::normalization } -> std::convertible_to<Normalization>;
  requires std::is_same_v<std::remove_cv_t<decltype(A::normalization)>, Normalization>;
};

/// Requirements: `a.map(s)` on a double, the scalar meaning of the elementwise map (the double
/// references and scalar paths), `a.derivative(s)`, its derivative d map / d s (the backward
/// pass), and `a.bind(geometry)` returning the bound activation.
template <class A>
concept activation_scalar_map = requires(const A& a, double s, const Geometry& g) {
  { a.map(s) } -> std::convertible_to<double>;
  { a.derivative(s) } -> std::convertible_to<double>;
  { a.bind(g) } -> std::convertible_to<A>;
};

/// Requirements: `a.simd_map(s)` maps an xsimd batch of scores lane by lane, for float and double
/// and any architecture (a member template over the batch; checked here on SSE2, which every
/// x86-64 compiler enables). It is the kernel's hook: with Normalization::over_keys_exp and
/// over_heads the map before the exponential (identity for softmax), otherwise the weight.
template <class A>
concept activation_simd_map = requires(const A& a, const xsimd::batch<float, xsimd::sse2>& f,
                                       const xsimd::batch<double, xsimd::sse2>& d) {
  { a.simd_map(f) } -> std::same_as<xsimd::batch<float, xsimd::sse2>>;
  { a.simd_map(d) } -> std::same_as<xsimd::batch<double, xsimd::sse2>>;
};

/// A score activation: maps scaled scores s to weights P.
/// Requirements: activation_normalization, activation_scalar_map, activation_simd_map,
/// copyable. Optional: `static constexpr bool identity_map = true` when map(s) = s, which lets
/// the kernel skip the map (and, for an elementwise activation, the pass over full tiles).
template <class A>
concept score_activation = std::copy_constructible<A> && activation_normalization<A> &&
    activation_scalar_map<A> && activation_simd_map<A>;

/// Whether activation A declares map(s) = s (`static constexpr bool identity_map = true`).
template <class A>
inline constexpr bool is_identity_map = [] {
  if constexpr (requires { A::identity_map; }) {
    return static_cast<bool>(A::identity_map);
  } else {
    return false;
  }
}();

/// Whether an over_keys_exp activation A computes its exponentiated weights itself (optional
/// hooks, all three or none), a fast path for a map whose exponential is cheaper than the map:
///   simd_exp_lead(s)        an upper bound of map(s) that is also within a constant of it
///                           (the kernel keeps the running max m of the leads, natural units);
///   simd_exp_prepare(m)     any per-row state derived from m (once per tile and row vector);
///   simd_exp_weight(s, st)  exp(map(s) - m).
/// Normalized sigmoid, the softmax of log sigmoid(x), has lead min(x, 0) and weight
/// exp(min(x, 0) - m) · sigmoid(|x|), which it computes with one exponential and no logarithm.
template <class A>
inline constexpr bool has_exp_weight =
    A::normalization ==
    Normalization::over_keys_exp&& requires(const A& a, const xsimd::batch<float, xsimd::sse2>& f,
                                            const xsimd::batch<double, xsimd::sse2>& d) {
  { a.simd_exp_lead(f) } -> std::same_as<xsimd::batch<float, xsimd::sse2>>;
  { a.simd_exp_weight(f, a.simd_exp_prepare(f)) } -> std::same_as<xsimd::batch<float, xsimd::sse2>>;
  { a.simd_exp_lead(d) } -> std::same_as<xsimd::batch<double, xsimd::sse2>>;
  {
    a.simd_exp_weight(d, a.simd_exp_prepare(d))
    } -> std::same_as<xsimd::batch<double, xsimd::sse2>>;
};

/// Whether an over_keys_exp activation A carries learned sink logits (optional hook):
///   sink_logit(h)           a finite logit z_h per query head, in the map's units, that joins
///                           the row's denominator and takes no value:
///                           P_ij = exp(map(s_ij)) / (exp(z_h) + Σ_visible exp(map(s_ij'))).
/// The kernel starts each row's running max at z_h and its sum at 1 (policy::SinkLogits).
template <class A>
inline constexpr bool has_sink_logits = A::normalization ==
                                        Normalization::over_keys_exp&& requires(const A& a,
                                                                                index_t h) {
  { a.sink_logit(h) } -> std::convertible_to<double>;
};

/// Whether activation A has the optional SIMD derivative hook `a.simd_derivative(s, m)`: d map /
/// d s on a batch, given the scores s and m = simd_map(s) (sigmoid's is m (1 - m)). The backward
/// kernel uses it; without it, it calls derivative(double) lane by lane.
template <class A>
inline constexpr bool has_simd_derivative = requires(const A& a,
                                                     const xsimd::batch<float, xsimd::sse2>& f,
                                                     const xsimd::batch<double, xsimd::sse2>& d) {
  { a.simd_derivative(f, f) } -> std::same_as<xsimd::batch<float, xsimd::sse2>>;
  { a.simd_derivative(d, d) } -> std::same_as<xsimd::batch<double, xsimd::sse2>>;
};

// ---------------------------------------------------------------------------------------------
// score mod

/// Requirements: `M::is_identity` is a constexpr bool (true: the kernel skips the mod).
template <class M>
concept score_mod_identity_trait = requires {
  requires std::is_same_v < std::remove_cv_t<decltype(M::is_identity)>,
  bool > ;
};

/// Requirements: `m.apply(b, h, i_abs, j, s)` returns the modified score (float and double), and
/// `m.apply_queries(b, h, i0_abs, j, row, n)` modifies in place row[r], the score of key j for
/// the query at absolute position i0_abs + r, r in [0, n) (the kernel's S^T layout).
template <class M>
concept score_mod_elementwise = requires(const M& m, index_t b, index_t h, index_t i, index_t j,
                                         float sf, double sd, float* rf, double* rd, index_t n) {
  { m.apply(b, h, i, j, sf) } -> std::convertible_to<float>;
  { m.apply(b, h, i, j, sd) } -> std::convertible_to<double>;
  m.apply_queries(b, h, i, j, rf, n);
  m.apply_queries(b, h, i, j, rd, n);
};

/// Requirements: `m.bind(geometry)` validates the runtime values against the call's shapes
/// (throws shape_error) and returns the bound mod.
template <class P>
concept bindable = requires(const P& p, const Geometry& g) {
  { p.bind(g) } -> std::convertible_to<P>;
};

/// Whether score mod M has the optional hook `m.slope(b, h, i_abs, j, s)`: d apply / d s at s
/// (float and double), which attention_backward needs (every built-in mod has it).
template <class M>
inline constexpr bool has_score_slope = requires(const M& m, index_t b, float sf, double sd) {
  { m.slope(b, b, b, b, sf) } -> std::convertible_to<float>;
  { m.slope(b, b, b, b, sd) } -> std::convertible_to<double>;
};

/// A score mod: an elementwise change of the scaled score that may read (b, h, i', j).
/// Requirements: score_mod_identity_trait, score_mod_elementwise, bindable, copyable.
template <class M>
concept score_mod = std::copy_constructible<M> && score_mod_identity_trait<M> &&
    score_mod_elementwise<M> && bindable<M>;

// ---------------------------------------------------------------------------------------------
// mask

/// Requirements: `m.visible(b, h, i_abs, j)` is whether key j is visible to the query at
/// absolute position i_abs (= i + Nk - Nq) of head h of batch entry b.
template <class M>
concept mask_visibility = requires(const M& m, index_t b, index_t h, index_t i, index_t j) {
  { m.visible(b, h, i, j) } -> std::convertible_to<bool>;
};

/// Requirements: `m.classify(b, h, i0, i1, j0, j1)` returns a TileClass for the absolute query
/// positions [i0, i1) and keys [j0, j1): Empty only if no pair is visible, Full only if all are.
template <class M>
concept mask_tile_classifier = requires(const M& m, index_t b, index_t h, index_t i0, index_t i1,
                                        index_t j0, index_t j1) {
  { m.classify(b, h, i0, i1, j0, j1) } -> std::same_as<TileClass>;
};

/// A mask: a visible set per (batch, head, query, key) with a tile classifier.
/// Requirements: mask_visibility, mask_tile_classifier, bindable, copyable.
template <class M>
concept mask_policy =
    std::copy_constructible<M> && mask_visibility<M> && mask_tile_classifier<M> && bindable<M>;

// ---------------------------------------------------------------------------------------------
// gate

/// Requirements: `G::is_identity` is a constexpr bool (true: no epilogue).
template <class G>
concept gate_identity_trait = requires {
  requires std::is_same_v < std::remove_cv_t<decltype(G::is_identity)>,
  bool > ;
};

/// Requirements: `g.apply_row(b, h, i, row, dv)` multiplies the output row of query row i in
/// place (float and double rows).
template <class G>
concept gate_epilogue = requires(const G& g, index_t b, index_t h, index_t i, float* rf, double* rd,
                                 index_t n) {
  g.apply_row(b, h, i, rf, n);
  g.apply_row(b, h, i, rd, n);
};

/// A gate: an epilogue on each attention output row.
/// Requirements: gate_identity_trait, gate_epilogue, bindable, copyable.
template <class G>
concept gate_policy =
    std::copy_constructible<G> && gate_identity_trait<G> && gate_epilogue<G> && bindable<G>;

}  // namespace attnkit::policy
