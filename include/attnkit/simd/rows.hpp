// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Row kernels over contiguous arrays: elementwise exp/log/sigmoid/tanh in place, scaling,
// axpy, dot, sum, max, and the shifted exp-and-sum of a softmax row.
//
// Each kernel comes twice under one name:
//   simd::exp_inplace<Arch>(x, n)  the kernel for one architecture (call it from inside other
//                                  Arch-templated kernels, so dispatch happens once, at the top);
//   simd::exp_inplace(x, n)        dispatches once at run time (simd::dispatch) and runs it.
// The last n mod width elements go through load_partial/store_partial, never past x[n - 1].
#pragma once

#include <concepts>
#include <limits>

#include "attnkit/simd/batch.hpp"
#include "attnkit/simd/math.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::simd {

/// An xsimd architecture tag (simd::avx512, simd::avx2, simd::generic, ...).
/// Requirements: A::version() and A::alignment() exist (xsimd's arch interface).
template <class A>
concept arch_tag = requires {
  A::version();
  A::alignment();
};

namespace detail {

/// x[i] = f(x[i]) over batches, with a partial last batch.
template <class Arch, class T, class F>
inline void map_inplace(T* x, index_t n, F f) noexcept {
  constexpr index_t w = width<T, Arch>;
  index_t i = 0;
  for (; i + w <= n; i += w) storeu<Arch>(x + i, f(loadu<Arch>(x + i)));
  if (i < n) store_partial<Arch>(x + i, f(load_partial<Arch>(x + i, n - i)), n - i);
}

}  // namespace detail

/// x[i] = e^x[i] for i in [0, n).
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <arch_tag Arch, std::floating_point T>
inline void exp_inplace(T* x, index_t n) noexcept {
  detail::map_inplace<Arch>(x, n, [](const batch<T, Arch>& v) { return simd::exp(v); });
}

/// x[i] = log(x[i]) for i in [0, n).
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <arch_tag Arch, std::floating_point T>
inline void log_inplace(T* x, index_t n) noexcept {
  detail::map_inplace<Arch>(x, n, [](const batch<T, Arch>& v) { return simd::log(v); });
}

/// x[i] = 1 / (1 + e^-x[i]) for i in [0, n).
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <arch_tag Arch, std::floating_point T>
inline void sigmoid_inplace(T* x, index_t n) noexcept {
  detail::map_inplace<Arch>(x, n, [](const batch<T, Arch>& v) { return simd::sigmoid(v); });
}

/// x[i] = tanh(x[i]) for i in [0, n).
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <arch_tag Arch, std::floating_point T>
inline void tanh_inplace(T* x, index_t n) noexcept {
  detail::map_inplace<Arch>(x, n, [](const batch<T, Arch>& v) { return simd::tanh(v); });
}

/// x[i] *= a for i in [0, n).
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <arch_tag Arch, std::floating_point T>
inline void scale_inplace(T* x, T a, index_t n) noexcept {
  const batch<T, Arch> av(a);
  detail::map_inplace<Arch>(x, n, [av](const batch<T, Arch>& v) { return v * av; });
}

/// y[i] += a · x[i] for i in [0, n) (axpy). x and y must not overlap unless equal.
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <arch_tag Arch, std::floating_point T>
inline void scale_add(T* y, T a, const T* x, index_t n) noexcept {
  constexpr index_t w = width<T, Arch>;
  const batch<T, Arch> av(a);
  index_t i = 0;
  for (; i + w <= n; i += w)
    storeu<Arch>(y + i, xsimd::fma(av, loadu<Arch>(x + i), loadu<Arch>(y + i)));
  if (i < n) {
    const index_t r = n - i;
    store_partial<Arch>(
        y + i, xsimd::fma(av, load_partial<Arch>(x + i, r), load_partial<Arch>(y + i, r)), r);
  }
}

/// Σ x[i] · y[i] over [0, n) (0 for n = 0). Lane-wise partial sums, then reduce_add.
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <arch_tag Arch, std::floating_point T>
inline T dot(const T* x, const T* y, index_t n) noexcept {
  constexpr index_t w = width<T, Arch>;
  batch<T, Arch> acc0(T(0)), acc1(T(0));
  index_t i = 0;
  for (; i + 2 * w <= n; i += 2 * w) {
    acc0 = xsimd::fma(loadu<Arch>(x + i), loadu<Arch>(y + i), acc0);
    acc1 = xsimd::fma(loadu<Arch>(x + i + w), loadu<Arch>(y + i + w), acc1);
  }
  for (; i + w <= n; i += w) acc0 = xsimd::fma(loadu<Arch>(x + i), loadu<Arch>(y + i), acc0);
  if (i < n)
    acc1 = xsimd::fma(load_partial<Arch>(x + i, n - i), load_partial<Arch>(y + i, n - i), acc1);
  return reduce_add(acc0 + acc1);
}

/// Σ x[i] over [0, n) (0 for n = 0).
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <arch_tag Arch, std::floating_point T>
inline T row_sum(const T* x, index_t n) noexcept {
  constexpr index_t w = width<T, Arch>;
  batch<T, Arch> acc(T(0));
  index_t i = 0;
  for (; i + w <= n; i += w) acc += loadu<Arch>(x + i);
  if (i < n) acc += load_partial<Arch>(x + i, n - i);
  return reduce_add(acc);
}

/// max x[i] over [0, n); -inf for n = 0. NaN elements may or may not win (see reduce_max).
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <arch_tag Arch, std::floating_point T>
inline T row_max(const T* x, index_t n) noexcept {
  constexpr index_t w = width<T, Arch>;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  batch<T, Arch> acc(ninf);
  index_t i = 0;
  for (; i + w <= n; i += w) acc = xsimd::max(acc, loadu<Arch>(x + i));
  if (i < n) acc = xsimd::max(acc, load_partial<Arch>(x + i, n - i, ninf));
  return reduce_max(acc);
}

/// x[i] = e^(x[i] - shift) for i in [0, n); returns Σ of the new x[i] (a softmax row's
/// numerators and denominator, given shift = the row max). Elements equal to -inf give 0; a
/// shift of -inf gives NaN (a fully masked row has no softmax: callers handle it first).
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <arch_tag Arch, std::floating_point T>
inline T exp_shift_sum(T* x, T shift, index_t n) noexcept {
  constexpr index_t w = width<T, Arch>;
  const batch<T, Arch> sv(shift);
  batch<T, Arch> acc(T(0));
  index_t i = 0;
  for (; i + w <= n; i += w) {
    const batch<T, Arch> e = simd::exp(loadu<Arch>(x + i) - sv);
    storeu<Arch>(x + i, e);
    acc += e;
  }
  if (i < n) {
    const index_t r = n - i;
    const batch<T, Arch> e =
        simd::exp(load_partial<Arch>(x + i, r, -std::numeric_limits<T>::infinity()) - sv);
    store_partial<Arch>(x + i, e, r);
    acc += e;  // lanes past r hold e^-inf = 0
  }
  return reduce_add(acc);
}

// Dispatching forms: pick the architecture once at run time, then run the kernel above.

/// x[i] = e^x[i] (dispatches on the CPU's best architecture).
/// \tparam T float or double
template <std::floating_point T>
inline void exp_inplace(T* x, index_t n) {
  dispatch([&](auto a) { exp_inplace<decltype(a)>(x, n); });
}

/// x[i] = log(x[i]) (dispatching).
/// \tparam T float or double
template <std::floating_point T>
inline void log_inplace(T* x, index_t n) {
  dispatch([&](auto a) { log_inplace<decltype(a)>(x, n); });
}

/// x[i] = sigmoid(x[i]) (dispatching).
/// \tparam T float or double
template <std::floating_point T>
inline void sigmoid_inplace(T* x, index_t n) {
  dispatch([&](auto a) { sigmoid_inplace<decltype(a)>(x, n); });
}

/// x[i] = tanh(x[i]) (dispatching).
/// \tparam T float or double
template <std::floating_point T>
inline void tanh_inplace(T* x, index_t n) {
  dispatch([&](auto a) { tanh_inplace<decltype(a)>(x, n); });
}

/// x[i] *= a (dispatching).
/// \tparam T float or double
template <std::floating_point T>
inline void scale_inplace(T* x, T a, index_t n) {
  dispatch([&](auto arch) { scale_inplace<decltype(arch)>(x, a, n); });
}

/// y[i] += a · x[i] (dispatching).
/// \tparam T float or double
template <std::floating_point T>
inline void scale_add(T* y, T a, const T* x, index_t n) {
  dispatch([&](auto arch) { scale_add<decltype(arch)>(y, a, x, n); });
}

/// Σ x[i] · y[i] (dispatching).
/// \tparam T float or double
template <std::floating_point T>
inline T dot(const T* x, const T* y, index_t n) {
  return dispatch([&](auto a) { return dot<decltype(a)>(x, y, n); });
}

/// Σ x[i] (dispatching).
/// \tparam T float or double
template <std::floating_point T>
inline T row_sum(const T* x, index_t n) {
  return dispatch([&](auto a) { return row_sum<decltype(a)>(x, n); });
}

/// max x[i], -inf for n = 0 (dispatching).
/// \tparam T float or double
template <std::floating_point T>
inline T row_max(const T* x, index_t n) {
  return dispatch([&](auto a) { return row_max<decltype(a)>(x, n); });
}

/// x[i] = e^(x[i] - shift), returns the sum (dispatching).
/// \tparam T float or double
template <std::floating_point T>
inline T exp_shift_sum(T* x, T shift, index_t n) {
  return dispatch([&](auto a) { return exp_shift_sum<decltype(a)>(x, shift, n); });
}

}  // namespace attnkit::simd

ATTNKIT_SIMD_WARNINGS_POP
