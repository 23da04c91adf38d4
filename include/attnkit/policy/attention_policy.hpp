// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// AttentionPolicy: one attention variant = activation + mask + score mod + gate.
#pragma once

#include <utility>

#include "attnkit/policy/activation.hpp"
#include "attnkit/policy/concepts.hpp"
#include "attnkit/policy/gate.hpp"
#include "attnkit/policy/mask.hpp"
#include "attnkit/policy/score_mod.hpp"

namespace attnkit::policy {

/// An attention variant. Its type picks the kernel's code path at compile time; its members
/// carry the runtime values (window, lengths, flags, biases, gate values).
/// \tparam Activation a score_activation (Softmax, Sigmoid, ...)
/// \tparam Mask a mask_policy (NoMask, Causal, And<...>, ...)
/// \tparam ScoreMod a score_mod (NoScoreMod, ALiBi, ...)
/// \tparam Gate a gate_policy (NoGate, HeadwiseSigmoid, ...)
template <class Activation = Softmax, class Mask = NoMask, class ScoreMod = NoScoreMod,
          class Gate = NoGate>
struct AttentionPolicy {
  static_assert(score_activation<Activation>,
                "attnkit: Activation of AttentionPolicy must model "
                "attnkit::policy::score_activation: needs static normalization, map(double), "
                "derivative(double), simd_map(xsimd::batch<T, Arch>) and bind(Geometry)");
  static_assert(mask_policy<Mask>,
                "attnkit: Mask of AttentionPolicy must model attnkit::policy::mask_policy: "
                "needs visible(b, h, i, j), classify(b, h, i0, i1, j0, j1) -> TileClass and "
                "bind(Geometry)");
  static_assert(score_mod<ScoreMod>,
                "attnkit: ScoreMod of AttentionPolicy must model attnkit::policy::score_mod: "
                "needs static is_identity, apply, apply_queries and bind(Geometry)");
  static_assert(gate_policy<Gate>,
                "attnkit: Gate of AttentionPolicy must model attnkit::policy::gate_policy: "
                "needs static is_identity, apply_row and bind(Geometry)");

  using activation_type = Activation;
  using mask_type = Mask;
  using score_mod_type = ScoreMod;
  using gate_type = Gate;

  Activation activation{};
  Mask mask{};
  ScoreMod score_mod{};
  Gate gate{};

  AttentionPolicy() = default;
  explicit AttentionPolicy(Activation a, Mask m = {}, ScoreMod s = {}, Gate g = {})
      : activation(std::move(a)), mask(std::move(m)), score_mod(std::move(s)), gate(std::move(g)) {}

  /// The policy with every part bound to (and checked against) the shapes of one call.
  AttentionPolicy bind(const Geometry& g) const {
    return AttentionPolicy(activation.bind(g), mask.bind(g), score_mod.bind(g), gate.bind(g));
  }
};

template <class A>
AttentionPolicy(A) -> AttentionPolicy<A>;
template <class A, class M>
AttentionPolicy(A, M) -> AttentionPolicy<A, M>;
template <class A, class M, class S>
AttentionPolicy(A, M, S) -> AttentionPolicy<A, M, S>;
template <class A, class M, class S, class G>
AttentionPolicy(A, M, S, G) -> AttentionPolicy<A, M, S, G>;

/// Whether P is an AttentionPolicy (what attention() accepts).
template <class P>
inline constexpr bool is_attention_policy = false;
template <class A, class M, class S, class G>
inline constexpr bool is_attention_policy<AttentionPolicy<A, M, S, G>> = true;

}  // namespace attnkit::policy
