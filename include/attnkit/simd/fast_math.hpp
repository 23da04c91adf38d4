// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Elementwise SIMD math for the fused attention kernel and the activation policies' SIMD maps:
// exp2, sigmoid, log sigmoid and tanh on batches, tuned for the inner loop (fp32: degree-5 minimax
// exp2, max relative error 7.5e-8; fp64: degree-13 Taylor of e^r on |r| <= ln2/2; AVX-512:
// vscalef). simd/math.hpp holds the general-purpose, ulp-accurate functions; these trade the
// special-value handling the kernel does not need.
#pragma once

#include <cstdint>
#include <type_traits>

#include "attnkit/simd/arch.hpp"
#include "attnkit/simd/math.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::simd {

/// Whether Arch has AVX-512F (scalef, rcp14 and mask registers).
template <class Arch>
inline constexpr bool is_avx512 = std::is_base_of_v<xsimd::avx512f, Arch>;

/// 2^x lane by lane for x <= 127 (fp32) / 1023 (fp64); callers clamp above. Very negative x
/// gives 0 (AVX-512) or 2^-126 / 2^-1022 (other ISAs, x is clamped there). NaN or +inf input
/// gives an unspecified lane: callers select such lanes away.
/// \tparam Arch xsimd architecture \tparam T float or double
template <class Arch, class T>
inline xsimd::batch<T, Arch> exp2_batch(xsimd::batch<T, Arch> x) noexcept {
  using B = xsimd::batch<T, Arch>;
  if constexpr (!is_avx512<Arch>)
    x = xsimd::max(x, B(std::is_same_v<T, float> ? T(-126) : T(-1022)));
  const B n = xsimd::nearbyint(x);
  const B f = x - n;
  B p;
  if constexpr (std::is_same_v<T, float>) {
    p = B(0.001327646683008118f);
    p = xsimd::fma(p, f, B(0.009675541292773164f));
    p = xsimd::fma(p, f, B(0.055507132894585094f));
    p = xsimd::fma(p, f, B(0.24022119724878804f));
    p = xsimd::fma(p, f, B(0.6931469670550009f));
    p = xsimd::fma(p, f, B(1.0000000716543629f));
  } else {
    const B r = f * B(0.69314718055994530942);  // |r| <= ln2 / 2
    constexpr double c[] = {1.0,
                            1.0,
                            1.0 / 2,
                            1.0 / 6,
                            1.0 / 24,
                            1.0 / 120,
                            1.0 / 720,
                            1.0 / 5040,
                            1.0 / 40320,
                            1.0 / 362880,
                            1.0 / 3628800,
                            1.0 / 39916800,
                            1.0 / 479001600,
                            1.0 / 6227020800.0};
    p = B(c[13]);
    for (int i = 12; i >= 0; --i) p = xsimd::fma(p, r, B(c[i]));
  }
  if constexpr (is_avx512<Arch>) {
    if constexpr (std::is_same_v<T, float>) {
      return B(_mm512_scalef_ps(p, n));
    } else {
      return B(_mm512_scalef_pd(p, n));
    }
  } else {
    using I = xsimd::batch<xsimd::as_integer_t<T>, Arch>;
    constexpr int shift = std::is_same_v<T, float> ? 23 : 52;
    const I e = xsimd::to_int(n) << shift;
    return xsimd::bitwise_cast<B>(xsimd::bitwise_cast<I>(p) + e);
  }
}

/// 1 / d lane by lane for d >= 1 (fp32: reciprocal estimate and one Newton step).
template <class Arch, class T>
inline xsimd::batch<T, Arch> reciprocal_batch(const xsimd::batch<T, Arch>& d) noexcept {
  using B = xsimd::batch<T, Arch>;
  if constexpr (std::is_same_v<T, double>) {
    return B(1.0) / d;
  } else {
    const B r = xsimd::reciprocal(d);
    return r * xsimd::fnma(d, r, B(2.0f));
  }
}

/// sigmoid(s + bias) = 1 / (1 + 2^(-(s + bias) log2 e)); `neg_bias_log2e` = -bias · log2 e.
template <class Arch, class T>
inline xsimd::batch<T, Arch> sigmoid_batch(const xsimd::batch<T, Arch>& s,
                                           const xsimd::batch<T, Arch>& neg_bias_log2e) noexcept {
  using B = xsimd::batch<T, Arch>;
  constexpr T log2e = T(1.4426950408889634);
  B x = xsimd::fnma(s, B(log2e), neg_bias_log2e);  // -(s + bias) log2 e
  x = xsimd::min(x, B(std::is_same_v<T, float> ? T(126) : T(1022)));
  const B d = B(T(1)) + exp2_batch<Arch, T>(x);
  // AVX-512: one division measured faster than the estimate and its Newton step inside the
  // fused score tile (and it is correctly rounded).
  if constexpr (is_avx512<Arch>) {
    return B(T(1)) / d;
  } else {
    return reciprocal_batch<Arch, T>(d);
  }
}

/// log sigmoid(s + bias) = min(x, 0) - log1p(e^-|x|), x = s + bias: never underflows (about x
/// for very negative x), 0 for x = +inf, -inf for x = -inf. Absolute error of a few ulps of 1,
/// which is what a score that is exponentiated afterwards needs (relative error of the weight).
template <class Arch, class T>
inline xsimd::batch<T, Arch> log_sigmoid_batch(const xsimd::batch<T, Arch>& s, T bias) noexcept {
  using B = xsimd::batch<T, Arch>;
  constexpr T log2e = T(1.4426950408889634);
  constexpr T floor = std::is_same_v<T, float> ? T(-160) : T(-1100);  // e^-|x| is 0 below
  const B x = s + B(bias);
  const B u = exp2_batch<Arch, T>(xsimd::max(xsimd::abs(x) * B(-log2e), B(floor)));
  // log1p(u) for u in [0, 1]: log(w) · u / (w - 1) with w = 1 + u (exact when w rounds to 1).
  const B w = B(T(1)) + u;
  const B wm1 = w - B(T(1));
  const B l1p = xsimd::select(wm1 == B(T(0)), u, simd::log(w) * (u / wm1));
  return xsimd::min(x, B(T(0))) - l1p;
}

/// tanh(y) = sign(y) (1 - t) / (1 + t) with t = e^(-2|y|) in (0, 1]: no overflow, absolute
/// error of a few ulps of 1 (what the soft cap C · tanh(s / C) needs).
template <class Arch, class T>
inline xsimd::batch<T, Arch> tanh_batch(const xsimd::batch<T, Arch>& y) noexcept {
  using B = xsimd::batch<T, Arch>;
  constexpr T m2log2e = T(-2.8853900817779268);
  const B t = exp2_batch<Arch, T>(xsimd::abs(y) * B(m2log2e));
  return xsimd::copysign((B(T(1)) - t) / (B(T(1)) + t), y);
}

}  // namespace attnkit::simd

ATTNKIT_SIMD_WARNINGS_POP
