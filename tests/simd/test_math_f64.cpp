// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// fp64 exp/log/sigmoid/tanh: accuracy over the whole double range (random bit patterns plus
// dense ranges) against long double references, and special values, for every architecture.
#include <cmath>
#include <limits>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/simd/rows.hpp"

#include "math_accuracy.hpp"

namespace simd = attnkit::simd;
using attnkit_test::for_each_arch;
using attnkit_test::full_range_samples;
using attnkit_test::max_ulp_error;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double qnan = std::numeric_limits<double>::quiet_NaN();

template <class Kernel>
std::vector<double> run(Kernel kernel, std::vector<double> xs) {
  kernel(xs.data(), static_cast<attnkit::index_t>(xs.size()));
  return xs;
}

}  // namespace

TEST_CASE("simd exp fp64: accuracy over the double range and specials", "[simd][exp]") {
  const auto xs = full_range_samples<double>(-750.0, 712.0, 11);
  for_each_arch([&](auto a) {
    using A = decltype(a);
    auto kernel = [](double* p, attnkit::index_t n) { simd::exp_inplace<A>(p, n); };
    double worst;
    const long double err = max_ulp_error(
        xs, kernel, [](double x) { return std::exp(static_cast<long double>(x)); }, &worst);
    INFO("max ulp error " << double(err) << " at x = " << worst);
    CHECK(err <= 1.5L);
    const auto r = run(kernel, {-inf, inf, qnan, -1e300, -800.0, -740.0, 1e300, 710.0, 0.0});
    CHECK(r[0] == 0.0);
    CHECK(r[1] == inf);
    CHECK(std::isnan(r[2]));
    CHECK(r[3] == 0.0);
    CHECK(r[4] == 0.0);
    CHECK(r[5] > 0.0);
    CHECK(r[5] < std::numeric_limits<double>::min());
    CHECK(r[6] == inf);
    CHECK(r[7] == inf);
    CHECK(r[8] == 1.0);
  });
}

TEST_CASE("simd log fp64: accuracy over the double range and specials", "[simd][log]") {
  const auto xs = full_range_samples<double>(0.0, 4.0, 12);
  for_each_arch([&](auto a) {
    using A = decltype(a);
    auto kernel = [](double* p, attnkit::index_t n) { simd::log_inplace<A>(p, n); };
    double worst;
    const long double err = max_ulp_error(
        xs, kernel, [](double x) { return std::log(static_cast<long double>(x)); }, &worst);
    INFO("max ulp error " << double(err) << " at x = " << worst);
    CHECK(err <= 1.5L);
    const auto r = run(kernel, {0.0, -0.0, -1.0, inf, -inf, qnan, 1.0});
    CHECK(r[0] == -inf);
    CHECK(r[1] == -inf);
    CHECK(std::isnan(r[2]));
    CHECK(r[3] == inf);
    CHECK(std::isnan(r[4]));
    CHECK(std::isnan(r[5]));
    CHECK(r[6] == 0.0);
  });
}

TEST_CASE("simd sigmoid fp64: accuracy over the double range, no overflow", "[simd][sigmoid]") {
  const auto xs = full_range_samples<double>(-750.0, 40.0, 13);
  for_each_arch([&](auto a) {
    using A = decltype(a);
    auto kernel = [](double* p, attnkit::index_t n) { simd::sigmoid_inplace<A>(p, n); };
    auto ref = [](double x) {
      const long double e = std::exp(-std::fabs(static_cast<long double>(x)));
      return x >= 0 ? 1.0L / (1.0L + e) : e / (1.0L + e);
    };
    double worst;
    const long double err = max_ulp_error(xs, kernel, ref, &worst);
    INFO("max ulp error " << double(err) << " at x = " << worst);
    CHECK(err <= 3.0L);
    const auto r = run(kernel, {-inf, inf, qnan, -1e300, 1e300, 0.0});
    CHECK(r[0] == 0.0);
    CHECK(r[1] == 1.0);
    CHECK(std::isnan(r[2]));
    CHECK(r[3] == 0.0);
    CHECK(r[4] == 1.0);
    CHECK(r[5] == 0.5);
  });
}

TEST_CASE("simd tanh fp64: accuracy over the double range, saturation", "[simd][tanh]") {
  const auto xs = full_range_samples<double>(-4.0, 4.0, 14);
  for_each_arch([&](auto a) {
    using A = decltype(a);
    auto kernel = [](double* p, attnkit::index_t n) { simd::tanh_inplace<A>(p, n); };
    double worst;
    const long double err = max_ulp_error(
        xs, kernel, [](double x) { return std::tanh(static_cast<long double>(x)); }, &worst);
    INFO("max ulp error " << double(err) << " at x = " << worst);
    CHECK(err <= 3.0L);
    const auto r = run(kernel, {-inf, inf, qnan, -1e300, 1e300, 0.0, -0.0, 1e-300});
    CHECK(r[0] == -1.0);
    CHECK(r[1] == 1.0);
    CHECK(std::isnan(r[2]));
    CHECK(r[3] == -1.0);
    CHECK(r[4] == 1.0);
    CHECK(r[5] == 0.0);
    CHECK(std::signbit(r[6]));
    CHECK(r[7] == 1e-300);
  });
}
