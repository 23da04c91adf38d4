// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The small-tile GEMM forms used inside fused kernels (tile_gemm, tile_gemm_nt), every
// architecture: lengths around the register tile and the SIMD width, masked tails that never
// write past column n, beta == 0 with NaN in C.
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/kernel/tile_gemm.hpp"

#include "gemm_test_util.hpp"

using attnkit::index_t;
using attnkit::kernel::MatrixRef;
using attnkit_test::check_gemm;
using attnkit_test::for_each_arch;

TEMPLATE_TEST_CASE("tile_gemm: register-tile and SIMD-width edges, every architecture",
                   "[kernel][gemm][tile]", float, double) {
  using T = TestType;
  for_each_arch([](auto arch) {
    using A = decltype(arch);
    using Blk = attnkit::kernel::TileGemmBlocking<T, A>;
    constexpr index_t w = attnkit::simd::width<T, A>;
    const index_t mr = Blk::mr, nrow = Blk::nv * w;
    // B and C row-major (layout 0); A row-major or transposed.
    auto run = [](index_t m, index_t n, index_t k, T alpha, MatrixRef<const T> a,
                  MatrixRef<const T> b, T beta, MatrixRef<T> c) {
      REQUIRE(b.col_stride == 1);
      REQUIRE(c.col_stride == 1);
      attnkit::kernel::tile_gemm<A>(m, n, k, alpha, a.data, a.row_stride, a.col_stride, b.data,
                                    b.row_stride, beta, c.data, c.row_stride);
    };
    auto run_nt = [](index_t m, index_t n, index_t k, T alpha, MatrixRef<const T> a,
                     MatrixRef<const T> b, T beta, MatrixRef<T> c) {
      // b is column-major here: bt = Bᵀ has rows of length k at stride b.col_stride.
      REQUIRE(b.row_stride == 1);
      REQUIRE(a.col_stride == 1);
      attnkit::kernel::tile_gemm_nt<A>(m, n, k, alpha, a.data, a.row_stride, b.data, b.col_stride,
                                       beta, c.data, c.row_stride);
    };
    int idx = 0;
    for (index_t m :
         {index_t{1}, index_t{2}, index_t{3}, mr - 1, mr, mr + 1, mr + 2, mr + 3, 2 * mr + 1})
      for (index_t n :
           {index_t{1}, w - 1, w, w + 1, nrow - 1, nrow, nrow + 1, 2 * nrow + 3, index_t{100}})
        for (index_t k : {index_t{1}, index_t{7}, index_t{64}}) {
          if (n < 1 || m < 1) continue;
          const auto [alpha, beta] = attnkit_test::alpha_beta<T>(idx);
          check_gemm<T>(m, n, k, alpha, beta, idx % 2, 0, 0, run, static_cast<unsigned>(idx));
          check_gemm<T>(m, n, k, alpha, beta, 0, 1, 0, run_nt, static_cast<unsigned>(idx + 7));
          ++idx;
        }
  });
}
