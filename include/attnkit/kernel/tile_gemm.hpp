// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The small-tile GEMM kernel::gemm uses for tiny products (the fused attention kernel has its
// own micro-kernels): no packing, no threads, no allocation (except tile_gemm_nt's per-thread
// transpose buffer).
//
//   tile_gemm<Arch>(m, n, k, alpha, a, rs_a, cs_a, b, ldb, beta, c, ldc)
//       C[m, n] = alpha · A[m, k] · B[k, n] + beta · C[m, n]
//       A strided (element (i, p) at a[i·rs_a + p·cs_a]); B and C row-major with contiguous
//       rows (B(p, j) = b[p·ldb + j], C(i, j) = c[i·ldc + j]). beta == 0: C is not read.
//       Use it for O += P · V (P [Bq, Bk], V [Bk, D] as rows) and, with B = Kᵀ held as rows
//       [D, Bk], for S = Q · Kᵀ.
//   tile_gemm_nt<Arch>(m, n, k, alpha, a, lda, bt, ldbt, beta, c, ldc)
//       the same with B given transposed as rows: B(p, j) = bt[j·ldbt + p] (S = Q · Kᵀ from K
//       tiles [Bk, D] directly); transposes bt into a per-thread buffer, then tile_gemm.
//
// Register tile: MR rows × NV vectors, broadcast A(i, p), FMA into NV row vectors of B; the
// last n mod width columns use masked (partial) loads/stores, never touching past column n.
// Sums run over p = 0..k-1 in order for every element (deterministic).
// Templated only on (T, Arch) at the entry and (T, Arch, MR, NV, partial) inside, so every
// attention policy shares one instantiation.
#pragma once

#include <algorithm>

#include "attnkit/core/shape.hpp"
#include "attnkit/kernel/packed_gemm.hpp"
#include "attnkit/simd/batch.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::kernel {

/// Register tile of tile_gemm for (T, Arch): mr rows × nv vectors.
/// \tparam T float or double
/// \tparam Arch an xsimd architecture tag
template <class T, class Arch>
struct TileGemmBlocking {
  static constexpr int mr = simd::has_avx512<Arch> ? 6 : 4;
  static constexpr int nv = simd::has_avx512<Arch> ? 4 : (simd::has_avx<Arch> ? 3 : 2);
};

namespace detail {

/// One MR × (NV vectors) block of tile_gemm; with Partial the last vector holds only
/// `last` (< width) columns.
template <class T, class Arch, int MR, int NV, bool Partial>
inline void tile_block(index_t k, T alpha, const T* a, index_t rs_a, index_t cs_a, const T* b,
                       index_t ldb, T beta, T* c, index_t ldc, index_t last) noexcept {
  using B = simd::batch<T, Arch>;
  constexpr int w = static_cast<int>(B::size);
  B acc[MR][NV];
  static_for<MR>([&](auto i) { static_for<NV>([&](auto v) { acc[i][v] = B(T(0)); }); });
  for (index_t p = 0; p < k; ++p) {
    const T* bp = b + p * ldb;
    B bv[NV];
    static_for<NV>([&](auto v) {
      if constexpr (Partial && v == NV - 1) {
        bv[v] = simd::load_partial<Arch>(bp + v * w, last);
      } else {
        bv[v] = B::load_unaligned(bp + v * w);
      }
    });
    static_for<MR>([&](auto i) {
      const B ai(a[i * rs_a + p * cs_a]);
      static_for<NV>([&](auto v) { acc[i][v] = xsimd::fma(ai, bv[v], acc[i][v]); });
    });
  }
  const B av(alpha);
  const B bev(beta);
  static_for<MR>([&](auto i) {
    static_for<NV>([&](auto v) {
      T* cp = c + i * ldc + v * w;
      constexpr bool partial = Partial && v == NV - 1;
      B out = acc[i][v] * av;
      if (beta != T(0)) {
        const B old = partial ? simd::load_partial<Arch>(cp, last) : B::load_unaligned(cp);
        out = xsimd::fma(bev, old, out);
      }
      if constexpr (partial) {
        simd::store_partial<Arch>(cp, out, last);
      } else {
        out.store_unaligned(cp);
      }
    });
  });
}

/// Rows [0, MR) of tile_gemm over all n columns: full NV-vector chunks, then the remainder.
template <class T, class Arch, int MR, int NV>
inline void tile_rows(index_t n, index_t k, T alpha, const T* a, index_t rs_a, index_t cs_a,
                      const T* b, index_t ldb, T beta, T* c, index_t ldc) noexcept {
  constexpr index_t w = simd::width<T, Arch>;
  index_t j = 0;
  for (; j + NV * w <= n; j += NV * w)
    tile_block<T, Arch, MR, NV, false>(k, alpha, a, rs_a, cs_a, b + j, ldb, beta, c + j, ldc, 0);
  const index_t rem = n - j;
  if (rem == 0) return;
  const index_t full = rem / w;
  const index_t last = rem % w;
  // rem < NV·w: dispatch on the number of vectors (full + partial) it needs.
  auto run = [&](auto nvec, auto partial) {
    tile_block<T, Arch, MR, decltype(nvec)::value, decltype(partial)::value>(
        k, alpha, a, rs_a, cs_a, b + j, ldb, beta, c + j, ldc, last);
  };
  static_for<NV>([&](auto v) {  // v + 1 vectors
    if constexpr (v + 1 <= NV) {
      if (last == 0 && full == v + 1) run(std::integral_constant<int, v + 1>{}, std::false_type{});
      if (last != 0 && full == v) run(std::integral_constant<int, v + 1>{}, std::true_type{});
    }
  });
}

}  // namespace detail

/// C[m, n] = alpha · A[m, k] · B[k, n] + beta · C[m, n] on one thread, without packing. A is
/// strided; B and C have contiguous rows (leading dimensions ldb, ldc). beta == 0: C not read.
/// Intended for the tiles of fused kernels (m, n, k up to a few hundred).
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <class Arch, class T>
inline void tile_gemm(index_t m, index_t n, index_t k, T alpha, const T* a, index_t rs_a,
                      index_t cs_a, const T* b, index_t ldb, T beta, T* c, index_t ldc) noexcept {
  using Blk = TileGemmBlocking<T, Arch>;
  if (m <= 0 || n <= 0) return;
  index_t i = 0;
  for (; i + Blk::mr <= m; i += Blk::mr)
    detail::tile_rows<T, Arch, Blk::mr, Blk::nv>(n, k, alpha, a + i * rs_a, rs_a, cs_a, b, ldb,
                                                 beta, c + i * ldc, ldc);
  // The last m mod mr rows in blocks of 4, 2 and 1 (each B vector loaded once per block).
  if constexpr (Blk::mr > 4) {
    if (i + 4 <= m) {
      detail::tile_rows<T, Arch, 4, Blk::nv>(n, k, alpha, a + i * rs_a, rs_a, cs_a, b, ldb, beta,
                                             c + i * ldc, ldc);
      i += 4;
    }
  }
  if (i + 2 <= m) {
    detail::tile_rows<T, Arch, 2, Blk::nv>(n, k, alpha, a + i * rs_a, rs_a, cs_a, b, ldb, beta,
                                           c + i * ldc, ldc);
    i += 2;
  }
  for (; i < m; ++i)
    detail::tile_rows<T, Arch, 1, Blk::nv>(n, k, alpha, a + i * rs_a, rs_a, cs_a, b, ldb, beta,
                                           c + i * ldc, ldc);
}

/// C[m, n] = alpha · A[m, k] · Bᵀ + beta · C with bt [n, k] row-major (bt[j·ldbt + p] = B(p, j)),
/// A [m, k] row-major (lda), C row-major (ldc): S = Q · Kᵀ straight from a K tile. Transposes
/// bt into a per-thread buffer, then runs tile_gemm. beta == 0: C not read.
/// \tparam Arch an xsimd architecture tag
/// \tparam T float or double
template <class Arch, class T>
inline void tile_gemm_nt(index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
                         const T* bt, index_t ldbt, T beta, T* c, index_t ldc) {
  if (m <= 0 || n <= 0) return;
  T* b = detail::scratch<T>(2, static_cast<std::size_t>(std::max<index_t>(1, k * n)));
  // Contiguous writes, strided reads: measured 4x faster than the other loop order.
  for (index_t p = 0; p < k; ++p)
    for (index_t j = 0; j < n; ++j) b[p * n + j] = bt[j * ldbt + p];
  tile_gemm<Arch>(m, n, k, alpha, a, lda, index_t{1}, b, n, beta, c, ldc);
}

}  // namespace attnkit::kernel

ATTNKIT_SIMD_WARNINGS_POP
