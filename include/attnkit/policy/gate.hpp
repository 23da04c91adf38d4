// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Output gates (Gated Attention): an epilogue on each attention output row.
#pragma once

#include <cmath>
#include <cstdint>

#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/policy/concepts.hpp"

namespace attnkit::policy {

namespace detail {
inline double gate_sigmoid(double x) noexcept { return 1.0 / (1.0 + std::exp(-x)); }
}  // namespace detail

/// No gate.
struct NoGate {
  static constexpr bool is_identity = true;
  template <class T>
  void apply_row(index_t, index_t, index_t, T*, index_t) const noexcept {}
  NoGate bind(const Geometry&) const noexcept { return *this; }
};

/// out[b, h, i, :] *= sigmoid(g[b, h, i]); g is a [B, Hq, Nq] view of gate logits.
/// \tparam V element type of the gate values (float or double)
template <class V = float>
struct HeadwiseSigmoid {
  static constexpr bool is_identity = false;
  TensorView<const V, 3> values;  ///< [B, Hq, Nq]; must outlive the call
  HeadwiseSigmoid() = default;
  explicit HeadwiseSigmoid(TensorView<const V, 3> g) : values(g) {}
  template <class T>
  void apply_row(index_t b, index_t h, index_t i, T* row, index_t n) const noexcept {
    const T s = static_cast<T>(detail::gate_sigmoid(static_cast<double>(values(b, h, i))));
    for (index_t c = 0; c < n; ++c) row[c] *= s;
  }
  HeadwiseSigmoid bind(const Geometry& g) const {
    const Shape<3> want{g.batch, g.heads_q, g.nq};
    if (values.shape() != want)
      throw_shape_mismatch("attention", "HeadwiseSigmoid gate values", values.shape(), want);
    return *this;
  }
};

/// out[b, h, i, c] *= sigmoid(g[b, h, i, c]); g is a [B, Hq, Nq, Dv] view of gate logits.
/// \tparam V element type of the gate values (float or double)
template <class V = float>
struct ElementwiseSigmoid {
  static constexpr bool is_identity = false;
  TensorView<const V, 4> values;  ///< [B, Hq, Nq, Dv]; must outlive the call
  ElementwiseSigmoid() = default;
  explicit ElementwiseSigmoid(TensorView<const V, 4> g) : values(g) {}
  template <class T>
  void apply_row(index_t b, index_t h, index_t i, T* row, index_t n) const noexcept {
    for (index_t c = 0; c < n; ++c)
      row[c] *= static_cast<T>(detail::gate_sigmoid(static_cast<double>(values(b, h, i, c))));
  }
  ElementwiseSigmoid bind(const Geometry& g) const {
    const Shape<4> want{g.batch, g.heads_q, g.nq, g.dv};
    if (values.shape() != want)
      throw_shape_mismatch("attention", "ElementwiseSigmoid gate values", values.shape(), want);
    return *this;
  }
};

/// Which values a gate's factors are the sigmoid of, for attention_backward's gate gradient: none
/// (no such values, or a gate the backward does not differentiate), one per (b, h, i), or one per
/// output element. A gate type tells it through `sigmoid_gate_values(gate)`, found by
/// argument-dependent lookup (optional; without it: none). dA = dout · gate needs no hook.
enum class SigmoidGateValues : std::uint8_t { none, headwise, elementwise };

template <class V>
constexpr SigmoidGateValues sigmoid_gate_values(const HeadwiseSigmoid<V>&) noexcept {
  return SigmoidGateValues::headwise;
}
template <class V>
constexpr SigmoidGateValues sigmoid_gate_values(const ElementwiseSigmoid<V>&) noexcept {
  return SigmoidGateValues::elementwise;
}

static_assert(gate_policy<NoGate> && gate_policy<HeadwiseSigmoid<float>> &&
              gate_policy<ElementwiseSigmoid<double>>);

}  // namespace attnkit::policy
