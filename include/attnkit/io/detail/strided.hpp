// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Private helper of attnkit/io: visits a strided array of any rank in C order, run by run.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "attnkit/core/shape.hpp"

namespace attnkit::io::detail {

/// Calls `sink(const std::byte* p, std::size_t count)` for runs of `count` consecutive elements
/// (each `item` bytes) in C order. `strides` are in elements and not negative. A rank-0 shape is
/// one element; a shape with a zero extent has none.
template <class Sink>
void for_each_run(const std::byte* data, std::span<const index_t> shape,
                  std::span<const index_t> strides, std::size_t item, Sink&& sink) {
  const std::size_t rank = shape.size();
  for (index_t e : shape)
    if (e == 0) return;
  if (rank == 0) {
    sink(data, 1);
    return;
  }
  const index_t inner = shape[rank - 1];
  const index_t inner_stride = strides[rank - 1];
  std::vector<index_t> idx(rank, 0);
  for (;;) {
    index_t off = 0;
    for (std::size_t d = 0; d + 1 < rank; ++d) off += idx[d] * strides[d];
    const std::byte* row = data + off * static_cast<index_t>(item);
    if (inner_stride == 1 || inner == 1) {
      sink(row, static_cast<std::size_t>(inner));
    } else {
      for (index_t k = 0; k < inner; ++k)
        sink(row + k * inner_stride * static_cast<index_t>(item), 1);
    }
    // Advance the outer index (all dimensions but the last) like an odometer.
    std::size_t d = rank - 1;
    for (;;) {
      if (d == 0) return;
      --d;
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

}  // namespace attnkit::io::detail
