// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// General matrix multiply over strided operands: the interface every contraction in attnkit
// computes on. C = alpha · op(A) · op(B) + beta · C with any row/column strides (in elements),
// so transposes are stride swaps and no copy is needed to call it.
//
// Implementation: kernel/packed_gemm.hpp (packed, cache-blocked, OpenMP over the outer blocks)
// for everything but tiny products, which go to kernel/tile_gemm.hpp when B and C have
// contiguous rows. The architecture (AVX-512, AVX2+FMA, SSE2) is picked once per call.
// Results are bit-identical whatever the thread count.
#pragma once

#include <algorithm>
#include <string>
#include <type_traits>

#include "attnkit/core/error.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/kernel/packed_gemm.hpp"
#include "attnkit/kernel/tile_gemm.hpp"
#include "attnkit/simd/arch.hpp"

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

namespace detail {

/// Products with m·n·k below this use tile_gemm (no packing) when the layout allows.
inline constexpr index_t gemm_small_volume = 24 * 24 * 24;
/// Multiply-adds per thread below which extra threads cost more than they save.
inline constexpr index_t gemm_work_per_thread = index_t{1} << 19;

/// Threads a GEMM of this size uses: 1 inside a parallel region or for small products.
inline int gemm_threads(index_t m, index_t n, index_t k) {
  const int avail = worker_threads();
  if (avail <= 1) return 1;
  const double volume = double(m) * double(n) * double(k);
  const double want = volume / double(gemm_work_per_thread);
  return want < 2.0 ? 1 : (want >= avail ? avail : static_cast<int>(want));
}

/// gemm on a given number of threads (1 = serial). Shapes already checked.
template <class T>
void gemm_run(index_t m, index_t n, index_t k, T alpha, MatrixRef<const T> a, MatrixRef<const T> b,
              T beta, MatrixRef<T> c, int threads) {
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == T(0)) {
    // C = beta · C; A and B are not read (BLAS semantics); beta == 0 overwrites NaN with 0.
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) c(i, j) = beta == T(0) ? T(0) : beta * c(i, j);
    return;
  }
  // A column-major C is computed as Cᵀ = Bᵀ · Aᵀ, so the micro-kernel stores rows.
  if (c.col_stride != 1 && c.row_stride == 1 && n > 1) {
    gemm_run<T>(n, m, k, alpha, b.transposed(), a.transposed(), beta, c.transposed(), threads);
    return;
  }
  simd::dispatch([&](auto arch) {
    using Arch = decltype(arch);
    if (m * n * k <= gemm_small_volume && b.col_stride == 1 && c.col_stride == 1) {
      tile_gemm<Arch>(m, n, k, alpha, a.data, a.row_stride, a.col_stride, b.data, b.row_stride,
                      beta, c.data, c.row_stride);
    } else {
      packed_gemm<T, Arch>(m, n, k, alpha, a.data, a.row_stride, a.col_stride, b.data, b.row_stride,
                           b.col_stride, beta, c.data, c.row_stride, c.col_stride, threads);
    }
  });
}

inline void check_gemm_extents(const char* where, index_t m, index_t n, index_t k) {
  if (m < 0 || n < 0 || k < 0)
    throw shape_error(std::string("attnkit: ") + where +
                      ": extents must be >= 0, got m = " + std::to_string(m) +
                      ", n = " + std::to_string(n) + ", k = " + std::to_string(k));
}

}  // namespace detail

/// C[m, n] = alpha · Σ_k A[m, k] B[k, n] + beta · C[m, n]. When beta == 0, C is not read (it may
/// hold NaN). Strides may be anything except that C must not alias A or B. Uses OpenMP threads
/// for large products (serially inside a parallel region); results do not depend on the thread
/// count. Throws shape_error for negative extents.
/// \tparam T float or double
template <class T>
void gemm(index_t m, index_t n, index_t k, T alpha, MatrixRef<const T> a, MatrixRef<const T> b,
          T beta, MatrixRef<T> c) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit: T of kernel::gemm must be float or double");
  detail::check_gemm_extents("gemm", m, n, k);
  detail::gemm_run<T>(m, n, k, alpha, a, b, beta, c, detail::gemm_threads(m, n, k));
}

/// gemm on exactly `threads` threads (clamped to >= 1; 1 inside a parallel region): for
/// benchmarks and tests that compare thread counts. Same results as gemm.
/// \tparam T float or double
template <class T>
void gemm_with_threads(index_t m, index_t n, index_t k, T alpha, MatrixRef<const T> a,
                       MatrixRef<const T> b, T beta, MatrixRef<T> c, int threads) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit: T of kernel::gemm_with_threads must be float or double");
  detail::check_gemm_extents("gemm_with_threads", m, n, k);
  detail::gemm_run<T>(m, n, k, alpha, a, b, beta, c, in_parallel() ? 1 : std::max(1, threads));
}

/// `batch` independent GEMMs; operand g starts at data + g * batch_stride of each operand.
/// Small matrices, or a batch that divides evenly among the threads, run the batch in parallel
/// (one GEMM per thread); otherwise the GEMMs run one after the other, each on all threads.
/// Results do not depend on the thread count.
/// \tparam T float or double
template <class T>
void gemm_batched(index_t batch, index_t m, index_t n, index_t k, T alpha, MatrixRef<const T> a,
                  index_t a_batch_stride, MatrixRef<const T> b, index_t b_batch_stride, T beta,
                  MatrixRef<T> c, index_t c_batch_stride) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit: T of kernel::gemm_batched must be float or double");
  detail::check_gemm_extents("gemm_batched", m, n, k);
  if (batch < 0)
    throw shape_error("attnkit: gemm_batched: batch must be >= 0, got " + std::to_string(batch));
  auto one = [&](index_t g, int threads) {
    MatrixRef<const T> ag{a.data + g * a_batch_stride, a.row_stride, a.col_stride};
    MatrixRef<const T> bg{b.data + g * b_batch_stride, b.row_stride, b.col_stride};
    MatrixRef<T> cg{c.data + g * c_batch_stride, c.row_stride, c.col_stride};
    detail::gemm_run<T>(m, n, k, alpha, ag, bg, beta, cg, threads);
  };
  // One GEMM per thread when the matrices are too small to split well or the batch divides
  // evenly (one parallel region, no slicing); otherwise one GEMM after the other on all threads.
  const int avail = worker_threads();
  const int threads = detail::gemm_threads(m, n, k);
  if (batch > 1 && avail > 1 && (threads < avail || batch % avail == 0 || batch >= 4 * avail)) {
    parallel_for(static_cast<long>(batch), [&](long g) { one(static_cast<index_t>(g), 1); });
  } else {
    for (index_t g = 0; g < batch; ++g) one(g, threads);
  }
}

}  // namespace attnkit::kernel
