// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// fp32 exp/log/sigmoid/tanh: accuracy over the whole float range and special values, for every
// architecture compiled in and available.
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

constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float qnan = std::numeric_limits<float>::quiet_NaN();

// Evaluates one function on a short vector of specials through the arch's row kernel.
template <class Kernel>
std::vector<float> run(Kernel kernel, std::vector<float> xs) {
  kernel(xs.data(), static_cast<attnkit::index_t>(xs.size()));
  return xs;
}

}  // namespace

TEST_CASE("simd exp fp32: accuracy over the float range and specials", "[simd][exp]") {
  const auto xs = full_range_samples<float>(-110.0f, 90.0f, 1);
  const int ran = for_each_arch([&](auto a) {
    using A = decltype(a);
    auto kernel = [](float* p, attnkit::index_t n) { simd::exp_inplace<A>(p, n); };
    float worst;
    const long double err = max_ulp_error(
        xs, kernel, [](float x) { return static_cast<long double>(std::exp(double(x))); }, &worst);
    INFO("max ulp error " << double(err) << " at x = " << worst);
    CHECK(err <= 1.5L);
    const auto r =
        run(kernel, {-inf, inf, qnan, -1e30f, -200.0f, -103.0f, -88.0f, 1e30f, 89.0f, 0.0f, -0.0f});
    CHECK(r[0] == 0.0f);
    CHECK(r[1] == inf);
    CHECK(std::isnan(r[2]));
    CHECK(r[3] == 0.0f);
    CHECK(r[4] == 0.0f);
    CHECK(r[5] >= 0.0f);  // subnormal, not NaN
    CHECK(r[5] < std::numeric_limits<float>::min());
    CHECK(r[6] > 0.0f);
    CHECK(r[7] == inf);
    CHECK(r[8] == inf);
    CHECK(r[9] == 1.0f);
    CHECK(r[10] == 1.0f);
  });
  CHECK(ran >= 1);
}

TEST_CASE("simd log fp32: accuracy over the float range and specials", "[simd][log]") {
  const auto xs = full_range_samples<float>(0.0f, 4.0f, 2);
  for_each_arch([&](auto a) {
    using A = decltype(a);
    auto kernel = [](float* p, attnkit::index_t n) { simd::log_inplace<A>(p, n); };
    float worst;
    const long double err = max_ulp_error(
        xs, kernel, [](float x) { return static_cast<long double>(std::log(double(x))); }, &worst);
    INFO("max ulp error " << double(err) << " at x = " << worst);
    CHECK(err <= 1.5L);
    const auto r = run(kernel, {0.0f, -0.0f, -1.0f, inf, -inf, qnan, 1.0f,
                                std::numeric_limits<float>::denorm_min()});
    CHECK(r[0] == -inf);
    CHECK(r[1] == -inf);
    CHECK(std::isnan(r[2]));
    CHECK(r[3] == inf);
    CHECK(std::isnan(r[4]));
    CHECK(std::isnan(r[5]));
    CHECK(r[6] == 0.0f);
    CHECK(r[7] == Approx(std::log(double(std::numeric_limits<float>::denorm_min()))).epsilon(1e-6));
  });
}

TEST_CASE("simd sigmoid fp32: accuracy over the float range, no overflow", "[simd][sigmoid]") {
  const auto xs = full_range_samples<float>(-110.0f, 30.0f, 3);
  for_each_arch([&](auto a) {
    using A = decltype(a);
    auto kernel = [](float* p, attnkit::index_t n) { simd::sigmoid_inplace<A>(p, n); };
    auto ref = [](float x) {
      const long double e = std::exp(-std::fabs(static_cast<long double>(x)));
      return x >= 0 ? 1.0L / (1.0L + e) : e / (1.0L + e);
    };
    float worst;
    const long double err = max_ulp_error(xs, kernel, ref, &worst);
    INFO("max ulp error " << double(err) << " at x = " << worst);
    CHECK(err <= 3.0L);
    const auto r = run(kernel, {-inf, inf, qnan, -1e30f, 1e30f, -3e38f, 3e38f, 0.0f});
    CHECK(r[0] == 0.0f);
    CHECK(r[1] == 1.0f);
    CHECK(std::isnan(r[2]));
    CHECK(r[3] == 0.0f);
    CHECK(r[4] == 1.0f);
    CHECK(r[5] == 0.0f);
    CHECK(r[6] == 1.0f);
    CHECK(r[7] == 0.5f);
  });
}

TEST_CASE("simd tanh fp32: accuracy over the float range, saturation", "[simd][tanh]") {
  const auto xs = full_range_samples<float>(-4.0f, 4.0f, 4);
  for_each_arch([&](auto a) {
    using A = decltype(a);
    auto kernel = [](float* p, attnkit::index_t n) { simd::tanh_inplace<A>(p, n); };
    float worst;
    const long double err = max_ulp_error(
        xs, kernel, [](float x) { return static_cast<long double>(std::tanh(double(x))); }, &worst);
    INFO("max ulp error " << double(err) << " at x = " << worst);
    CHECK(err <= 2.0L);
    const auto r = run(kernel, {-inf, inf, qnan, -1e30f, 1e30f, 0.0f, -0.0f, 1e-30f});
    CHECK(r[0] == -1.0f);
    CHECK(r[1] == 1.0f);
    CHECK(std::isnan(r[2]));
    CHECK(r[3] == -1.0f);
    CHECK(r[4] == 1.0f);
    CHECK(r[5] == 0.0f);
    CHECK(std::signbit(r[6]));
    CHECK(r[7] == 1e-30f);
  });
}
