// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// simd batch helpers and row kernels: partial loads/stores never touch past n, reductions, and
// every row kernel against a double loop at awkward lengths and misalignments, per architecture.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/simd/batch.hpp"
#include "attnkit/simd/rows.hpp"

#include "arch_util.hpp"

namespace simd = attnkit::simd;
using attnkit::index_t;
using attnkit_test::for_each_arch;

namespace {

// Lengths 0, 1, w-1, w, w+1, 2w+3, primes, and a long one.
std::vector<index_t> awkward_lengths(index_t w) {
  return {0, 1, 2, 3, w - 1, w, w + 1, 2 * w - 1, 2 * w, 2 * w + 3, 7, 13, 31, 61, 97, 1000};
}

template <class T>
std::vector<T> random_vector(std::size_t n, T lo, T hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<T> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace

TEMPLATE_TEST_CASE("simd load_partial/store_partial touch only n elements", "[simd][tail]", float,
                   double) {
  using T = TestType;
  for_each_arch([](auto a) {
    using A = decltype(a);
    constexpr index_t w = simd::width<T, A>;
    for (index_t n = 0; n <= w; ++n) {
      INFO("n = " << n);
      std::vector<T> src(w + 2);
      for (index_t i = 0; i < w + 2; ++i) src[i] = T(i + 1);
      const auto b = simd::load_partial<A>(src.data() + 1, n, T(-7));
      alignas(64) T lanes[simd::batch<T, A>::size];
      b.store_aligned(lanes);
      for (index_t i = 0; i < w; ++i) CHECK(lanes[i] == (i < n ? T(i + 2) : T(-7)));
      std::vector<T> dst(w + 2, T(99));
      simd::store_partial<A>(dst.data() + 1, b, n);
      CHECK(dst[0] == T(99));
      for (index_t i = 0; i < w; ++i) CHECK(dst[i + 1] == (i < n ? T(i + 2) : T(99)));
      CHECK(dst[w + 1] == T(99));
    }
  });
}

TEMPLATE_TEST_CASE("simd reduce_add and reduce_max", "[simd][reduce]", float, double) {
  using T = TestType;
  for_each_arch([](auto a) {
    using A = decltype(a);
    constexpr index_t w = simd::width<T, A>;
    for (int trial = 0; trial < 20; ++trial) {
      const auto v = random_vector<T>(static_cast<std::size_t>(w), T(-100), T(100), 100 + trial);
      const auto b = simd::loadu<A>(v.data());
      double sum = 0;
      for (T x : v) sum += x;
      CHECK(simd::reduce_add(b) == Approx(sum).epsilon(1e-5).margin(1e-4));
      CHECK(simd::reduce_max(b) == *std::max_element(v.begin(), v.end()));
      // The max in every lane position.
      for (index_t pos = 0; pos < w; ++pos) {
        std::vector<T> u(static_cast<std::size_t>(w), T(-5));
        u[static_cast<std::size_t>(pos)] = T(3);
        CHECK(simd::reduce_max(simd::loadu<A>(u.data())) == T(3));
      }
    }
  });
}

TEMPLATE_TEST_CASE("simd row kernels match a double loop at awkward lengths", "[simd][rows]", float,
                   double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-14;
  for_each_arch([&](auto a) {
    using A = decltype(a);
    constexpr index_t w = simd::width<T, A>;
    for (index_t n : awkward_lengths(w)) {
      for (index_t offset : {0, 1, 3}) {  // misaligned starts
        INFO("n = " << n << ", offset = " << offset);
        const std::size_t total = static_cast<std::size_t>(n + offset + 1);
        const auto x0 = random_vector<T>(total, T(-3), T(3), static_cast<unsigned>(n * 7 + offset));
        const auto y0 =
            random_vector<T>(total, T(-3), T(3), static_cast<unsigned>(n * 11 + offset));
        const T sentinel = T(12345);
        auto check_map = [&](auto kernel, auto ref) {
          std::vector<T> x(x0);
          x[static_cast<std::size_t>(n + offset)] = sentinel;
          kernel(x.data() + offset, n);
          for (index_t i = 0; i < n; ++i)
            CHECK(double(x[i + offset]) ==
                  Approx(ref(double(x0[i + offset]))).epsilon(tol).margin(tol));
          CHECK(x[static_cast<std::size_t>(n + offset)] == sentinel);
          for (index_t i = 0; i < offset; ++i) CHECK(x[i] == x0[i]);
        };
        check_map([](T* p, index_t m) { simd::exp_inplace<A>(p, m); },
                  [](double v) { return std::exp(v); });
        check_map([](T* p, index_t m) { simd::sigmoid_inplace<A>(p, m); },
                  [](double v) { return 1 / (1 + std::exp(-v)); });
        check_map([](T* p, index_t m) { simd::tanh_inplace<A>(p, m); },
                  [](double v) { return std::tanh(v); });
        check_map([](T* p, index_t m) { simd::scale_inplace<A>(p, T(-1.5), m); },
                  [](double v) { return -1.5 * v; });

        // scale_add: y += a x
        std::vector<T> y(y0);
        y[static_cast<std::size_t>(n + offset)] = sentinel;
        simd::scale_add<A>(y.data() + offset, T(0.25), x0.data() + offset, n);
        for (index_t i = 0; i < n; ++i)
          CHECK(double(y[i + offset]) ==
                Approx(double(y0[i + offset]) + 0.25 * double(x0[i + offset]))
                    .epsilon(tol)
                    .margin(tol));
        CHECK(y[static_cast<std::size_t>(n + offset)] == sentinel);

        // dot, row_sum, row_max
        double d = 0, s = 0, mx = -std::numeric_limits<double>::infinity();
        for (index_t i = 0; i < n; ++i) {
          d += double(x0[i + offset]) * double(y0[i + offset]);
          s += double(x0[i + offset]);
          mx = std::max(mx, double(x0[i + offset]));
        }
        const double sum_tol = tol * 10 * double(n + 1);
        CHECK(double(simd::dot<A>(x0.data() + offset, y0.data() + offset, n)) ==
              Approx(d).margin(sum_tol));
        CHECK(double(simd::row_sum<A>(x0.data() + offset, n)) == Approx(s).margin(sum_tol));
        CHECK(double(simd::row_max<A>(x0.data() + offset, n)) == mx);

        // exp_shift_sum: softmax numerators and their sum
        std::vector<T> e(x0);
        const T shift = n > 0 ? T(mx) : T(0);
        const T sum = simd::exp_shift_sum<A>(e.data() + offset, shift, n);
        double ref_sum = 0;
        for (index_t i = 0; i < n; ++i) {
          const double r = std::exp(double(x0[i + offset]) - double(shift));
          ref_sum += r;
          CHECK(double(e[i + offset]) == Approx(r).epsilon(tol).margin(tol));
        }
        CHECK(double(sum) == Approx(ref_sum).margin(sum_tol));
        CHECK(e[static_cast<std::size_t>(n + offset)] == x0[static_cast<std::size_t>(n + offset)]);
      }
    }
  });
}

TEST_CASE("simd dispatching row kernels agree with the best architecture", "[simd][dispatch]") {
  auto x = random_vector<float>(77, -5.0f, 5.0f, 5);
  auto y = x;
  simd::exp_inplace(x.data(), 77);
  simd::dispatch([&](auto a) { simd::exp_inplace<decltype(a)>(y.data(), 77); });
  CHECK(x == y);
  const auto v = random_vector<double>(33, -1.0, 1.0, 6);
  CHECK(simd::dot(v.data(), v.data(), 33) ==
        simd::dispatch([&](auto a) { return simd::dot<decltype(a)>(v.data(), v.data(), 33); }));
  CHECK(simd::row_max(v.data(), 0) == -std::numeric_limits<double>::infinity());
}
