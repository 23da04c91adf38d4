// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A user-defined activation without its SIMD hook (only the scalar map and its derivative) is a
// compile error naming attnkit::policy::score_activation and the missing simd_map.
#include <xsimd/xsimd.hpp>

#include "attnkit/policy/attention_policy.hpp"

struct Cube {
  static constexpr auto normalization = attnkit::policy::Normalization::none;
  double map(double s) const noexcept { return s * s * s; }
  double derivative(double s) const noexcept { return 3 * s * s; }
#ifndef ATTNKIT_COMPILE_FAIL
  template <class T, class Arch>
  xsimd::batch<T, Arch> simd_map(const xsimd::batch<T, Arch>& s) const noexcept {
    return s * s * s;
  }
#endif
  Cube bind(const attnkit::policy::Geometry&) const noexcept { return *this; }
};

int main() {
  attnkit::policy::AttentionPolicy<Cube, attnkit::policy::Causal> p;
  return p.activation.map(2.0) == 8.0 ? 0 : 1;
}
