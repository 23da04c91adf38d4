// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Position-wise feed-forward modules: the GELU MLP (GPT-2, BERT) and SwiGLU (LLaMA).
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>

#include "attnkit/block/linear.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/scratch_stack.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/simd/rows.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::block {

/// The GELU of a GELU MLP.
enum class GeluKind : std::uint8_t {
  exact,  ///< 0.5 x (1 + erf(x / sqrt 2)), torch.nn.GELU() and F.gelu default
  tanh,   ///< 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³))), GPT-2's "gelu_new"
};

namespace detail {

/// g[i] = silu(g[i]) · u[i] = g[i] · sigmoid(g[i]) · u[i] for i in [0, n).
template <class Arch, class T>
inline void silu_mul(T* g, const T* u, index_t n) noexcept {
  using B = simd::batch<T, Arch>;
  constexpr index_t w = simd::width<T, Arch>;
  index_t i = 0;
  for (; i + w <= n; i += w) {
    const B gv = simd::loadu<Arch>(g + i);
    simd::storeu<Arch>(g + i, gv * simd::sigmoid(gv) * simd::loadu<Arch>(u + i));
  }
  if (i < n) {
    const B gv = simd::load_partial<Arch>(g + i, n - i);
    simd::store_partial<Arch>(
        g + i, gv * simd::sigmoid(gv) * simd::load_partial<Arch>(u + i, n - i), n - i);
  }
}

/// x[i] = gelu(x[i]); the tanh form in SIMD, the exact form with std::erf.
template <class Arch, class T>
inline void gelu_inplace(T* x, index_t n, GeluKind kind) noexcept {
  if (kind == GeluKind::exact) {
    const T r = T(1) / std::sqrt(T(2));
    for (index_t i = 0; i < n; ++i) x[i] = T(0.5) * x[i] * (T(1) + std::erf(x[i] * r));
    return;
  }
  using B = simd::batch<T, Arch>;
  constexpr index_t w = simd::width<T, Arch>;
  const B k0(static_cast<T>(0.7978845608028654)), k1(static_cast<T>(0.044715)), half(T(0.5)),
      one(T(1));
  auto f = [&](const B& v) { return half * v * (one + simd::tanh(k0 * (v + k1 * v * v * v))); };
  index_t i = 0;
  for (; i + w <= n; i += w) simd::storeu<Arch>(x + i, f(simd::loadu<Arch>(x + i)));
  if (i < n) simd::store_partial<Arch>(x + i, f(simd::load_partial<Arch>(x + i, n - i)), n - i);
}

}  // namespace detail

/// y = silu(x) · u elementwise over rows of g [M, I] (in place into g), u [M, I]; contiguous.
template <std::floating_point T>
void silu_mul_inplace(TensorView<T, 2> g, std::type_identity_t<TensorView<const T, 2>> u) {
  if (u.shape() != g.shape()) throw_shape_mismatch("silu_mul_inplace", "u", u.shape(), g.shape());
  if (!g.is_contiguous() || !u.is_contiguous())
    throw shape_error("attnkit: silu_mul_inplace: g and u must be contiguous");
  simd::dispatch([&](auto a) { detail::silu_mul<decltype(a)>(g.data(), u.data(), g.size()); });
}

/// x = gelu(x) elementwise over a contiguous x [M, I], in place (the GELU of GeluMLP).
template <std::floating_point T>
void gelu_inplace(TensorView<T, 2> x, GeluKind kind) {
  if (!x.is_contiguous()) throw shape_error("attnkit: gelu_inplace: x must be contiguous");
  simd::dispatch([&](auto a) { detail::gelu_inplace<decltype(a)>(x.data(), x.size(), kind); });
}

/// SwiGLU feed-forward (Shazeer 2020, LLaMA's LlamaMLP): y = down(silu(gate(x)) · up(x)).
/// Weights as torch.nn.Linear stores them (T, bf16 or f16): gate and up [I, H], down [H, I];
/// no biases.
/// \tparam T float or double
template <std::floating_point T>
struct SwiGLU {
  Weight<T> gate;  ///< [I, H]
  Weight<T> up;    ///< [I, H]
  Weight<T> down;  ///< [H, I]

  index_t hidden() const noexcept { return gate.extent(1); }
  index_t intermediate() const noexcept { return gate.extent(0); }
  /// Bytes of the three weights in their stored dtype.
  std::size_t weight_bytes() const noexcept { return gate.bytes() + up.bytes() + down.bytes(); }

  /// Throws shape_error when the three weights do not fit together.
  void check() const {
    const index_t i = gate.extent(0), h = gate.extent(1);
    if (up.shape() != Shape<2>{i, h})
      throw_shape_mismatch("SwiGLU", "up", up.shape(), Shape<2>{i, h});
    if (down.shape() != Shape<2>{h, i})
      throw_shape_mismatch("SwiGLU", "down", down.shape(), Shape<2>{h, i});
  }

  /// y [M, H] = SwiGLU(x [M, H]). y must not alias x.
  void operator()(TensorView<const T, 2> x, TensorView<T, 2> y) const {
    check();
    const index_t m = x.extent(0);
    ScratchFrame frame;  // no allocation per call (core/scratch_stack.hpp)
    const TensorView<T, 2> g = frame.tensor<T>(Shape<2>{m, intermediate()});
    const TensorView<T, 2> u = frame.tensor<T>(Shape<2>{m, intermediate()});
    linear<T>(x, gate, g);
    linear<T>(x, up, u);
    silu_mul_inplace<T>(g, TensorView<const T, 2>(u));
    linear<T>(TensorView<const T, 2>(g), down, y);
  }
};

/// GELU MLP (GPT-2, BERT, ViT): y = fc2(gelu(fc1(x) + b1)) + b2. fc1 [I, H], fc2 [H, I]; the
/// biases [I] and [H] may be empty.
/// \tparam T float or double
template <std::floating_point T>
struct GeluMLP {
  Weight<T> fc1;                    ///< [I, H]
  TensorView<const T, 1> fc1_bias;  ///< [I] or empty
  Weight<T> fc2;                    ///< [H, I]
  TensorView<const T, 1> fc2_bias;  ///< [H] or empty
  GeluKind kind = GeluKind::exact;

  /// Bytes of the two weights in their stored dtype.
  std::size_t weight_bytes() const noexcept { return fc1.bytes() + fc2.bytes(); }

  /// y [M, H] = MLP(x [M, H]). y must not alias x.
  void operator()(TensorView<const T, 2> x, TensorView<T, 2> y) const {
    const index_t m = x.extent(0), i = fc1.extent(0);
    if (fc2.extent(1) != i)
      throw_shape_mismatch("GeluMLP", "fc2", fc2.shape(), Shape<2>{fc1.extent(1), i});
    ScratchFrame frame;  // no allocation per call (core/scratch_stack.hpp)
    const TensorView<T, 2> hbuf = frame.tensor<T>(Shape<2>{m, i});
    linear<T>(x, fc1, fc1_bias, hbuf);
    gelu_inplace<T>(hbuf, kind);
    linear<T>(TensorView<const T, 2>(hbuf), fc2, fc2_bias, y);
  }
};

}  // namespace attnkit::block

ATTNKIT_SIMD_WARNINGS_POP
