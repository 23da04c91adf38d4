// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Linear projections y = x Wᵀ (+ b) with PyTorch's weight layout [out, in], on kernel::gemm.
#pragma once

#include <concepts>
#include <string>
#include <type_traits>

#include "attnkit/block/weight.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/kernel/gemm.hpp"

namespace attnkit::block {

/// y[M, out] = x[M, in] · Wᵀ + b for a Weight stored as T, bf16 or f16 (matmul_transposed:
/// the GEMV kernel for M <= 4, widened panels through the GEMM otherwise), b [out] or empty.
/// y must not alias x or W. Throws shape_error naming the argument and both shapes.
/// \tparam T float or double
template <std::floating_point T>
void linear(std::type_identity_t<TensorView<const T, 2>> x, const Weight<T>& weight,
            std::type_identity_t<TensorView<const T, 1>> bias, TensorView<T, 2> y) {
  const index_t m = x.extent(0), in = x.extent(1), out = weight.extent(0);
  if (weight.extent(1) != in)
    throw_shape_mismatch("linear", "weight", weight.shape(), Shape<2>{out, in});
  if (y.shape() != Shape<2>{m, out})
    throw_shape_mismatch("linear", "y", y.shape(), Shape<2>{m, out});
  if (!bias.empty() && bias.shape() != Shape<1>{out})
    throw_shape_mismatch("linear", "bias", bias.shape(), Shape<1>{out});
  matmul_transposed<T>(x, weight, y);
  if (!bias.empty())
    for (index_t r = 0; r < m; ++r)
      for (index_t c = 0; c < out; ++c) y(r, c) += bias(c);
}

/// y[M, out] = x[M, in] · Wᵀ + b, W [out, in] as torch.nn.Linear stores it, b [out] or empty.
/// Any strides (the transpose is a stride swap, no copy); y must not alias x or W.
/// Throws shape_error naming the argument and both shapes.
/// \tparam T float or double
template <std::floating_point T>
void linear(std::type_identity_t<TensorView<const T, 2>> x,
            std::type_identity_t<TensorView<const T, 2>> weight,
            std::type_identity_t<TensorView<const T, 1>> bias, TensorView<T, 2> y) {
  linear<T>(x, Weight<T>(weight), bias, y);
}

/// linear() of a Weight without a bias.
template <std::floating_point T>
void linear(std::type_identity_t<TensorView<const T, 2>> x, const Weight<T>& weight,
            TensorView<T, 2> y) {
  linear<T>(x, weight, TensorView<const T, 1>{}, y);
}

/// linear() without a bias.
template <std::floating_point T>
void linear(std::type_identity_t<TensorView<const T, 2>> x,
            std::type_identity_t<TensorView<const T, 2>> weight, TensorView<T, 2> y) {
  linear<T>(x, weight, TensorView<const T, 1>{}, y);
}

/// A projection module: weight [out, in] (T, bf16 or f16: block::Weight) and optional bias
/// [out], held as views (the owner of the storage — a model, a memory-mapped file — must
/// outlive it).
/// \tparam T float or double
template <std::floating_point T>
struct Linear {
  Weight<T> weight;             ///< [out, in]
  TensorView<const T, 1> bias;  ///< [out] or empty

  index_t in_features() const noexcept { return weight.extent(1); }
  index_t out_features() const noexcept { return weight.extent(0); }
  /// y [M, out] = x [M, in] · Wᵀ + b.
  void operator()(TensorView<const T, 2> x, TensorView<T, 2> y) const {
    linear<T>(x, weight, bias, y);
  }
};

}  // namespace attnkit::block
