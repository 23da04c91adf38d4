// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Shared body of the simd math accuracy tests: sample inputs over the whole range of T, run a
// row kernel for one architecture, and measure the max error in ulps against a long double
// (or double, for fp32) reference.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/core/shape.hpp"

#include "arch_util.hpp"

namespace attnkit_test {

/// Inputs spread over every exponent of T (both signs, subnormals, ±inf, NaN): for fp32 every
/// 4093rd bit pattern of all 2^32; for fp64 random bit patterns. Plus dense uniform samples in
/// [lo, hi] where the function is interesting, and the exact specials.
template <class T>
std::vector<T> full_range_samples(T lo, T hi, std::uint64_t seed) {
  std::vector<T> xs;
  std::mt19937_64 rng(seed);
  if constexpr (std::is_same_v<T, float>) {
    for (std::uint64_t u = 0; u < (std::uint64_t{1} << 32); u += 4093) {
      const auto bits = static_cast<std::uint32_t>(u);
      float x;
      std::memcpy(&x, &bits, sizeof x);
      xs.push_back(x);
    }
  } else {
    for (int i = 0; i < 400000; ++i) {
      const std::uint64_t bits = rng();
      double x;
      std::memcpy(&x, &bits, sizeof x);
      xs.push_back(x);
    }
  }
  std::uniform_real_distribution<T> dense(lo, hi);
  for (int i = 0; i < 300000; ++i) xs.push_back(dense(rng));
  const T inf = std::numeric_limits<T>::infinity();
  for (T s : {T(0), -T(0), inf, -inf, std::numeric_limits<T>::quiet_NaN(),
              std::numeric_limits<T>::min(), std::numeric_limits<T>::denorm_min(),
              std::numeric_limits<T>::max(), -std::numeric_limits<T>::max(), T(1), T(-1)})
    xs.push_back(s);
  return xs;
}

/// Runs kernel(ptr, n) on a copy of xs (an odd length, so the tail path runs too) and returns
/// the max ulp error against ref(x) (long double); *worst gets the input that produced it.
template <class T, class Kernel, class Ref>
long double max_ulp_error(const std::vector<T>& xs, Kernel kernel, Ref ref, T* worst) {
  std::vector<T> ys(xs);
  if (ys.size() % 2 == 0) ys.pop_back();
  kernel(ys.data(), static_cast<attnkit::index_t>(ys.size()));
  long double max_err = 0;
  *worst = T(0);
  for (std::size_t i = 0; i < ys.size(); ++i) {
    const long double e = ulp_error<T>(ys[i], ref(xs[i]));
    if (!(e <= max_err)) {
      max_err = e;
      *worst = xs[i];
    }
  }
  return max_err;
}

}  // namespace attnkit_test
