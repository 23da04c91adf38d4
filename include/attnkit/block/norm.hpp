// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Row normalizations (RMSNorm, LayerNorm, and SelectableNorm: either, chosen at run time) as norm
// policies with a SIMD row kernel, and the placement of a residual block's norm (the PreNorm and
// PostNorm tags, SelectablePlacement).
#pragma once

#include <cmath>
#include <concepts>
#include <string>
#include <type_traits>
#include <variant>

#include "attnkit/core/error.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/simd/rows.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::block {

/// Norm before the sublayer: x + f(norm(x)) (LLaMA, GPT-2).
struct PreNorm {};
/// Norm after the residual sum: norm(x + f(x)) (the original Transformer, BERT).
struct PostNorm {};

namespace detail {

/// Sum of the lanes of v in lane order. (Not simd::reduce_add: xsimd's hadd of a double AVX-512
/// batch trips GCC 12's -Wuninitialized inside its intrinsics headers, see the report.)
template <class Arch, class T>
inline T lane_sum(const simd::batch<T, Arch>& v) noexcept {
  alignas(64) T lanes[simd::batch<T, Arch>::size];
  v.store_aligned(lanes);
  T s = 0;
  for (std::size_t i = 0; i < simd::batch<T, Arch>::size; ++i) s += lanes[i];
  return s;
}

/// Σ x[i] and Σ x[i]² over [0, n) (either may be skipped), SIMD with a partial tail.
template <class Arch, class T>
inline void sums(const T* x, index_t n, T* sum, T* sum_sq) noexcept {
  using B = simd::batch<T, Arch>;
  constexpr index_t width = simd::width<T, Arch>;
  B s(T(0)), q(T(0));
  index_t i = 0;
  for (; i + width <= n; i += width) {
    const B v = simd::loadu<Arch>(x + i);
    s += v;
    q = xsimd::fma(v, v, q);
  }
  if (i < n) {
    const B v = simd::load_partial<Arch>(x + i, n - i);
    s += v;
    q = xsimd::fma(v, v, q);
  }
  if (sum != nullptr) *sum = lane_sum<Arch>(s);
  if (sum_sq != nullptr) *sum_sq = lane_sum<Arch>(q);
}

/// y[i] = (x[i] - shift) · scale · w[i] (+ b[i] when b is not null), SIMD with a partial tail.
template <class Arch, class T>
inline void scale_shift_row(const T* x, T shift, T scale, const T* w, const T* b, T* y,
                            index_t n) noexcept {
  using B = simd::batch<T, Arch>;
  constexpr index_t width = simd::width<T, Arch>;
  const B sh(shift), sc(scale);
  auto one = [&](const B& xv, const B& wv, const B& bv) {
    return xsimd::fma((xv - sh) * sc, wv, bv);
  };
  index_t i = 0;
  for (; i + width <= n; i += width) {
    const B bv = b != nullptr ? simd::loadu<Arch>(b + i) : B(T(0));
    simd::storeu<Arch>(y + i, one(simd::loadu<Arch>(x + i), simd::loadu<Arch>(w + i), bv));
  }
  if (i < n) {
    const index_t r = n - i;
    const B bv = b != nullptr ? simd::load_partial<Arch>(b + i, r) : B(T(0));
    simd::store_partial<Arch>(
        y + i, one(simd::load_partial<Arch>(x + i, r), simd::load_partial<Arch>(w + i, r), bv), r);
  }
}

}  // namespace detail

/// y = x / sqrt(mean(x²) + eps) · weight (Zhang & Sennrich 2019; LLaMA's LlamaRMSNorm, computed
/// in the working type T). No bias.
struct RMSNorm {
  static constexpr bool has_bias = false;
  double eps = 1e-6;  ///< added to the mean square
  RMSNorm() = default;
  /// \param e epsilon (>= 0)
  explicit RMSNorm(double e) : eps(e) {
    if (!(e >= 0) || !std::isfinite(e))
      throw error("attnkit: RMSNorm: eps must be finite and >= 0");
  }
  /// Normalizes one row of n elements (n >= 1); `b` is ignored.
  /// \tparam Arch an xsimd architecture tag
  /// \tparam T float or double
  template <class Arch, std::floating_point T>
  void row(const T* x, const T* w, const T* /*b*/, T* y, index_t n) const noexcept {
    T sq = 0;
    detail::sums<Arch>(x, n, static_cast<T*>(nullptr), &sq);
    const T ms = sq / static_cast<T>(n);
    const T r = T(1) / std::sqrt(ms + static_cast<T>(eps));
    detail::scale_shift_row<Arch>(x, T(0), r, w, static_cast<const T*>(nullptr), y, n);
  }
};

/// y = (x - mean(x)) / sqrt(var(x) + eps) · weight + bias, var the biased (population) variance
/// computed in two passes as torch.nn.LayerNorm does. The bias is optional.
struct LayerNorm {
  static constexpr bool has_bias = true;
  double eps = 1e-5;  ///< added to the variance
  LayerNorm() = default;
  /// \param e epsilon (>= 0)
  explicit LayerNorm(double e) : eps(e) {
    if (!(e >= 0) || !std::isfinite(e))
      throw error("attnkit: LayerNorm: eps must be finite and >= 0");
  }
  /// Normalizes one row of n elements (n >= 1); `b` may be null (no bias).
  /// \tparam Arch an xsimd architecture tag
  /// \tparam T float or double
  template <class Arch, std::floating_point T>
  void row(const T* x, const T* w, const T* b, T* y, index_t n) const noexcept {
    using B = simd::batch<T, Arch>;
    constexpr index_t width = simd::width<T, Arch>;
    T total = 0;
    detail::sums<Arch>(x, n, &total, static_cast<T*>(nullptr));
    const T mean = total / static_cast<T>(n);
    const B mv(mean);
    B acc(T(0));
    index_t i = 0;
    for (; i + width <= n; i += width) {
      const B d = simd::loadu<Arch>(x + i) - mv;
      acc = xsimd::fma(d, d, acc);
    }
    if (i < n) {
      const B d = simd::load_partial<Arch>(x + i, n - i, mean) - mv;  // tail lanes give 0
      acc = xsimd::fma(d, d, acc);
    }
    const T var = detail::lane_sum<Arch>(acc) / static_cast<T>(n);
    detail::scale_shift_row<Arch>(x, mean, T(1) / std::sqrt(var + static_cast<T>(eps)), w, b, y, n);
  }
};

/// A norm policy: normalizes one row given its weight (and optional bias).
/// Requirements: `N::has_bias` is a constexpr bool; `n.template row<Arch>(x, w, b, y, n)` for
/// float and double rows.
template <class N>
concept norm_policy = std::copy_constructible<N> &&
    requires(const N& p, const float* xf, float* yf, const double* xd, double* yd, index_t n) {
  requires std::is_same_v < std::remove_cv_t<decltype(N::has_bias)>,
  bool > ;
  p.template row<simd::generic>(xf, xf, xf, yf, n);
  p.template row<simd::generic>(xd, xd, xd, yd, n);
};

static_assert(norm_policy<RMSNorm> && norm_policy<LayerNorm>);

/// A norm chosen at run time, as a model folder's config.json chooses it: RMSNorm (default) or
/// LayerNorm, with its eps. A norm_policy, so it plugs into TransformerBlock like the fixed
/// ones; the choice is read once per row. A bias is accepted only by LayerNorm (takes_bias()).
struct SelectableNorm {
  static constexpr bool has_bias = true;  ///< may take one; normalize_rows asks takes_bias()
  std::variant<RMSNorm, LayerNorm> norm = RMSNorm{};

  SelectableNorm() = default;
  /// \param n the norm to apply
  SelectableNorm(RMSNorm n) : norm(n) {}
  SelectableNorm(LayerNorm n) : norm(n) {}

  /// Whether the norm is LayerNorm (which reads a bias) rather than RMSNorm.
  bool takes_bias() const noexcept { return std::holds_alternative<LayerNorm>(norm); }
  /// The norm's epsilon.
  double eps() const noexcept {
    return std::visit([](const auto& n) { return n.eps; }, norm);
  }
  /// "rms_norm" or "layer_norm" (the config.json spelling).
  const char* name() const noexcept { return takes_bias() ? "layer_norm" : "rms_norm"; }

  /// Normalizes one row with the chosen norm (`b` only for LayerNorm).
  /// \tparam Arch an xsimd architecture tag
  /// \tparam T float or double
  template <class Arch, std::floating_point T>
  void row(const T* x, const T* w, const T* b, T* y, index_t n) const noexcept {
    if (const LayerNorm* l = std::get_if<LayerNorm>(&norm)) {
      l->template row<Arch>(x, w, b, y, n);
    } else if (const RMSNorm* r = std::get_if<RMSNorm>(&norm)) {
      r->template row<Arch>(x, w, static_cast<const T*>(nullptr), y, n);
    }
  }
};

static_assert(norm_policy<SelectableNorm>);

/// Norm placement chosen at run time (config.json's `attnkit_norm_placement`): pre (default)
/// or post. TransformerBlock takes it in place of the PreNorm / PostNorm tags.
struct SelectablePlacement {
  bool post = false;  ///< PostNorm when true, else PreNorm
  /// "pre" or "post" (the config.json spelling).
  const char* name() const noexcept { return post ? "post" : "pre"; }
};

/// y[r, :] = norm(x[r, :]) for every row of x [M, n]; weight [n], bias [n] or empty (none).
/// Rows must be contiguous (stride 1 within a row); y may alias x exactly (in place).
/// Rows are spread over OpenMP threads (results do not depend on the thread count).
/// Throws shape_error naming the argument and both shapes.
/// \tparam Norm a norm_policy (RMSNorm, LayerNorm)
/// \tparam T float or double
template <class Norm, std::floating_point T>
void normalize_rows(const Norm& norm, std::type_identity_t<TensorView<const T, 2>> x,
                    std::type_identity_t<TensorView<const T, 1>> weight,
                    std::type_identity_t<TensorView<const T, 1>> bias, TensorView<T, 2> y) {
  static_assert(norm_policy<Norm>,
                "attnkit: Norm of normalize_rows must model attnkit::block::norm_policy: needs "
                "static has_bias and row<Arch>(x, w, b, y, n)");
  const index_t m = x.extent(0), n = x.extent(1);
  if (y.shape() != x.shape()) throw_shape_mismatch("normalize_rows", "y", y.shape(), x.shape());
  if (weight.shape() != Shape<1>{n})
    throw_shape_mismatch("normalize_rows", "weight", weight.shape(), Shape<1>{n});
  if (!bias.empty() && bias.shape() != Shape<1>{n})
    throw_shape_mismatch("normalize_rows", "bias", bias.shape(), Shape<1>{n});
  bool takes_bias = Norm::has_bias;
  if constexpr (requires { norm.takes_bias(); }) takes_bias = norm.takes_bias();
  if (!bias.empty() && !takes_bias)
    throw error("attnkit: normalize_rows: this norm takes no bias, got one of shape " +
                shape_string(bias.shape()));
  if (m == 0 || n == 0) return;
  if ((n > 1 && (x.stride(1) != 1 || y.stride(1) != 1)) || weight.stride(0) != 1 ||
      (!bias.empty() && bias.stride(0) != 1))
    throw shape_error("attnkit: normalize_rows: rows of x, y, weight and bias must be contiguous");
  const T* b = bias.empty() ? nullptr : bias.data();
  simd::dispatch([&](auto arch) {
    using Arch = decltype(arch);
    auto one = [&](long r) {
      norm.template row<Arch>(x.data() + r * x.stride(0), weight.data(), b,
                              y.data() + r * y.stride(0), n);
    };
    if (m * n >= 16384) {
      parallel_for(static_cast<long>(m), one);
    } else {
      for (long r = 0; r < m; ++r) one(r);
    }
  });
}

/// normalize_rows without a bias.
template <class Norm, std::floating_point T>
void normalize_rows(const Norm& norm, std::type_identity_t<TensorView<const T, 2>> x,
                    std::type_identity_t<TensorView<const T, 1>> weight, TensorView<T, 2> y) {
  normalize_rows<Norm, T>(norm, x, weight, TensorView<const T, 1>{}, y);
}

}  // namespace attnkit::block

ATTNKIT_SIMD_WARNINGS_POP
