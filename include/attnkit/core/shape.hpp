// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Shape and stride types and helpers for row-major tensors.
#pragma once

#include <array>
#include <cstddef>
#include <limits>

#include "attnkit/core/error.hpp"

namespace attnkit {

/// Signed index type of every extent, stride and offset.
using index_t = std::ptrdiff_t;

/// Extents of a rank-R tensor, outermost first.
template <std::size_t R>
using Shape = std::array<index_t, R>;

/// Strides (in elements, not bytes) of a rank-R tensor.
template <std::size_t R>
using Strides = std::array<index_t, R>;

/// Number of elements of a shape; throws attnkit::error on negative extents or overflow.
template <std::size_t R>
constexpr index_t numel(const Shape<R>& shape) {
  index_t n = 1;
  for (index_t e : shape) {
    if (e < 0) throw error("attnkit: negative extent in shape " + shape_string(shape));
    if (e != 0 && n > std::numeric_limits<index_t>::max() / e)
      throw error("attnkit: shape " + shape_string(shape) + " has too many elements");
    n *= e;
  }
  return n;
}

/// Row-major (C order) strides of a shape: the last extent is contiguous.
template <std::size_t R>
constexpr Strides<R> contiguous_strides(const Shape<R>& shape) {
  Strides<R> s{};
  index_t acc = 1;
  for (std::size_t i = R; i-- > 0;) {
    s[i] = acc;
    acc *= shape[i] > 0 ? shape[i] : 1;
  }
  return s;
}

/// Whether `strides` are the row-major strides of `shape` (extent-1 dimensions are ignored).
template <std::size_t R>
constexpr bool is_contiguous(const Shape<R>& shape, const Strides<R>& strides) {
  for (index_t e : shape)
    if (e == 0) return true;
  index_t acc = 1;
  for (std::size_t i = R; i-- > 0;) {
    if (shape[i] != 1 && strides[i] != acc) return false;
    acc *= shape[i];
  }
  return true;
}

}  // namespace attnkit
