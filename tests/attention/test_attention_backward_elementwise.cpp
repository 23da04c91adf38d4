// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attention_backward for the elementwise activations (sigmoid, sigmoid-bias, linear, relu) and
// for user activations without the SIMD derivative hook (normalized by the running sum, and a
// softmax of a clamped score): gradients against finite differences in double, float against
// double.
#include "backward_test_util.hpp"
#include "policy/user_activations.hpp"

using namespace attnkit;
using namespace attnkit::test;

namespace {

/// Softmax of 2 tanh(s / 2) without the SIMD derivative hook (the scalar fallback).
struct TanhCapSoftmax {
  static constexpr auto normalization = pol::Normalization::over_keys_exp;
  double map(double s) const noexcept { return 2.0 * std::tanh(s / 2.0); }
  double derivative(double s) const noexcept {
    const double t = std::tanh(s / 2.0);
    return 1.0 - t * t;
  }
  template <class T, class A>
  xsimd::batch<T, A> simd_map(const xsimd::batch<T, A>& s) const noexcept {
    using B = xsimd::batch<T, A>;
    return B(T(2)) * xsimd::tanh(s * B(T(0.5)));
  }
  TanhCapSoftmax bind(const pol::Geometry&) const noexcept { return *this; }
};
static_assert(!pol::has_simd_derivative<SquarePlusOne> &&
              !pol::has_simd_derivative<TanhCapSoftmax>);

}  // namespace

TEST_CASE("attention_backward sigmoid: finite differences under every mask", "[backward]") {
  check_grads_masks<Masks::all, true>(pol::Sigmoid{}, "sigmoid", 111);
}

TEST_CASE("attention_backward sigmoid-bias, linear, relu: finite differences", "[backward]") {
  check_grads_masks<Masks::core>(pol::SigmoidBias{}, "sigmoid-bias", 121);
  check_grads_masks<Masks::core>(pol::Linear{}, "linear", 131);
  check_grads_masks<Masks::core>(pol::ReLU{}, "relu", 141);
}

TEST_CASE("attention_backward user activations without the SIMD derivative", "[backward]") {
  check_grads_masks<Masks::core>(SquarePlusOne{}, "square-plus-one", 151);
  check_grads_masks<Masks::core>(TanhCapSoftmax{}, "tanh-cap-softmax", 161);
  // The scalar derivative fallback in float too.
  check_grads<true>(pol::AttentionPolicy(SquarePlusOne{}, pol::Causal{}), {1, 3, 1, 67, 70, 6, 5},
                    162, "square-plus-one float", {}, {}, 6);
}

TEST_CASE("attention_backward elementwise: larger shapes, float against double", "[backward]") {
  // Several full 64-key tiles (the vector paths without tails) and a GQA group of 4.
  const Problem p{1, 8, 2, 150, 140, 64, 48};
  check_grads<true>(pol::AttentionPolicy(pol::SigmoidBias{}, pol::Causal{}), p, 171,
                    "sigmoid-bias big", {}, {}, 6);
  check_grads<true>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), p, 172, "softmax big", {},
                    {}, 6);
}
