// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// StridedView<T>: a view whose rank is a run-time value (data pointer + shape + strides), the
// operand type of the runtime einsum form and of EinsumPlan.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>

#include "attnkit/core/error.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"

namespace attnkit {

/// Highest rank a StridedView (and so an einsum operand) may have.
inline constexpr std::size_t einsum_max_rank = 16;

/// A strided, non-owning view of rank 0..einsum_max_rank chosen at run time. Rank 0 is a scalar.
/// Tensors and TensorViews convert to it implicitly (mutable to mutable or const, const to const).
/// \tparam T element type, possibly const
template <class T>
class StridedView {
  static_assert(std::is_arithmetic_v<std::remove_const_t<T>>,
                "attnkit: T of StridedView must be an arithmetic type");

 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;

  /// A null scalar view.
  constexpr StridedView() = default;

  /// A view with explicit shape and strides (in elements); throws shape_error when the rank is
  /// above einsum_max_rank or the two lists differ in length.
  StridedView(T* data, std::span<const index_t> shape, std::span<const index_t> strides)
      : data_(data), rank_(shape.size()) {
    if (shape.size() > einsum_max_rank || strides.size() != shape.size())
      throw shape_error("attnkit: StridedView: shape " + shape_string(shape) + " with " +
                        std::to_string(strides.size()) + " strides (rank at most " +
                        std::to_string(einsum_max_rank) + ")");
    for (std::size_t d = 0; d < rank_; ++d) {
      shape_[d] = shape[d];
      strides_[d] = strides[d];
    }
  }

  /// A row-major (C order) view of `shape` over `data`.
  StridedView(T* data, std::span<const index_t> shape) : data_(data), rank_(shape.size()) {
    if (shape.size() > einsum_max_rank)
      throw shape_error("attnkit: StridedView: shape " + shape_string(shape) + " has rank above " +
                        std::to_string(einsum_max_rank));
    index_t acc = 1;
    for (std::size_t d = rank_; d-- > 0;) {
      shape_[d] = shape[d];
      strides_[d] = acc;
      acc *= shape[d] > 0 ? shape[d] : 1;
    }
  }

  /// From a TensorView (no copy).
  template <class U, std::size_t R>
  requires std::is_convertible_v<U*, T*>
  constexpr StridedView(TensorView<U, R> v)  // NOLINT: implicit by design
      : data_(v.data()), rank_(R) {
    static_assert(R <= einsum_max_rank, "attnkit: StridedView: rank above einsum_max_rank");
    for (std::size_t d = 0; d < R; ++d) {
      shape_[d] = v.extent(d);
      strides_[d] = v.stride(d);
    }
  }

  /// From a Tensor (no copy).
  template <class U, std::size_t R>
  requires std::is_convertible_v<U*, T*> StridedView(Tensor<U, R>& t)  // NOLINT: implicit by design
      : StridedView(t.view()) {}
  template <class U, std::size_t R>
  requires std::is_convertible_v<const U*, T*> StridedView(
      const Tensor<U, R>& t)  // NOLINT: implicit by design
      : StridedView(t.view()) {}

  /// Mutable to const conversion.
  template <class U>
  requires(!std::is_same_v<U, T> && std::is_same_v<const U, T>) constexpr StridedView(
      const StridedView<U>& o)  // NOLINT: implicit by design
      : data_(o.data()), rank_(o.rank()) {
    for (std::size_t d = 0; d < rank_; ++d) {
      shape_[d] = o.extent(d);
      strides_[d] = o.stride(d);
    }
  }

  /// A rank-0 view of one element.
  static constexpr StridedView scalar(T* p) {
    StridedView v;
    v.data_ = p;
    return v;
  }

  constexpr T* data() const noexcept { return data_; }
  constexpr std::size_t rank() const noexcept { return rank_; }
  constexpr index_t extent(std::size_t d) const noexcept { return shape_[d]; }
  constexpr index_t stride(std::size_t d) const noexcept { return strides_[d]; }
  constexpr std::span<const index_t> shape() const noexcept { return {shape_.data(), rank_}; }
  constexpr std::span<const index_t> strides() const noexcept { return {strides_.data(), rank_}; }
  /// Number of elements (1 for a scalar).
  constexpr index_t size() const noexcept {
    index_t n = 1;
    for (std::size_t d = 0; d < rank_; ++d) n *= shape_[d];
    return n;
  }

 private:
  T* data_ = nullptr;
  std::size_t rank_ = 0;
  std::array<index_t, einsum_max_rank> shape_{};
  std::array<index_t, einsum_max_rank> strides_{};
};

}  // namespace attnkit
