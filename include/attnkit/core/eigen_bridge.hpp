// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Bridge between attnkit views and Eigen. Not included by attnkit.hpp: include it yourself.
#pragma once

#include <type_traits>

#include "attnkit/core/warnings.hpp"

// Eigen's AVX-512 packet math (ptranspose, pload1, ...) inlines GCC's intrinsics: read with the
// false positive silenced (core/warnings.hpp).
ATTNKIT_SIMD_WARNINGS_PUSH
#include <Eigen/Core>
#include <unsupported/Eigen/CXX11/Tensor>
ATTNKIT_SIMD_WARNINGS_POP

#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"

namespace attnkit {

/// Row-major dynamic Eigen matrix of T.
template <class T>
using EigenRowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// An Eigen::Map over a rank-2 view (any positive strides; no copy).
/// Mutable for a mutable view, read-only for a const view.
template <class T>
auto as_eigen(TensorView<T, 2> v) {
  using Plain = std::remove_const_t<T>;
  using Matrix =
      std::conditional_t<std::is_const_v<T>, const EigenRowMatrix<Plain>, EigenRowMatrix<Plain>>;
  using Stride = Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>;
  return Eigen::Map<Matrix, Eigen::Unaligned, Stride>(v.data(), v.extent(0), v.extent(1),
                                                      Stride(v.stride(0), v.stride(1)));
}

/// An Eigen::Map over a rank-2 tensor.
template <class T>
auto as_eigen(Tensor<T, 2>& t) {
  return as_eigen(t.view());
}
template <class T>
auto as_eigen(const Tensor<T, 2>& t) {
  return as_eigen(t.view());
}

/// A rank-2 view over any Eigen dense object with direct access (Matrix, Map, Block).
/// The view follows Eigen's storage order through its strides.
template <class Derived>
auto view_of(Eigen::PlainObjectBase<Derived>& m) {
  using T = typename Derived::Scalar;
  return TensorView<T, 2>(m.data(), {m.rows(), m.cols()}, {m.rowStride(), m.colStride()});
}
template <class Derived>
auto view_of(const Eigen::PlainObjectBase<Derived>& m) {
  using T = typename Derived::Scalar;
  return TensorView<const T, 2>(m.data(), {m.rows(), m.cols()}, {m.rowStride(), m.colStride()});
}
template <class PlainType, int Options, class StrideType>
auto view_of(const Eigen::Map<PlainType, Options, StrideType>& m) {
  using T = std::remove_pointer_t<decltype(m.data())>;
  return TensorView<T, 2>(m.data(), {m.rows(), m.cols()}, {m.rowStride(), m.colStride()});
}

/// A rank-R view over an Eigen::Tensor (either storage order; no copy).
template <class T, int R, int Options, class IndexType>
auto view_of(Eigen::Tensor<T, R, Options, IndexType>& t) {
  Shape<R> shape{};
  Strides<R> strides{};
  index_t acc = 1;
  if constexpr ((Options & Eigen::RowMajor) != 0) {
    for (int d = R; d-- > 0;) {
      shape[d] = t.dimension(d);
      strides[d] = acc;
      acc *= shape[d];
    }
  } else {
    for (int d = 0; d < R; ++d) {
      shape[d] = t.dimension(d);
      strides[d] = acc;
      acc *= shape[d];
    }
  }
  return TensorView<T, R>(t.data(), shape, strides);
}

/// An Eigen::TensorMap (row-major) over a contiguous view; throws shape_error otherwise.
template <class T, std::size_t R>
auto as_eigen_tensor(TensorView<T, R> v) {
  if (!v.is_contiguous())
    throw shape_error("attnkit: as_eigen_tensor needs a contiguous view, got shape " +
                      shape_string(v.shape()));
  using Plain = std::remove_const_t<T>;
  using TensorType =
      std::conditional_t<std::is_const_v<T>,
                         const Eigen::Tensor<Plain, int(R), Eigen::RowMajor, index_t>,
                         Eigen::Tensor<Plain, int(R), Eigen::RowMajor, index_t>>;
  std::array<index_t, R> dims{};
  for (std::size_t d = 0; d < R; ++d) dims[d] = v.extent(d);
  return Eigen::TensorMap<TensorType>(v.data(), dims);
}

}  // namespace attnkit
