// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Test helpers for simd/ and kernel/: run a generic lambda once per architecture that is both
// compiled into the test binary and supported by this CPU, and ulp distances.
#pragma once

#include <cmath>
#include <limits>

#include <catch2/catch.hpp>

#include "attnkit/simd/arch.hpp"

namespace attnkit_test {

/// Calls f(Arch{}) for every kernel architecture compiled in and available on this CPU; returns
/// how many ran (at least the generic one always does).
template <class F>
int for_each_arch(F&& f) {
  int ran = 0;
  auto one = [&](auto a) {
    using A = decltype(a);
    if constexpr (attnkit::simd::arch_compiled<A>) {
      if (attnkit::simd::arch_available<A>()) {
        INFO("arch " << A::name());
        f(a);
        ++ran;
      }
    }
  };
  one(attnkit::simd::avx512{});
  one(attnkit::simd::avx2{});
  one(attnkit::simd::generic{});
  return ran;
}

/// Size of one unit in the last place of T at magnitude |ref| (subnormal spacing below the
/// smallest normal), computed in long double.
template <class T>
long double ulp_at(long double ref) {
  const long double a = std::fabs(ref);
  const long double min_normal = std::numeric_limits<T>::min();
  const long double denorm = std::numeric_limits<T>::denorm_min();
  if (a < min_normal) return denorm;
  const int e = std::ilogb(a);
  return std::ldexp(1.0L, e - (std::numeric_limits<T>::digits - 1));
}

/// Error of y against the exact value ref, in ulps of T at ref. Infinite y is exact when ref
/// is beyond T's largest finite value (with the same sign); NaN y is infinitely wrong unless ref
/// is NaN.
template <class T>
long double ulp_error(T y, long double ref) {
  if (std::isnan(ref)) return std::isnan(y) ? 0.0L : std::numeric_limits<long double>::infinity();
  if (std::isnan(y)) return std::numeric_limits<long double>::infinity();
  const long double maxv = std::numeric_limits<T>::max();
  if (std::isinf(y)) {
    const bool ok = (y > 0 && ref >= maxv) || (y < 0 && ref <= -maxv);
    return ok ? 0.0L : std::numeric_limits<long double>::infinity();
  }
  if (std::isinf(ref))
    return std::fabs(y) == std::numeric_limits<T>::max()
               ? 1.0L
               : std::numeric_limits<long double>::infinity();
  return std::fabs(static_cast<long double>(y) - ref) / ulp_at<T>(ref);
}

}  // namespace attnkit_test
