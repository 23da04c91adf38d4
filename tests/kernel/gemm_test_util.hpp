// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Shared machinery of the GEMM tests: operands in row-major, column-major (transposed) or
// doubly strided storage with NaN in the gaps, a double-precision check with a k-scaled
// tolerance, and the test bodies each type's TU instantiates.
#pragma once

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/kernel/gemm.hpp"
#include "attnkit/kernel/packed_gemm.hpp"

#include "reference/gemm_reference.hpp"
#include "simd/arch_util.hpp"

namespace attnkit_test {

using attnkit::index_t;
using attnkit::kernel::MatrixRef;

/// Storage of an r × c operand: 0 row-major, 1 column-major (a transposed view), 2 both
/// strides non-unit. Gaps (padding, skipped elements) hold `gap`.
template <class T>
struct Operand {
  std::vector<T> store;
  index_t rs = 0, cs = 0;
  index_t rows = 0, cols = 0;

  Operand(index_t r, index_t c, int layout, std::mt19937& rng, T gap) : rows(r), cols(c) {
    index_t size = 0;
    if (layout == 0) {
      rs = c + 3;
      cs = 1;
      size = r * rs + 1;
    } else if (layout == 1) {
      rs = 1;
      cs = r + 2;
      size = c * cs + 1;
    } else {
      cs = 2;
      rs = 2 * c + 5;
      size = r * rs + 1;
    }
    store.assign(static_cast<std::size_t>(size), gap);
    std::uniform_real_distribution<double> d(-1.0, 1.0);
    for (index_t i = 0; i < r; ++i)
      for (index_t j = 0; j < c; ++j) at(i, j) = static_cast<T>(d(rng));
  }
  T& at(index_t i, index_t j) { return store[static_cast<std::size_t>(i * rs + j * cs)]; }
  MatrixRef<const T> cref() const { return {store.data(), rs, cs}; }
  MatrixRef<T> ref() { return {store.data(), rs, cs}; }
};

/// One GEMM case: builds A [m, k], B [k, n], C [m, n] in the given layouts, runs
/// run(m, n, k, alpha, A, B, beta, C), and checks C against the long double reference with
/// tolerance eps · (k/4 + 4) · Σ|terms| per element, C's gaps untouched. beta == 0 puts NaN in C.
template <class T, class Run>
void check_gemm(index_t m, index_t n, index_t k, T alpha, T beta, int la, int lb, int lc, Run run,
                unsigned seed) {
  INFO("m = " << m << ", n = " << n << ", k = " << k << ", alpha = " << alpha << ", beta = " << beta
              << ", layouts A/B/C = " << la << lb << lc);
  std::mt19937 rng(seed);
  const T qnan = std::numeric_limits<T>::quiet_NaN();
  Operand<T> a(m, k, la, rng, qnan);
  Operand<T> b(k, n, lb, rng, qnan);
  Operand<T> c(m, n, lc, rng, T(777));
  if (beta == T(0))
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) c.at(i, j) = qnan;
  const auto ref = gemm_reference<T>(m, n, k, alpha, a.store.data(), a.rs, a.cs, b.store.data(),
                                     b.rs, b.cs, beta, c.store.data(), c.rs, c.cs);
  std::vector<bool> inside(c.store.size(), false);
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) inside[static_cast<std::size_t>(i * c.rs + j * c.cs)] = true;
  run(m, n, k, alpha, a.cref(), b.cref(), beta, c.ref());
  const long double eps = std::numeric_limits<T>::epsilon();
  int bad = 0;
  for (index_t i = 0; i < m && bad < 5; ++i)
    for (index_t j = 0; j < n && bad < 5; ++j) {
      const std::size_t r = static_cast<std::size_t>(i * n + j);
      const long double got = c.at(i, j);
      const long double tol = eps * (static_cast<long double>(k) / 4 + 4) * ref.magnitude[r];
      const bool ok = std::fabs(got - ref.value[r]) <= tol;
      if (!ok) {
        ++bad;
        INFO("C(" << i << ", " << j << ") = " << double(got) << ", reference "
                  << double(ref.value[r]) << ", tolerance " << double(tol));
        CHECK(ok);
      }
    }
  CHECK(bad == 0);
  for (std::size_t s = 0; s < c.store.size(); ++s)
    if (!inside[s] && c.store[s] != T(777)) {
      INFO("C storage element " << s << " outside the matrix was written");
      CHECK(false);
      break;
    }
}

/// The (alpha, beta) pairs the shape loops rotate through; beta == 0 means NaN in C.
template <class T>
std::pair<T, T> alpha_beta(int i) {
  switch (i % 4) {
    case 0:
      return {T(1), T(0)};
    case 1:
      return {T(-0.5), T(0.75)};
    case 2:
      return {T(2), T(1)};
    default:
      return {T(1.5), T(0)};
  }
}

/// Awkward shapes for architecture A: 1, primes, just below/at/above the micro-tile (MR, NR)
/// and the cache blocks (KC, MC, NC).
template <class T, class A>
std::vector<std::array<index_t, 3>> awkward_shapes() {
  using Blk = attnkit::kernel::GemmBlocking<T, A>;
  const index_t mr = Blk::mr, nr = Blk::nr, kc = Blk::kc, mc = Blk::mc, nc = Blk::nc;
  return {{1, 1, 1},
          {1, 7, 3},
          {5, 1, 9},
          {2, 3, 1},
          {mr - 1, nr - 1, 7},
          {mr, nr, kc},
          {mr + 1, nr + 1, kc + 1},
          {2 * mr + 3, 2 * nr + 3, kc - 1},
          {13, 31, 61},
          {97, 53, 37},
          {mc - 1, 17, 29},
          {mc + 1, nr + 5, 2 * kc + 3},
          {3, nc + 1, 5},
          {7, nc - 1, 3},
          {mr + 1, 1, 2 * kc + 1}};
}

/// packed_gemm<T, A> on one thread over the awkward shapes and all 8 row/column-major combos of
/// A, B, C, plus doubly strided operands, for every architecture.
template <class T>
void test_packed_all_archs() {
  const int ran = for_each_arch([](auto arch) {
    using A = decltype(arch);
    auto run = [](index_t m, index_t n, index_t k, T alpha, MatrixRef<const T> a,
                  MatrixRef<const T> b, T beta, MatrixRef<T> c) {
      attnkit::kernel::packed_gemm<T, A>(m, n, k, alpha, a.data, a.row_stride, a.col_stride, b.data,
                                         b.row_stride, b.col_stride, beta, c.data, c.row_stride,
                                         c.col_stride, 1);
    };
    int idx = 0;
    for (const auto& s : awkward_shapes<T, A>()) {
      for (int combo = 0; combo < 9; ++combo) {
        const int la = combo == 8 ? 2 : combo & 1;
        const int lb = combo == 8 ? 2 : (combo >> 1) & 1;
        const int lc = combo == 8 ? 2 : (combo >> 2) & 1;
        const auto [alpha, beta] = alpha_beta<T>(idx);
        check_gemm<T>(s[0], s[1], s[2], alpha, beta, la, lb, lc, run, static_cast<unsigned>(idx));
        ++idx;
      }
    }
  });
  CHECK(ran >= 1);
}

/// The public gemm (dispatching, small-product path, C column-major swap, k = 0, alpha = 0,
/// empty extents) and gemm_batched.
template <class T>
void test_public_gemm() {
  auto run = [](index_t m, index_t n, index_t k, T alpha, MatrixRef<const T> a,
                MatrixRef<const T> b, T beta,
                MatrixRef<T> c) { attnkit::kernel::gemm<T>(m, n, k, alpha, a, b, beta, c); };
  const std::vector<std::array<index_t, 3>> shapes = {
      {1, 1, 1},    {3, 5, 7},      {8, 8, 8},    {17, 16, 15}, {24, 24, 24}, {25, 24, 24},
      {64, 65, 66}, {131, 67, 200}, {1, 300, 40}, {300, 1, 40}, {5, 6, 0}};
  int idx = 0;
  for (const auto& s : shapes)
    for (int combo = 0; combo < 9; ++combo) {
      const int la = combo == 8 ? 2 : combo & 1;
      const int lb = combo == 8 ? 2 : (combo >> 1) & 1;
      const int lc = combo == 8 ? 2 : (combo >> 2) & 1;
      const auto [alpha, beta] = alpha_beta<T>(idx);
      check_gemm<T>(s[0], s[1], s[2], alpha, beta, la, lb, lc, run,
                    static_cast<unsigned>(idx + 1000));
      ++idx;
    }
  // alpha == 0: A and B are not read (NaN there does not leak), C = beta · C.
  {
    std::vector<T> a(12, std::numeric_limits<T>::quiet_NaN()),
        b(12, std::numeric_limits<T>::quiet_NaN());
    std::vector<T> c = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    attnkit::kernel::gemm<T>(3, 3, 4, T(0), {a.data(), 4, 1}, {b.data(), 3, 1}, T(2),
                             {c.data(), 3, 1});
    for (int i = 0; i < 9; ++i) CHECK(c[static_cast<std::size_t>(i)] == T(2 * (i + 1)));
    attnkit::kernel::gemm<T>(3, 3, 4, T(0), {a.data(), 4, 1}, {b.data(), 3, 1}, T(0),
                             {c.data(), 3, 1});
    for (int i = 0; i < 9; ++i) CHECK(c[static_cast<std::size_t>(i)] == T(0));
  }
  // Empty extents do nothing; negative extents throw.
  std::vector<T> c = {T(5)};
  attnkit::kernel::gemm<T>(0, 1, 1, T(1), {c.data(), 1, 1}, {c.data(), 1, 1}, T(0),
                           {c.data(), 1, 1});
  CHECK(c[0] == T(5));
  CHECK_THROWS_AS(attnkit::kernel::gemm<T>(-1, 1, 1, T(1), {c.data(), 1, 1}, {c.data(), 1, 1}, T(0),
                                           {c.data(), 1, 1}),
                  attnkit::shape_error);

  // gemm_batched: small matrices (parallel batch) and larger ones (sequential batch of 5, each
  // on all threads when OpenMP has 2+), against
  // per-matrix gemm bit for bit.
  for (const auto& s : std::vector<std::array<index_t, 3>>{{7, 9, 5}, {130, 120, 100}}) {
    const index_t m = s[0], n = s[1], k = s[2], batch = 5;
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> d(-1, 1);
    std::vector<T> a(static_cast<std::size_t>(batch * m * k)),
        b(static_cast<std::size_t>(batch * k * n));
    for (auto& x : a) x = static_cast<T>(d(rng));
    for (auto& x : b) x = static_cast<T>(d(rng));
    std::vector<T> c1(static_cast<std::size_t>(batch * m * n), T(1)), c2(c1);
    attnkit::kernel::gemm_batched<T>(batch, m, n, k, T(1), {a.data(), k, 1}, m * k,
                                     {b.data(), 1, k}, k * n, T(0.5), {c1.data(), n, 1}, m * n);
    for (index_t g = 0; g < batch; ++g)
      attnkit::kernel::gemm<T>(m, n, k, T(1), {a.data() + g * m * k, k, 1},
                               {b.data() + g * k * n, 1, k}, T(0.5), {c2.data() + g * m * n, n, 1});
    CHECK(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(T)) == 0);
    // And one matrix of the batch against the reference.
    check_gemm<T>(
        m, n, k, T(1), T(0.5), 0, 1, 0,
        [](index_t mm, index_t nn, index_t kk, T al, MatrixRef<const T> aa, MatrixRef<const T> bb,
           T be, MatrixRef<T> cc) {
          attnkit::kernel::gemm_batched<T>(1, mm, nn, kk, al, aa, 0, bb, 0, be, cc, 0);
        },
        99);
  }
}

/// 1 vs 2 threads give bit-identical C, for every architecture (packed_gemm) and for gemm.
template <class T>
void test_threads_bit_identical() {
  const std::vector<std::array<index_t, 3>> shapes = {
      {300, 250, 600}, {37, 2100, 20}, {500, 40, 300}, {29, 31, 700}, {1000, 3, 9}};
  for_each_arch([&](auto arch) {
    using A = decltype(arch);
    for (const auto& s : shapes) {
      const index_t m = s[0], n = s[1], k = s[2];
      INFO("m = " << m << ", n = " << n << ", k = " << k);
      std::mt19937 rng(static_cast<unsigned>(m + n + k));
      Operand<T> a(m, k, 0, rng, T(0));
      Operand<T> b(k, n, 1, rng, T(0));
      Operand<T> c1(m, n, 0, rng, T(0));
      Operand<T> c2 = c1;
      Operand<T> c3 = c1;
      auto run = [&](Operand<T>& c, int threads) {
        attnkit::kernel::packed_gemm<T, A>(m, n, k, T(0.75), a.store.data(), a.rs, a.cs,
                                           b.store.data(), b.rs, b.cs, T(0.5), c.store.data(), c.rs,
                                           c.cs, threads);
      };
      run(c1, 1);
      run(c2, 2);
      run(c3, 3);
      CHECK(c1.store == c2.store);
      CHECK(c1.store == c3.store);
    }
  });
  const index_t m = 257, n = 263, k = 300;
  std::mt19937 rng(3);
  Operand<T> a(m, k, 1, rng, T(0));
  Operand<T> b(k, n, 0, rng, T(0));
  Operand<T> c1(m, n, 0, rng, T(0));
  Operand<T> c2 = c1;
  attnkit::kernel::gemm_with_threads<T>(m, n, k, T(1), a.cref(), b.cref(), T(0), c1.ref(), 1);
  attnkit::kernel::gemm_with_threads<T>(m, n, k, T(1), a.cref(), b.cref(), T(0), c2.ref(), 2);
  CHECK(c1.store == c2.store);
}

}  // namespace attnkit_test
