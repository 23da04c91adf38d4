// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Score activations: how scaled scores s become attention weights P (docs/CLI.md, "Activations").
#pragma once

#include <cmath>

#include "attnkit/core/error.hpp"
#include "attnkit/policy/concepts.hpp"

namespace attnkit::policy {

/// P = exp(s) / Σ_visible exp(s): online max and sum (FlashAttention-2).
struct Softmax {
  static constexpr Normalization normalization = Normalization::over_keys_exp;
  static constexpr ActivationOp op = ActivationOp::exp;
  /// The pre-normalization map (identity: the kernel exponentiates).
  double map(double s) const noexcept { return s; }
  Softmax bind(const Geometry&) const noexcept { return *this; }
};

/// Softmax of C·tanh(s / C) (logit soft-capping, as in Gemma 2).
struct Softcap {
  static constexpr Normalization normalization = Normalization::over_keys_exp;
  static constexpr ActivationOp op = ActivationOp::softcap;
  double cap = 50.0;  ///< C > 0
  Softcap() = default;
  /// \param c the cap C (> 0)
  explicit Softcap(double c) : cap(c) {
    if (!(c > 0) || !std::isfinite(c)) throw error("attnkit: Softcap: the cap must be > 0");
  }
  /// The capped score C·tanh(s / C), which the kernel then exponentiates and normalizes.
  double map(double s) const noexcept { return cap * std::tanh(s / cap); }
  Softcap bind(const Geometry&) const noexcept { return *this; }
};

/// P = sigmoid(s): elementwise, no running state.
struct Sigmoid {
  static constexpr Normalization normalization = Normalization::none;
  static constexpr ActivationOp op = ActivationOp::sigmoid;
  double bias = 0.0;  ///< always 0 for Sigmoid (shared field with SigmoidBias for the kernel)
  double map(double s) const noexcept { return 1.0 / (1.0 + std::exp(-s)); }
  Sigmoid bind(const Geometry&) const noexcept { return *this; }
};

/// P = sigmoid(s + b), b = -ln(Nk) unless given (sigmoid attention, Ramapuram et al. 2024).
struct SigmoidBias {
  static constexpr Normalization normalization = Normalization::none;
  static constexpr ActivationOp op = ActivationOp::sigmoid;
  bool bias_given = false;  ///< false: b = -ln(Nk) when the call binds the policy
  double bias = 0.0;        ///< b (after bind, always the value in use)
  SigmoidBias() = default;
  /// \param b the bias b
  explicit SigmoidBias(double b) : bias_given(true), bias(b) {}
  double map(double s) const noexcept { return 1.0 / (1.0 + std::exp(-(s + bias))); }
  SigmoidBias bind(const Geometry& g) const noexcept {
    SigmoidBias r = *this;
    if (!bias_given) r.bias = g.nk > 0 ? -std::log(static_cast<double>(g.nk)) : 0.0;
    return r;
  }
};

/// P = sigmoid(s) / Σ_visible sigmoid(s): a running sum only (sigmoid is bounded, no max).
struct NormalizedSigmoid {
  static constexpr Normalization normalization = Normalization::over_keys_sum;
  static constexpr ActivationOp op = ActivationOp::sigmoid;
  double bias = 0.0;
  double map(double s) const noexcept { return 1.0 / (1.0 + std::exp(-s)); }
  NormalizedSigmoid bind(const Geometry&) const noexcept { return *this; }
};

/// P_h = exp(s_h) / Σ_h' exp(s_h') over the Hq query heads of one batch entry, per (i, j),
/// over the heads for which (i, j) is visible.
struct HeadSoftmax {
  static constexpr Normalization normalization = Normalization::over_heads;
  static constexpr ActivationOp op = ActivationOp::exp;
  double map(double s) const noexcept { return s; }
  HeadSoftmax bind(const Geometry&) const noexcept { return *this; }
};

/// P = s (linear attention without a feature map; no normalization).
struct Linear {
  static constexpr Normalization normalization = Normalization::none;
  static constexpr ActivationOp op = ActivationOp::identity;
  double map(double s) const noexcept { return s; }
  Linear bind(const Geometry&) const noexcept { return *this; }
};

/// P = max(s, 0).
struct ReLU {
  static constexpr Normalization normalization = Normalization::none;
  static constexpr ActivationOp op = ActivationOp::relu;
  double map(double s) const noexcept { return s > 0 ? s : 0.0; }
  ReLU bind(const Geometry&) const noexcept { return *this; }
};

static_assert(score_activation<Softmax> && score_activation<Softcap> &&
              score_activation<Sigmoid> && score_activation<SigmoidBias> &&
              score_activation<NormalizedSigmoid> && score_activation<HeadSoftmax> &&
              score_activation<Linear> && score_activation<ReLU>);

}  // namespace attnkit::policy
