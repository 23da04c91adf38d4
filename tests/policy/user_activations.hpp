// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// User-defined activations shared by the tests, written on the policy hooks outside the library.
#pragma once

#include "attnkit/policy/concepts.hpp"

namespace attnkit::test {

/// P = (s² + 1) / Σ (s² + 1): normalized by the running sum; no simd_derivative hook.
struct SquarePlusOne {
  static constexpr auto normalization = policy::Normalization::over_keys_sum;
  double map(double s) const noexcept { return s * s + 1.0; }
  double derivative(double s) const noexcept { return 2.0 * s; }
  template <class T, class A>
  xsimd::batch<T, A> simd_map(const xsimd::batch<T, A>& s) const noexcept {
    return xsimd::fma(s, s, xsimd::batch<T, A>(T(1)));
  }
  SquarePlusOne bind(const policy::Geometry&) const noexcept { return *this; }
};

}  // namespace attnkit::test
