// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Score activations: how scaled scores s become attention weights P (docs/CLI.md, "Activations").
//
// Each activation is a policy with four hooks (policy/concepts.hpp, score_activation):
//   normalization      none, over keys by sum, over keys exponentiated, over heads;
//   map(double)        the scalar map (the double references, scalar paths);
//   derivative(double) d map / d s (the backward pass);
//   simd_map(batch)    the same map on an xsimd batch of any architecture: the kernel's hook.
// Optional: simd_derivative(s, m), the derivative on a batch given the scores s and their map
// m = simd_map(s) (the backward kernel's hook; without it the backward calls derivative(double)
// lane by lane).
// The fused kernel calls these and never names an activation, so a user-defined activation
// written the same way (docs/extending.md) runs on the same code path as the built-ins. The
// built-ins also carry their registry name, parameter kind and help line (policy/registry.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "attnkit/core/error.hpp"
#include "attnkit/policy/concepts.hpp"
#include "attnkit/simd/fast_math.hpp"

namespace attnkit::policy {

/// What a named activation takes besides its name (policy/registry.hpp): nothing, an optional
/// bias b (`--bias X`), or a required value (`softcap=C`).
enum class ActivationParam : std::uint8_t { none, bias, cap };

namespace detail {
inline constexpr double log2e = 1.4426950408889634;
/// -b · log2 e in T: the constant simd::sigmoid_batch takes for sigmoid(s + b).
template <class T>
inline T neg_bias_log2e(double b) noexcept {
  return static_cast<T>(-b * log2e);
}
/// sigmoid(x), without overflow for either sign.
inline double sigmoid(double x) noexcept {
  return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
}
/// d sigmoid(x) / dx = sigmoid(x) (1 - sigmoid(x)).
inline double sigmoid_slope(double x) noexcept {
  const double p = sigmoid(x);
  return p * (1.0 - p);
}
/// sigmoid(s + b) lane by lane (simd::sigmoid_batch takes -b · log2 e).
template <class T, class Arch>
inline xsimd::batch<T, Arch> simd_sigmoid(const xsimd::batch<T, Arch>& s, double b) noexcept {
  return simd::sigmoid_batch<Arch, T>(s, xsimd::batch<T, Arch>(neg_bias_log2e<T>(b)));
}
}  // namespace detail

/// P = exp(s) / Σ_visible exp(s): online max and sum (FlashAttention-2).
struct Softmax {
  static constexpr std::string_view name = "softmax";  ///< registry name (policy/registry.hpp)
  static constexpr ActivationParam param = ActivationParam::none;
  static constexpr std::string_view help = "exp(s) / sum over the visible keys";
  static constexpr Normalization normalization = Normalization::over_keys_exp;
  static constexpr bool identity_map = true;  ///< the kernel exponentiates s itself
  double map(double s) const noexcept { return s; }
  double derivative(double) const noexcept { return 1.0; }
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_map(const xsimd::batch<T, Arch>& s) const noexcept {
    return s;
  }
  Softmax bind(const Geometry&) const noexcept { return *this; }
};

/// Softmax of C·tanh(s / C) (logit soft-capping, as in Gemma 2).
struct Softcap {
  static constexpr std::string_view name = "softcap";  ///< registry name (policy/registry.hpp)
  static constexpr ActivationParam param = ActivationParam::cap;
  static constexpr std::string_view help = "softmax of C tanh(s / C) (spelled softcap=C, C > 0)";
  static constexpr Normalization normalization = Normalization::over_keys_exp;
  double cap = 50.0;  ///< C > 0
  Softcap() = default;
  /// \param c the cap C (> 0)
  explicit Softcap(double c) : cap(c) {
    if (!(c > 0) || !std::isfinite(c)) throw error("attnkit: Softcap: the cap must be > 0");
  }
  /// The capped score C·tanh(s / C), which the kernel then exponentiates and normalizes.
  double map(double s) const noexcept { return cap * std::tanh(s / cap); }
  double derivative(double s) const noexcept {
    const double t = std::tanh(s / cap);
    return 1.0 - t * t;
  }
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_map(const xsimd::batch<T, Arch>& s) const noexcept {
    using B = xsimd::batch<T, Arch>;
    const T c = static_cast<T>(cap);
    return B(c) * simd::tanh_batch<Arch, T>(s * B(T(1) / c));
  }
  /// The derivative from the map's value m = C tanh(s / C): 1 - (m / C)^2 (the backward pass).
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_derivative(const xsimd::batch<T, Arch>&,
                                        const xsimd::batch<T, Arch>& m) const noexcept {
    using B = xsimd::batch<T, Arch>;
    const B t = m * B(static_cast<T>(1.0 / cap));
    return xsimd::fnma(t, t, B(T(1)));
  }
  Softcap bind(const Geometry&) const noexcept { return *this; }
};

/// P = sigmoid(s): elementwise, no running state.
struct Sigmoid {
  static constexpr std::string_view name = "sigmoid";  ///< registry name (policy/registry.hpp)
  static constexpr ActivationParam param = ActivationParam::none;
  static constexpr std::string_view help = "sigmoid(s)";
  static constexpr Normalization normalization = Normalization::none;
  double map(double s) const noexcept { return detail::sigmoid(s); }
  double derivative(double s) const noexcept { return detail::sigmoid_slope(s); }
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_map(const xsimd::batch<T, Arch>& s) const noexcept {
    return detail::simd_sigmoid(s, 0.0);
  }
  /// The derivative from the map's value p = sigmoid(s): p (1 - p) (the backward pass).
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_derivative(const xsimd::batch<T, Arch>&,
                                        const xsimd::batch<T, Arch>& p) const noexcept {
    return xsimd::fnma(p, p, p);
  }
  Sigmoid bind(const Geometry&) const noexcept { return *this; }
};

/// P = sigmoid(s + b), b = -ln(Nk) unless given (sigmoid attention, Ramapuram et al. 2024).
struct SigmoidBias {
  static constexpr std::string_view name = "sigmoid-bias";  ///< registry name (policy/registry.hpp)
  static constexpr ActivationParam param = ActivationParam::bias;
  static constexpr std::string_view help = "sigmoid(s + b), b = -ln Nk unless given";
  static constexpr Normalization normalization = Normalization::none;
  bool bias_given = false;  ///< false: b = -ln(Nk) when the call binds the policy
  double bias = 0.0;        ///< b (after bind, always the value in use)
  SigmoidBias() = default;
  /// \param b the bias b
  explicit SigmoidBias(double b) : bias_given(true), bias(b) {}
  double map(double s) const noexcept { return detail::sigmoid(s + bias); }
  double derivative(double s) const noexcept { return detail::sigmoid_slope(s + bias); }
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_map(const xsimd::batch<T, Arch>& s) const noexcept {
    return detail::simd_sigmoid(s, bias);
  }
  /// The derivative from the map's value p = sigmoid(s + b): p (1 - p) (the backward pass).
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_derivative(const xsimd::batch<T, Arch>&,
                                        const xsimd::batch<T, Arch>& p) const noexcept {
    return xsimd::fnma(p, p, p);
  }
  SigmoidBias bind(const Geometry& g) const noexcept {
    SigmoidBias r = *this;
    if (!bias_given) r.bias = g.nk > 0 ? -std::log(static_cast<double>(g.nk)) : 0.0;
    return r;
  }
};

/// P = sigmoid(s + b) / Σ_visible sigmoid(s + b), b = 0 unless given, computed as the softmax of
/// log sigmoid(s + b): the same weights, and exact where every sigmoid underflows (scores near
/// -1e4 give softmax(s), the limit, instead of 0 / 0).
struct NormalizedSigmoid {
  /// registry name (policy/registry.hpp)
  static constexpr std::string_view name = "normalized-sigmoid";
  static constexpr ActivationParam param = ActivationParam::bias;
  static constexpr std::string_view help =
      "sigmoid(s + b) / sum over the visible keys, b = 0 unless given";
  static constexpr Normalization normalization = Normalization::over_keys_exp;
  double bias = 0.0;  ///< b
  NormalizedSigmoid() = default;
  /// \param b the bias b
  explicit NormalizedSigmoid(double b) : bias(b) {}
  /// log sigmoid(s + b), which the kernel then exponentiates and normalizes.
  double map(double s) const noexcept {
    const double x = s + bias;
    return std::min(x, 0.0) - std::log1p(std::exp(-std::abs(x)));
  }
  /// d log sigmoid(x) / dx = sigmoid(-x).
  double derivative(double s) const noexcept { return detail::sigmoid(-(s + bias)); }
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_map(const xsimd::batch<T, Arch>& s) const noexcept {
    return simd::log_sigmoid_batch<Arch, T>(s, static_cast<T>(bias));
  }
  /// The derivative sigmoid(-(s + b)) (the backward pass; computed from s, not as 1 - e^m,
  /// which cancels where sigmoid(s + b) is near 1).
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_derivative(const xsimd::batch<T, Arch>& s,
                                        const xsimd::batch<T, Arch>&) const noexcept {
    using B = xsimd::batch<T, Arch>;
    return simd::sigmoid_batch<Arch, T>(-s, B(static_cast<T>(bias * detail::log2e)));
  }
  // The kernel's path (concepts.hpp, has_exp_weight): with x = s + b, u = e^-|x| and m the
  // running max of min(x, 0), exp(log sigmoid(x) - m) = exp(min(x, 0) - m) / (1 + u), and
  // exp(min(x, 0) - m) = e^-m · (x < 0 ? u : 1), so the weight is e^-m · sigmoid(x): the
  // sigmoid and one multiply per score. When m is so negative that e^-m could overflow (every
  // sigmoid of the row underflows, which a running sum cannot represent), the row takes
  // exp(min(x, 0) - m) / (1 + u) itself: a second exponential.
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_exp_lead(const xsimd::batch<T, Arch>& s) const noexcept {
    using B = xsimd::batch<T, Arch>;
    return xsimd::min(s + B(static_cast<T>(bias)), B(T(0)));
  }
  /// min(x, 0) <= 0: once a row's max is 0 it cannot move, and the kernel skips the max pass.
  static constexpr double exp_lead_bound = 0.0;
  /// The row state of simd_exp_weight: -m, e^-m, and whether e^-m is safe for every lane (a
  /// lane with m below -1e29 has seen no visible key: its weights are all selected away).
  template <class T, class Arch>
  struct ExpRow {
    xsimd::batch<T, Arch> neg_m, scale, neg_b_log2e;
    bool fast;
  };
  template <class T, class Arch>
  ExpRow<T, Arch> simd_exp_prepare(const xsimd::batch<T, Arch>& m) const noexcept {
    using B = xsimd::batch<T, Arch>;
    // e^-m below ~1e17 (fp32) / 1e260 (fp64); a key with x < m - 47 (fp32) or m - 108 (fp64)
    // then has a weight below e^-47 or e^-108 of the row's largest, whatever u rounds to.
    constexpr T floor = std::is_same_v<T, float> ? T(-40) : T(-600);
    const bool fast = xsimd::all((m >= B(floor)) | (m < B(T(-1e29))));
    constexpr T log2e = T(detail::log2e);
    const B scale = simd::exp2_batch<Arch, T>(xsimd::min(-m, B(-floor)) * B(log2e));
    return {-m, scale, B(detail::neg_bias_log2e<T>(bias)), fast};
  }
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_exp_weight(const xsimd::batch<T, Arch>& s,
                                        const ExpRow<T, Arch>& row) const noexcept {
    using B = xsimd::batch<T, Arch>;
    // e^-m · (x < 0 ? u : 1) / (1 + u) = e^-m · sigmoid(x)
    if (row.fast) return simd::sigmoid_batch<Arch, T>(s, row.neg_b_log2e) * row.scale;
    constexpr T log2e = T(detail::log2e);
    constexpr T floor = std::is_same_v<T, float> ? T(-160) : T(-1100);
    const B x = s + B(static_cast<T>(bias));
    const B u = simd::exp2_batch<Arch, T>(xsimd::max(xsimd::abs(x) * B(-log2e), B(floor)));
    const B r = simd::reciprocal_batch<Arch, T>(B(T(1)) + u);
    return simd::exp2_batch<Arch, T>((xsimd::min(x, B(T(0))) + row.neg_m) * B(log2e)) * r;
  }
  NormalizedSigmoid bind(const Geometry&) const noexcept { return *this; }
};

/// P_h = exp(s_h) / Σ_h' exp(s_h') over the Hq query heads of one batch entry, per (i, j),
/// over the heads for which (i, j) is visible.
struct HeadSoftmax {
  static constexpr std::string_view name = "head-softmax";  ///< registry name (policy/registry.hpp)
  static constexpr ActivationParam param = ActivationParam::none;
  static constexpr std::string_view help = "softmax over the Hq query heads, per (i, j)";
  static constexpr Normalization normalization = Normalization::over_heads;
  static constexpr bool identity_map = true;
  double map(double s) const noexcept { return s; }
  double derivative(double) const noexcept { return 1.0; }
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_map(const xsimd::batch<T, Arch>& s) const noexcept {
    return s;
  }
  HeadSoftmax bind(const Geometry&) const noexcept { return *this; }
};

/// P = s (linear attention without a feature map; no normalization).
struct Linear {
  static constexpr std::string_view name = "linear";  ///< registry name (policy/registry.hpp)
  static constexpr ActivationParam param = ActivationParam::none;
  static constexpr std::string_view help = "s";
  static constexpr Normalization normalization = Normalization::none;
  static constexpr bool identity_map = true;
  double map(double s) const noexcept { return s; }
  double derivative(double) const noexcept { return 1.0; }
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_map(const xsimd::batch<T, Arch>& s) const noexcept {
    return s;
  }
  Linear bind(const Geometry&) const noexcept { return *this; }
};

/// P = max(s, 0).
struct ReLU {
  static constexpr std::string_view name = "relu";  ///< registry name (policy/registry.hpp)
  static constexpr ActivationParam param = ActivationParam::none;
  static constexpr std::string_view help = "max(s, 0)";
  static constexpr Normalization normalization = Normalization::none;
  double map(double s) const noexcept { return s > 0 ? s : 0.0; }
  /// 1 for s > 0, else 0 (the subgradient 0 at s = 0).
  double derivative(double s) const noexcept { return s > 0 ? 1.0 : 0.0; }
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_map(const xsimd::batch<T, Arch>& s) const noexcept {
    return xsimd::max(s, xsimd::batch<T, Arch>(T(0)));
  }
  /// 1 for s > 0, else 0 (the backward pass).
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_derivative(const xsimd::batch<T, Arch>& s,
                                        const xsimd::batch<T, Arch>&) const noexcept {
    using B = xsimd::batch<T, Arch>;
    return xsimd::select(s > B(T(0)), B(T(1)), B(T(0)));
  }
  ReLU bind(const Geometry&) const noexcept { return *this; }
};

/// Learned sink logits (as in gpt-oss) on an over_keys_exp activation A: a logit z_h per query
/// head joins each row's denominator and takes no value,
///   P_ij = exp(map(s_ij)) / (exp(z_h) + Σ_visible exp(map(s_ij'))),
/// so a row's weights sum to less than 1 and a row with no visible key is 0. Everything else is
/// A's (map, derivative, the kernel's hooks). The logits are viewed, not copied: the storage
/// must outlive every call that uses the policy. bind() checks that there is one per query head.
template <class A>
struct SinkLogits : A {
  static_assert(A::normalization == Normalization::over_keys_exp,
                "attnkit: SinkLogits needs an activation normalized over the keys by "
                "exponentiation (softmax, softcap, normalized-sigmoid or a user's)");
  std::span<const double> logits;  ///< [Hq], finite
  SinkLogits() = default;
  /// \param a the activation \param z one finite logit per query head
  SinkLogits(const A& a, std::span<const double> z) : A(a), logits(z) {
    for (std::size_t h = 0; h < z.size(); ++h)
      if (!std::isfinite(z[h]))
        throw error("attnkit: SinkLogits: the sink logit of head " + std::to_string(h) +
                    " is not finite");
  }
  /// z_h
  double sink_logit(index_t h) const noexcept { return logits[static_cast<std::size_t>(h)]; }
  SinkLogits bind(const Geometry& g) const {
    if (static_cast<index_t>(logits.size()) != g.heads_q)
      throw shape_error("attnkit: SinkLogits: " + std::to_string(logits.size()) +
                        " sink logits for " + std::to_string(g.heads_q) +
                        " query heads (one per query head)");
    SinkLogits r = *this;
    static_cast<A&>(r) = A::bind(g);
    return r;
  }
};

static_assert(score_activation<Softmax> && score_activation<Softcap> && score_activation<Sigmoid> &&
              score_activation<SigmoidBias> && score_activation<NormalizedSigmoid> &&
              score_activation<HeadSoftmax> && score_activation<Linear> && score_activation<ReLU> &&
              score_activation<SinkLogits<Softmax>> && has_sink_logits<SinkLogits<Softmax>> &&
              has_exp_weight<SinkLogits<NormalizedSigmoid>> && !has_sink_logits<Softmax> &&
              has_simd_derivative<Softcap> && has_simd_derivative<Sigmoid> &&
              has_simd_derivative<SigmoidBias> && has_simd_derivative<NormalizedSigmoid> &&
              has_simd_derivative<ReLU> && has_simd_derivative<SinkLogits<Softcap>>);

}  // namespace attnkit::policy
