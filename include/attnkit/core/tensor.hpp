// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Tensor<T, R>: an owning, 64-byte aligned, row-major array.
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <type_traits>
#include <utility>

#include "attnkit/core/aligned.hpp"
#include "attnkit/core/half.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/core/tensor_view.hpp"

namespace attnkit {

/// An owning, row-major (C order), 64-byte aligned array of rank R.
/// Copies are deep; moves are cheap. Converts implicitly to TensorView.
/// \tparam T arithmetic element type, or a 16-bit storage type (bf16, f16: storage only)
/// \tparam R rank, at least 1
template <class T, std::size_t R>
class Tensor {
  static_assert((std::is_arithmetic_v<T> || is_half_type<T>)&&!std::is_const_v<T>,
                "attnkit: T of Tensor must be a non-const arithmetic type, bf16 or f16");
  static_assert(R >= 1, "attnkit: R of Tensor must be at least 1");

 public:
  using value_type = T;
  static constexpr std::size_t rank = R;

  Tensor() = default;

  /// A zero-filled tensor of the given shape.
  explicit Tensor(const Shape<R>& shape)
      : shape_(shape),
        size_(numel(shape)),
        data_(make_aligned<T>(static_cast<std::size_t>(size_))) {}

  /// A tensor of the given shape with every element set to `value`.
  Tensor(const Shape<R>& shape, T value) : Tensor(shape) { std::fill_n(data_.get(), size_, value); }

  /// A deep copy of any view of the same rank (converting the element type).
  template <class U>
  explicit Tensor(TensorView<U, R> src) : Tensor(src.shape()) {
    copy(TensorView<const std::remove_const_t<U>, R>(src), view());
  }

  Tensor(const Tensor& other) : Tensor(other.shape_) {
    std::copy_n(other.data(), size_, data_.get());
  }
  Tensor& operator=(const Tensor& other) {
    if (this != &other) *this = Tensor(other);
    return *this;
  }
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  T* data() noexcept { return data_.get(); }
  const T* data() const noexcept { return data_.get(); }
  const Shape<R>& shape() const noexcept { return shape_; }
  Strides<R> strides() const noexcept { return contiguous_strides(shape_); }
  index_t extent(std::size_t d) const noexcept { return shape_[d]; }
  index_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  TensorView<T, R> view() noexcept { return TensorView<T, R>(data_.get(), shape_); }
  TensorView<const T, R> view() const noexcept {
    return TensorView<const T, R>(data_.get(), shape_);
  }
  TensorView<const T, R> cview() const noexcept { return view(); }

  operator TensorView<T, R>() noexcept { return view(); }              // NOLINT
  operator TensorView<const T, R>() const noexcept { return view(); }  // NOLINT

  template <class... I>
  requires(sizeof...(I) == R && (std::is_integral_v<I> && ...)) T& operator()(I... idx)
      ATTNKIT_ASSERT_NOEXCEPT {
    return view()(idx...);
  }
  template <class... I>
  requires(sizeof...(I) == R && (std::is_integral_v<I> && ...)) const T& operator()(I... idx) const
      ATTNKIT_ASSERT_NOEXCEPT {
    return view()(idx...);
  }

  /// The rank R-1 view at index i of the leading dimension.
  TensorView<T, R - 1> operator[](index_t i) ATTNKIT_ASSERT_NOEXCEPT requires(R > 1) {
    return view()[i];
  }
  TensorView<const T, R - 1> operator[](index_t i) const ATTNKIT_ASSERT_NOEXCEPT requires(R > 1) {
    return view()[i];
  }

  T* begin() noexcept { return data(); }
  T* end() noexcept { return data() + size_; }
  const T* begin() const noexcept { return data(); }
  const T* end() const noexcept { return data() + size_; }

 private:
  Shape<R> shape_{};
  index_t size_ = 0;
  aligned_ptr<T> data_ = make_aligned<T>(0);
};

}  // namespace attnkit
