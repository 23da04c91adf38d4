// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// General matrix multiply over strided operands: the interface every contraction in attnkit
// computes on. C = alpha · op(A) · op(B) + beta · C with any row/column strides (in elements),
// so transposes are stride swaps and no copy is needed to call it.
#pragma once

#include "attnkit/core/shape.hpp"

namespace attnkit::kernel {

/// A strided matrix operand: element (i, j) is data[i * row_stride + j * col_stride].
/// \tparam T element type, possibly const
template <class T>
struct MatrixRef {
  T* data;
  index_t row_stride;
  index_t col_stride;
  T& operator()(index_t i, index_t j) const { return data[i * row_stride + j * col_stride]; }
  /// The same matrix transposed (a stride swap).
  MatrixRef transposed() const { return {data, col_stride, row_stride}; }
};

/// C[m, n] = alpha · Σ_k A[m, k] B[k, n] + beta · C[m, n]. When beta == 0, C is not read (it may
/// hold NaN). Strides may be anything except that C must not alias A or B.
/// \tparam T float or double
template <class T>
void gemm(index_t m, index_t n, index_t k, T alpha, MatrixRef<const T> a, MatrixRef<const T> b,
          T beta, MatrixRef<T> c) {
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      T acc = 0;
      for (index_t p = 0; p < k; ++p) acc += a(i, p) * b(p, j);
      c(i, j) = beta == T(0) ? alpha * acc : alpha * acc + beta * c(i, j);
    }
}

/// `batch` independent GEMMs; operand g starts at data + g * batch_stride of each operand.
template <class T>
void gemm_batched(index_t batch, index_t m, index_t n, index_t k, T alpha, MatrixRef<const T> a,
                  index_t a_batch_stride, MatrixRef<const T> b, index_t b_batch_stride, T beta,
                  MatrixRef<T> c, index_t c_batch_stride) {
  for (index_t g = 0; g < batch; ++g) {
    MatrixRef<const T> ag{a.data + g * a_batch_stride, a.row_stride, a.col_stride};
    MatrixRef<const T> bg{b.data + g * b_batch_stride, b.row_stride, b.col_stride};
    MatrixRef<T> cg{c.data + g * c_batch_stride, c.row_stride, c.col_stride};
    gemm(m, n, k, alpha, ag, bg, beta, cg);
  }
}

}  // namespace attnkit::kernel
