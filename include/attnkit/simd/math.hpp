// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Vector exp, log, sigmoid and tanh on xsimd batches (fp32 and fp64), templated on the arch.
//
// Accuracy: max error in ulps against std:: in double (fp32) or long double (fp64), measured by
// tests/simd/test_math_*.cpp over the whole range (every 4093rd float bit pattern / random double
// bit patterns, plus dense samples) on avx512bw, fma3<avx2> and sse2. Subnormal results are
// measured in units of the smallest subnormal. "bound" is what the tests assert.
//
//   function   fp32 measured/bound   fp64 measured/bound   method
//   exp        0.99 / 1.5            0.96 / 1.5            Cody-Waite ln2 split, degree-6 (fp32) /
//                                                          13 (fp64) polynomial, 2^n built from
//                                                          exponent bits in two factors (AVX-512:
//                                                          vscalef), so subnormal results are
//                                                          rounded once, not flushed;
//                                                          exp(-inf) = 0, exp(inf) = inf.
//                                                          fp32 AVX-512: ~4.6 Gelem/s per core
//   log        0.77 / 1.5            0.82 / 1.5            exponent/mantissa split, mantissa in
//                                                          [sqrt(1/2), sqrt(2)); log(0) = -inf,
//                                                          log(x < 0) = NaN, log(inf) = inf
//   sigmoid    2.54 / 3              2.15 / 3              e = exp(-|x|), 1/(1+e) or e/(1+e): no
//                                                          overflow for any x
//   tanh       1.28 / 2              2.18 / 3              odd polynomial (fp32) / sinh,cosh series
//                                                          (fp64) for |x| < 0.625, else
//                                                          1 - 2/(exp(2|x|)+1); saturates to ±1
//
// NaN inputs give NaN. The tests assert these bounds (see tests/simd/test_math_*.cpp).
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "attnkit/simd/batch.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::simd {

namespace detail {

/// Horner evaluation of c[0] + c[1] x + ... + c[N-1] x^(N-1) with FMAs.
template <class B, class T, std::size_t N>
inline B horner(const B& x, const T (&c)[N]) noexcept {
  B acc(c[N - 1]);
  for (std::size_t i = N - 1; i-- > 0;) acc = xsimd::fma(acc, x, B(c[i]));
  return acc;
}

}  // namespace detail

/// e^x lane by lane (see the accuracy table at the top of this file).
/// \tparam Arch an xsimd architecture tag
template <class Arch>
inline batch<float, Arch> exp(const batch<float, Arch>& x) noexcept {
  using bf = batch<float, Arch>;
  using bu = batch<std::uint32_t, Arch>;
  // max(c, x) returns x when x is NaN (second operand), so NaN flows through to the result.
  const bf xc = xsimd::min(bf(88.8f), xsimd::max(bf(-104.0f), x));
  // Round x·log2(e) to the nearest integer n with the 1.5·2^23 shifter: n sits in the low bits.
  constexpr float shifter = 12582912.0f;  // 0x1.8p23
  const bf t = xsimd::fma(xc, bf(1.44269504088896341f), bf(shifter));
  const bf nf = t - bf(shifter);
  // r = x - n·ln2 in two steps (Cody-Waite): ln2_hi has few bits, so n·ln2_hi is exact.
  bf r = xsimd::fnma(nf, bf(0.693359375f), xc);
  r = xsimd::fnma(nf, bf(-2.12194440e-4f), r);
  // e^r on |r| <= ln2/2: 1 + r + r^2 · P(r) (Cephes expf minimax coefficients).
  static constexpr float c[] = {5.0000001201e-1f, 1.6666665459e-1f, 4.1665795894e-2f,
                                8.3334519073e-3f, 1.3981999507e-3f, 1.9875691500e-4f};
  const bf p = detail::horner(r, c);
  const bf er = xsimd::fma(p, r * r, r) + bf(1.0f);
#if defined(__AVX512F__)
  if constexpr (has_avx512<Arch>) {
    // vscalefps: er · 2^n in one instruction, with the same single rounding of subnormal and
    // overflowing results as the two-factor scaling below.
    return _mm512_scalef_ps(er, nf);
  }
#endif
  // 2^n = 2^n1 · 2^n2 with n1 = floor(n/2), so both factors are normal for n in [-151, 128]
  // and a subnormal or overflowing result is rounded once by the last multiply.
  const bu n = xsimd::bitwise_cast<bu>(t) - bu(0x4B400000u);
  const bu n1 = ((n + bu(256u)) >> 1) - bu(128u);
  const bu n2 = n - n1;
  const bf s1 = xsimd::bitwise_cast<bf>((n1 + bu(127u)) << 23);
  const bf s2 = xsimd::bitwise_cast<bf>((n2 + bu(127u)) << 23);
  return (er * s1) * s2;
}

/// e^x lane by lane, fp64 (see the accuracy table at the top of this file).
/// \tparam Arch an xsimd architecture tag
template <class Arch>
inline batch<double, Arch> exp(const batch<double, Arch>& x) noexcept {
  using bd = batch<double, Arch>;
  using bu = batch<std::uint64_t, Arch>;
  const bd xc = xsimd::min(bd(709.9), xsimd::max(bd(-746.0), x));
  constexpr double shifter = 6755399441055744.0;  // 0x1.8p52
  const bd t = xsimd::fma(xc, bd(1.4426950408889634074), bd(shifter));
  const bd nf = t - bd(shifter);
  bd r = xsimd::fnma(nf, bd(6.93147180369123816490e-01), xc);
  r = xsimd::fnma(nf, bd(1.90821492927058770002e-10), r);
  // Taylor series of e^r - 1 - r, divided by r^2, to degree 13 (|r| <= 0.35: error < 2^-56).
  static constexpr double c[] = {1.0 / 2,        1.0 / 6,         1.0 / 24,
                                 1.0 / 120,      1.0 / 720,       1.0 / 5040,
                                 1.0 / 40320,    1.0 / 362880,    1.0 / 3628800,
                                 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};
  const bd p = detail::horner(r, c);
  const bd er = xsimd::fma(p, r * r, r) + bd(1.0);
#if defined(__AVX512F__)
  if constexpr (has_avx512<Arch>) {
    return _mm512_scalef_pd(er, nf);
  }
#endif
  const bu n = xsimd::bitwise_cast<bu>(t) - bu(0x4338000000000000ull);
  const bu n1 = ((n + bu(2048u)) >> 1) - bu(1024u);
  const bu n2 = n - n1;
  const bd s1 = xsimd::bitwise_cast<bd>((n1 + bu(1023u)) << 52);
  const bd s2 = xsimd::bitwise_cast<bd>((n2 + bu(1023u)) << 52);
  return (er * s1) * s2;
}

/// Natural logarithm lane by lane, fp32 (see the accuracy table at the top of this file).
/// \tparam Arch an xsimd architecture tag
template <class Arch>
inline batch<float, Arch> log(const batch<float, Arch>& x) noexcept {
  using bf = batch<float, Arch>;
  using bu = batch<std::uint32_t, Arch>;
  // Subnormal inputs: scale by 2^23 first so the exponent field is meaningful.
  const auto sub = x < bf(std::numeric_limits<float>::min());
  const bf xs = xsimd::select(sub, x * bf(8388608.0f), x);
  const bu bits = xsimd::bitwise_cast<bu>(xs);
  // Exponent as a float without an int conversion: (bits >> 23) | 0x4B000000 is 2^23 + field.
  bf e = xsimd::bitwise_cast<bf>((bits >> 23) | bu(0x4B000000u)) - bf(8388608.0f + 126.0f);
  e = e - xsimd::select(sub, bf(23.0f), bf(0.0f));
  // Mantissa m in [0.5, 1); move it to [sqrt(1/2), sqrt(2)).
  bf m = xsimd::bitwise_cast<bf>((bits & bu(0x007FFFFFu)) | bu(0x3F000000u));
  const auto small = m < bf(0.707106781186547524f);
  e = e - xsimd::select(small, bf(1.0f), bf(0.0f));
  const bf f = xsimd::select(small, m + m, m) - bf(1.0f);
  // Cephes logf: log(1+f) = f - f^2/2 + f^3 · P(f).
  static constexpr float c[] = {3.3333331174e-1f,  -2.4999993993e-1f, 2.0000714765e-1f,
                                -1.6668057665e-1f, 1.4249322787e-1f,  -1.2420140846e-1f,
                                1.1676998740e-1f,  -1.1514610310e-1f, 7.0376836292e-2f};
  const bf z = f * f;
  bf y = detail::horner(f, c) * f * z;
  y = xsimd::fma(e, bf(-2.12194440e-4f), y);
  y = xsimd::fnma(bf(0.5f), z, y);
  bf res = f + y;
  res = xsimd::fma(e, bf(0.693359375f), res);
  const bf inf(std::numeric_limits<float>::infinity());
  res = xsimd::select(x == inf, inf, res);
  res = xsimd::select(x == bf(0.0f), -inf, res);
  return xsimd::select(x >= bf(0.0f), res, bf(std::numeric_limits<float>::quiet_NaN()));
}

/// Natural logarithm lane by lane, fp64 (see the accuracy table at the top of this file).
/// \tparam Arch an xsimd architecture tag
template <class Arch>
inline batch<double, Arch> log(const batch<double, Arch>& x) noexcept {
  using bd = batch<double, Arch>;
  using bu = batch<std::uint64_t, Arch>;
  const auto sub = x < bd(std::numeric_limits<double>::min());
  const bd xs = xsimd::select(sub, x * bd(18014398509481984.0), x);  // 2^54
  const bu bits = xsimd::bitwise_cast<bu>(xs);
  constexpr double two52 = 4503599627370496.0;
  bd e = xsimd::bitwise_cast<bd>((bits >> 52) | bu(0x4330000000000000ull)) - bd(two52 + 1022.0);
  e = e - xsimd::select(sub, bd(54.0), bd(0.0));
  bd m = xsimd::bitwise_cast<bd>((bits & bu(0x000FFFFFFFFFFFFFull)) | bu(0x3FE0000000000000ull));
  const auto small = m < bd(0.70710678118654752440);
  e = e - xsimd::select(small, bd(1.0), bd(0.0));
  const bd f = xsimd::select(small, m + m, m) - bd(1.0);
  // log(1+f) = f - hfsq + s·(hfsq + R), s = f/(2+f), R = sum_k 2 z^k / (2k+1), z = s^2
  // (the fdlibm arrangement with the exact series; |s| <= 0.172 so 10 terms reach 2^-60).
  const bd s = f / (bd(2.0) + f);
  const bd z = s * s;
  static constexpr double c[] = {2.0 / 3,  2.0 / 5,  2.0 / 7,  2.0 / 9,  2.0 / 11,
                                 2.0 / 13, 2.0 / 15, 2.0 / 17, 2.0 / 19, 2.0 / 21};
  const bd big_r = detail::horner(z, c) * z;
  const bd hfsq = bd(0.5) * f * f;
  const bd lo = xsimd::fma(s, hfsq + big_r, e * bd(1.90821492927058770002e-10));
  bd res = xsimd::fma(e, bd(6.93147180369123816490e-01), f - (hfsq - lo));
  const bd inf(std::numeric_limits<double>::infinity());
  res = xsimd::select(x == inf, inf, res);
  res = xsimd::select(x == bd(0.0), -inf, res);
  return xsimd::select(x >= bd(0.0), res, bd(std::numeric_limits<double>::quiet_NaN()));
}

/// The logistic function 1 / (1 + e^-x) lane by lane; never overflows (e^-|x| only).
/// \tparam T float or double
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
inline batch<T, Arch> sigmoid(const batch<T, Arch>& x) noexcept {
  using b = batch<T, Arch>;
  const b e = simd::exp(-xsimd::abs(x));  // in (0, 1], or NaN
  const b s = b(T(1)) / (b(T(1)) + e);
  return xsimd::select(x >= b(T(0)), s, e * s);
}

/// Hyperbolic tangent lane by lane; saturates to ±1, never NaN for finite or infinite x.
/// \tparam T float or double
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
inline batch<T, Arch> tanh(const batch<T, Arch>& x) noexcept {
  using b = batch<T, Arch>;
  const b ax = xsimd::abs(x);
  // Large |x|: 1 - 2/(e^(2|x|) + 1); e^(2|x|) = inf gives exactly 1.
  const b big = b(T(1)) - b(T(2)) / (simd::exp(ax + ax) + b(T(1)));
  b small;
  const b z = x * x;
  if constexpr (std::is_same_v<T, float>) {
    // Cephes tanhf on |x| < 0.625: x + x^3 · P(x^2).
    static constexpr float c[] = {-3.33332819422e-1f, 1.33314422036e-1f, -5.37397155531e-2f,
                                  2.06390887954e-2f, -5.70498872745e-3f};
    small = xsimd::fma(detail::horner(z, c) * z, ax, ax);
  } else {
    // sinh/cosh Taylor series on |x| < 0.625 (terms to x^17: error < 2^-60), then divide.
    static constexpr double cs[] = {1.0 / 6,
                                    1.0 / 120,
                                    1.0 / 5040,
                                    1.0 / 362880,
                                    1.0 / 39916800,
                                    1.0 / 6227020800.0,
                                    1.0 / 1307674368000.0,
                                    1.0 / 355687428096000.0};
    static constexpr double cc[] = {1.0 / 2,
                                    1.0 / 24,
                                    1.0 / 720,
                                    1.0 / 40320,
                                    1.0 / 3628800,
                                    1.0 / 479001600,
                                    1.0 / 87178291200.0,
                                    1.0 / 20922789888000.0,
                                    1.0 / 6402373705728000.0};
    const b sh = xsimd::fma(detail::horner(z, cs) * z, ax, ax);
    const b ch = xsimd::fma(detail::horner(z, cc), z, b(1.0));
    small = sh / ch;
  }
  // Both branches are computed on |x| and get x's sign back (so tanh(-0) = -0).
  return xsimd::copysign(xsimd::select(ax < b(T(0.625)), small, big), x);
}

}  // namespace attnkit::simd

ATTNKIT_SIMD_WARNINGS_POP
