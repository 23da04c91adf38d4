// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// TensorView<T, R>: a strided, non-owning view of a rank-R array.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <type_traits>

#include "attnkit/core/error.hpp"
#include "attnkit/core/half.hpp"
#include "attnkit/core/shape.hpp"

namespace attnkit {

/// A strided, non-owning view of a rank-R array. `T` may be const (a read-only view).
/// Strides are in elements. A mutable view converts implicitly to a const one.
/// \tparam T element type, possibly const-qualified
/// \tparam R rank (number of dimensions), at least 1
template <class T, std::size_t R>
class TensorView {
  static_assert(R >= 1, "attnkit: R of TensorView must be at least 1");
  static_assert(std::is_arithmetic_v<std::remove_const_t<T>> ||
                    is_half_type<std::remove_const_t<T>>,
                "attnkit: T of TensorView must be an arithmetic type, bf16 or f16");

 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  static constexpr std::size_t rank = R;

  /// An empty view (null data, all extents zero).
  constexpr TensorView() = default;

  /// A row-major (C order) view of `shape` over `data`.
  constexpr TensorView(T* data, const Shape<R>& shape)
      : data_(data), shape_(shape), strides_(contiguous_strides(shape)) {}

  /// A view with explicit strides (in elements; may be zero for broadcasting, not negative).
  constexpr TensorView(T* data, const Shape<R>& shape, const Strides<R>& strides)
      : data_(data), shape_(shape), strides_(strides) {}

  /// Mutable to const conversion.
  template <class U>
  requires(!std::is_same_v<U, T> && std::is_same_v<const U, T>) constexpr TensorView(
      const TensorView<U, R>& other)  // NOLINT: implicit by design
      : data_(other.data()), shape_(other.shape()), strides_(other.strides()) {}

  constexpr T* data() const noexcept { return data_; }
  constexpr const Shape<R>& shape() const noexcept { return shape_; }
  constexpr const Strides<R>& strides() const noexcept { return strides_; }
  constexpr index_t extent(std::size_t d) const noexcept { return shape_[d]; }
  constexpr index_t stride(std::size_t d) const noexcept { return strides_[d]; }

  /// Number of elements.
  constexpr index_t size() const noexcept {
    index_t n = 1;
    for (index_t e : shape_) n *= e;
    return n;
  }
  constexpr bool empty() const noexcept { return size() == 0; }

  /// Whether the view is row-major contiguous.
  constexpr bool is_contiguous() const noexcept { return attnkit::is_contiguous(shape_, strides_); }

  /// Element access; one index per dimension. Not bounds-checked (ATTNKIT_ASSERT in debug).
  template <class... I>
  requires(sizeof...(I) == R && (std::is_integral_v<I> && ...)) constexpr T& operator()(
      I... idx) const ATTNKIT_ASSERT_NOEXCEPT {
    const std::array<index_t, R> ix{static_cast<index_t>(idx)...};
    index_t off = 0;
    for (std::size_t d = 0; d < R; ++d) {
      ATTNKIT_ASSERT(ix[d] >= 0 && ix[d] < shape_[d]);
      off += ix[d] * strides_[d];
    }
    return data_[off];
  }

  /// The rank R-1 view at index i of the leading dimension.
  constexpr TensorView<T, R - 1> operator[](index_t i) const requires(R > 1) {
    ATTNKIT_ASSERT(i >= 0 && i < shape_[0]);
    Shape<R - 1> s{};
    Strides<R - 1> st{};
    for (std::size_t d = 1; d < R; ++d) {
      s[d - 1] = shape_[d];
      st[d - 1] = strides_[d];
    }
    return TensorView<T, R - 1>(data_ + i * strides_[0], s, st);
  }

  /// The rank R-1 view at index i of the leading dimension, bounds-checked (throws shape_error).
  constexpr TensorView<T, R - 1> at(index_t i) const requires(R > 1) {
    if (i < 0 || i >= shape_[0])
      throw shape_error("attnkit: index " + std::to_string(i) + " out of range for shape " +
                        shape_string(shape_));
    return (*this)[i];
  }

  /// The elements [begin, end) of dimension `dim` (default: the leading one), same rank.
  /// Throws shape_error when the range is not inside the extent.
  constexpr TensorView slice(index_t begin, index_t end, std::size_t dim = 0) const {
    if (dim >= R || begin < 0 || end < begin || end > shape_[dim])
      throw shape_error("attnkit: slice [" + std::to_string(begin) + ", " + std::to_string(end) +
                        ") of dimension " + std::to_string(dim) + " out of range for shape " +
                        shape_string(shape_));
    Shape<R> s = shape_;
    s[dim] = end - begin;
    return TensorView(data_ + begin * strides_[dim], s, strides_);
  }

  /// A row-major view of the same elements with another shape. Throws shape_error when this
  /// view is not contiguous or the element counts differ.
  template <std::size_t R2>
  constexpr TensorView<T, R2> reshape(const Shape<R2>& shape) const {
    if (!is_contiguous())
      throw shape_error("attnkit: reshape of a non-contiguous view of shape " +
                        shape_string(shape_));
    if (numel(shape) != size())
      throw shape_error("attnkit: reshape: shape " + shape_string(shape_) + " cannot become " +
                        shape_string(shape));
    return TensorView<T, R2>(data_, shape);
  }

  /// A view with dimensions d0 and d1 exchanged (no copy).
  constexpr TensorView transpose(std::size_t d0, std::size_t d1) const {
    if (d0 >= R || d1 >= R) throw shape_error("attnkit: transpose: dimension out of range");
    TensorView t = *this;
    std::swap(t.shape_[d0], t.shape_[d1]);
    std::swap(t.strides_[d0], t.strides_[d1]);
    return t;
  }

 private:
  T* data_ = nullptr;
  Shape<R> shape_{};
  Strides<R> strides_{};
};

/// Read-only view alias.
template <class T, std::size_t R>
using ConstTensorView = TensorView<const T, R>;

/// Sets every element of a view to `value`.
template <class T, std::size_t R>
void fill(TensorView<T, R> v, std::remove_const_t<T> value) {
  if (v.is_contiguous()) {
    const index_t n = v.size();
    T* p = v.data();
    for (index_t i = 0; i < n; ++i) p[i] = value;
    return;
  }
  if constexpr (R == 1) {
    for (index_t i = 0; i < v.extent(0); ++i) v(i) = value;
  } else {
    for (index_t i = 0; i < v.extent(0); ++i) fill(v[i], value);
  }
}

/// Copies `src` into `dst` element by element; throws shape_error when the shapes differ.
template <class T, class U, std::size_t R>
void copy(TensorView<const U, R> src, TensorView<T, R> dst) {
  if (src.shape() != dst.shape()) throw_shape_mismatch("copy", "dst", dst.shape(), src.shape());
  if constexpr (R == 1) {
    for (index_t i = 0; i < src.extent(0); ++i) dst(i) = static_cast<T>(src(i));
  } else {
    for (index_t i = 0; i < src.extent(0); ++i) copy(TensorView<const U, R - 1>(src[i]), dst[i]);
  }
}

}  // namespace attnkit
