// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The hooks of every built-in activation: simd_map on every kernel architecture the CPU runs
// (AVX-512, AVX2, SSE2; float and double) against the scalar map, and derivative() against
// central finite differences of the scalar map, in double.
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/policy/activation.hpp"
#include "attnkit/policy/registry.hpp"

using namespace attnkit;
namespace pol = attnkit::policy;

namespace {

/// Scores from -60 to 60, the region the kernel sees (dense near 0).
std::vector<double> scores() {
  std::vector<double> s;
  for (double x = -60; x <= 60; x += 0.37) s.push_back(x);
  for (double x = -3; x <= 3; x += 0.0173) s.push_back(x);
  return s;
}

template <class Arch, class T, class Act>
void check_simd(const Act& act, const std::string& name, double tol) {
  using B = xsimd::batch<T, Arch>;
  const std::vector<double> s = scores();
  double worst = 0;
  for (std::size_t i = 0; i + B::size <= s.size(); i += B::size) {
    alignas(64) T in[B::size], out[B::size];
    for (std::size_t k = 0; k < B::size; ++k) in[k] = static_cast<T>(s[i + k]);
    act.simd_map(B::load_aligned(in)).store_aligned(out);
    for (std::size_t k = 0; k < B::size; ++k) {
      const double want = act.map(double(in[k]));
      worst = std::max(worst, std::abs(double(out[k]) - want) / std::max(1.0, std::abs(want)));
    }
  }
  INFO(name << " on " << Arch::name() << " " << (sizeof(T) == 4 ? "float" : "double"));
  CHECK(worst <= tol);
}

/// float_tol: relative to max(1, |map|); the soft cap's tanh is accurate to a few ulps of 1,
/// times the cap C.
template <class Act>
void check_all_archs(const Act& act, const std::string& name, double float_tol = 2e-6) {
  auto one = [&](auto arch) {
    using Arch = decltype(arch);
    if constexpr (simd::arch_compiled<Arch>) {
      if (simd::arch_available<Arch>()) {
        check_simd<Arch, float>(act, name, float_tol);
        check_simd<Arch, double>(act, name, 1e-13);
      }
    }
  };
  one(simd::avx512{});
  one(simd::avx2{});
  one(simd::generic{});
}

template <class Act>
void check_derivative(const Act& act, const std::string& name) {
  const double h = 1e-6;
  for (double s : {-7.3, -2.1, -0.6, -0.05, 0.05, 0.4, 1.3, 2.9, 8.7}) {
    const double fd = (act.map(s + h) - act.map(s - h)) / (2 * h);
    INFO(name << " at s = " << s);
    CHECK(act.derivative(s) == Approx(fd).epsilon(1e-6).margin(1e-8));
  }
}

}  // namespace

TEST_CASE("activation hooks: simd_map equals map on every architecture", "[policy][activation]") {
  const pol::Geometry g{1, 1, 1, 4, 100, 8, 8};
  check_all_archs(pol::Softmax{}, "softmax");
  check_all_archs(pol::Softcap(1.5), "softcap");
  check_all_archs(pol::Softcap(30.0), "softcap", 30 * 2e-7);
  check_all_archs(pol::Sigmoid{}, "sigmoid");
  check_all_archs(pol::SigmoidBias{}.bind(g), "sigmoid-bias");
  check_all_archs(pol::SigmoidBias(2.5), "sigmoid-bias");
  check_all_archs(pol::NormalizedSigmoid{}, "normalized-sigmoid");
  check_all_archs(pol::NormalizedSigmoid(-1.75), "normalized-sigmoid");
  check_all_archs(pol::HeadSoftmax{}, "head-softmax");
  check_all_archs(pol::Linear{}, "linear");
  check_all_archs(pol::ReLU{}, "relu");
}

TEST_CASE("activation hooks: derivative() against central finite differences",
          "[policy][activation]") {
  const pol::Geometry g{1, 1, 1, 4, 100, 8, 8};
  check_derivative(pol::Softmax{}, "softmax");
  check_derivative(pol::Softcap(1.5), "softcap");
  check_derivative(pol::Sigmoid{}, "sigmoid");
  check_derivative(pol::SigmoidBias{}.bind(g), "sigmoid-bias");
  check_derivative(pol::NormalizedSigmoid(0.8), "normalized-sigmoid");
  check_derivative(pol::HeadSoftmax{}, "head-softmax");
  check_derivative(pol::Linear{}, "linear");
  check_derivative(pol::ReLU{}, "relu");
  CHECK(pol::is_identity_map<pol::Softmax>);
  CHECK(pol::is_identity_map<pol::Linear>);
  CHECK_FALSE(pol::is_identity_map<pol::Softcap>);
  CHECK_FALSE(pol::is_identity_map<pol::ReLU>);
}

TEST_CASE("activation registry: names, values, errors, visit", "[policy][registry]") {
  CHECK(pol::activation_names() ==
        "softmax, sigmoid, sigmoid-bias, normalized-sigmoid, head-softmax, linear, relu, "
        "softcap=C");
  auto name_of = [](const pol::ActivationSpec& s) {
    return pol::visit_activation(s, [](const auto& a) { return std::string(a.name); });
  };
  for (const char* n : {"softmax", "sigmoid", "sigmoid-bias", "normalized-sigmoid", "head-softmax",
                        "linear", "relu"})
    CHECK(name_of(pol::parse_activation(n)) == n);
  const pol::ActivationSpec cap = pol::parse_activation("softcap=2.5");
  CHECK(pol::visit_activation(cap, [](const auto& a) {
          if constexpr (requires { a.cap; }) return a.cap;
          return -1.0;
        }) == 2.5);
  const pol::ActivationSpec nb = pol::parse_activation("normalized-sigmoid", -1.5);
  CHECK(pol::visit_activation(nb, [](const auto& a) { return a.map(1.5); }) ==
        Approx(-std::log(2.0)));  // log sigmoid(1.5 - 1.5)
  const pol::Geometry g{1, 1, 1, 4, 100, 8, 8};
  CHECK(pol::visit_activation(pol::parse_activation("sigmoid-bias"), [&](const auto& a) {
          return a.bind(g).map(std::log(100.0));
        }) == Approx(0.5));
  auto error_of = [](const char* text, std::optional<double> bias = {}) {
    try {
      pol::parse_activation(text, bias);
    } catch (const error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(error_of("tanh"),
             Catch::Contains("unknown activation 'tanh'") && Catch::Contains("softcap=C"));
  CHECK_THAT(error_of("softcap"), Catch::Contains("softcap=30"));
  CHECK_THAT(error_of("softcap=0"), Catch::Contains("C > 0"));
  CHECK_THAT(error_of("softcap=2x"), Catch::Contains("'2x'"));
  CHECK_THAT(error_of("relu=1"), Catch::Contains("takes no value"));
  CHECK_THAT(error_of("softmax", 1.0), Catch::Contains("sigmoid-bias and normalized-sigmoid"));
}

TEST_CASE("normalized sigmoid: log sigmoid map, exponentiated weights, exact at the ends",
          "[policy][activation]") {
  const pol::NormalizedSigmoid ns(-3.0);
  CHECK(ns.map(-1e4) == Approx(-1e4 - 3.0).epsilon(1e-15));
  CHECK(ns.map(3.0) == Approx(-std::log(2.0)));
  CHECK(ns.map(1e4) == 0.0);
  CHECK(pol::has_exp_weight<pol::NormalizedSigmoid>);
  CHECK_FALSE(pol::has_exp_weight<pol::Softcap>);
  auto one = [&](auto arch) {
    using Arch = decltype(arch);
    if constexpr (simd::arch_compiled<Arch>) {
      if (simd::arch_available<Arch>()) {
        auto lanes = [&](auto zero, std::initializer_list<double> xs) {
          using T = decltype(zero);
          using B = xsimd::batch<T, Arch>;
          for (double x : xs) {
            alignas(64) T out[B::size];
            ns.simd_map(B(static_cast<T>(x))).store_aligned(out);
            INFO(Arch::name() << " " << sizeof(T) << "-byte, s = " << x);
            if (std::isinf(x) && x < 0) {
              CHECK(out[0] == -std::numeric_limits<T>::infinity());
            } else {
              CHECK(double(out[0]) ==
                    Approx(ns.map(double(static_cast<T>(x)))).epsilon(1e-6).margin(1e-6));
            }
          }
        };
        // The kernel's path: simd_exp_weight(s, simd_exp_prepare(m)) = exp(map(s) - m) for a
        // running max m of the leads, in the fast range (e^-m small) and beyond it.
        auto weights = [&](auto zero, double tol, std::initializer_list<double> maxima) {
          using T = decltype(zero);
          using B = xsimd::batch<T, Arch>;
          for (double m : maxima) {
            const auto row = ns.simd_exp_prepare(B(static_cast<T>(m)));
            for (double x = m - 40; x <= (m == 0 ? 40.0 : m); x += 0.37) {
              const T s = static_cast<T>(x + 3.0);  // lead = min(s + b, 0) with b = -3
              alignas(64) T lead[B::size], w[B::size];
              ns.simd_exp_lead(B(s)).store_aligned(lead);
              ns.simd_exp_weight(B(s), row).store_aligned(w);
              INFO(Arch::name() << " " << sizeof(T) << "-byte, m = " << m << ", s = " << s);
              // Natural-log errors: s + b rounds in T, so a few ulps of |s| are expected.
              const double slack = tol * std::max(1.0, std::abs(double(s)));
              REQUIRE(w[0] > T(0));
              CHECK(std::abs(std::log(double(w[0])) - (ns.map(double(s)) - m)) <= slack);
              CHECK(double(lead[0]) >= ns.map(double(s)) - slack);
              CHECK(double(lead[0]) <= ns.map(double(s)) + std::log(2.0) + slack);
            }
          }
        };
        weights(float{}, 2e-6, {0.0, -5.0, -39.0, -45.0, -80.0, -1e4});
        weights(double{}, 1e-13, {0.0, -5.0, -500.0, -700.0, -1e4});
        const double inf = std::numeric_limits<double>::infinity();
        lanes(float{}, {-inf, -1e30, -1e4, -300.0, -90.0, 0.0, 30.0, 1e4, inf});
        lanes(double{}, {-inf, -1e30, -1e4, -800.0, 0.0, 30.0, 1e4, inf});
      }
    }
  };
  one(simd::avx512{});
  one(simd::avx2{});
  one(simd::generic{});
}
