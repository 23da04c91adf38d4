// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// User-defined activations written on the hooks (normalization, map, derivative, simd_map): the
// kernel applies the policy's own SIMD map under each normalization kind (none, over keys by
// sum, over keys by exp), on the prefill and decode paths, against a double reference built
// from the raw scores with the policy's scalar map; their derivatives against central finite
// differences.
#include <algorithm>
#include <cmath>

#include "attention/attention_test_util.hpp"
#include "policy/user_activations.hpp"

using namespace attnkit;
using namespace attnkit::test;

namespace {

/// P = clamp(s, 0, 1): elementwise, no normalization.
struct Clamp {
  static constexpr auto normalization = pol::Normalization::none;
  double map(double s) const noexcept { return std::clamp(s, 0.0, 1.0); }
  double derivative(double s) const noexcept { return s > 0 && s < 1 ? 1.0 : 0.0; }
  template <class T, class A>
  xsimd::batch<T, A> simd_map(const xsimd::batch<T, A>& s) const noexcept {
    return xsimd::min(xsimd::max(s, xsimd::batch<T, A>(T(0))), xsimd::batch<T, A>(T(1)));
  }
  Clamp bind(const pol::Geometry&) const noexcept { return *this; }
};

/// P = max(s, 0)²: squared ReLU (Primer), elementwise.
struct SquaredReLU {
  static constexpr auto normalization = pol::Normalization::none;
  double map(double s) const noexcept { return s > 0 ? s * s : 0.0; }
  double derivative(double s) const noexcept { return s > 0 ? 2.0 * s : 0.0; }
  template <class T, class A>
  xsimd::batch<T, A> simd_map(const xsimd::batch<T, A>& s) const noexcept {
    const auto r = xsimd::max(s, xsimd::batch<T, A>(T(0)));
    return r * r;
  }
  SquaredReLU bind(const pol::Geometry&) const noexcept { return *this; }
};

/// Softmax of clamp(s, -lim, lim) (a hard cap; softcap is the smooth one).
struct HardCapSoftmax {
  static constexpr auto normalization = pol::Normalization::over_keys_exp;
  double lim = 0.5;
  double map(double s) const noexcept { return std::clamp(s, -lim, lim); }
  double derivative(double s) const noexcept { return std::abs(s) < lim ? 1.0 : 0.0; }
  template <class T, class A>
  xsimd::batch<T, A> simd_map(const xsimd::batch<T, A>& s) const noexcept {
    const xsimd::batch<T, A> l(static_cast<T>(lim));
    return xsimd::min(xsimd::max(s, -l), l);
  }
  HardCapSoftmax bind(const pol::Geometry&) const noexcept { return *this; }
};

static_assert(pol::score_activation<Clamp> && pol::score_activation<SquaredReLU> &&
              pol::score_activation<SquarePlusOne> && pol::score_activation<HardCapSoftmax>);
static_assert(!pol::is_identity_map<Clamp> && pol::is_identity_map<pol::Softmax>);

template <class Act>
void check_custom(const Act& act, const Problem& p, DecodeMode mode, unsigned seed) {
  const Data<float> x(p, seed, 2.0);
  Tensor<float, 4> out({p.b, p.hq, p.nq, p.dv});
  AttentionOptions o;
  o.decode = mode;
  attention(pol::AttentionPolicy(act, pol::Causal{}), x.q.cview(), x.k.cview(), x.v.cview(),
            out.view(), o);
  const index_t group = p.hq / p.hkv;
  const double scale = 1.0 / std::sqrt(double(p.d));
  double err = 0, mag = 0;
  std::vector<double> w(static_cast<std::size_t>(p.nk));
  for (index_t b = 0; b < p.b; ++b)
    for (index_t h = 0; h < p.hq; ++h)
      for (index_t i = 0; i < p.nq; ++i) {
        const index_t last = i + p.nk - p.nq;  // causal, bottom-right aligned
        double mx = -1e300, sum = 0;
        for (index_t j = 0; j < p.nk; ++j) {
          double s = 0;
          for (index_t c = 0; c < p.d; ++c)
            s += double(x.q(b, h, i, c)) * double(x.k(b, h / group, j, c));
          w[std::size_t(j)] = act.map(scale * s);
          if (j <= last) mx = std::max(mx, w[std::size_t(j)]);
        }
        for (index_t j = 0; j < p.nk; ++j) {
          double& e = w[std::size_t(j)];
          if (j > last)
            e = 0;
          else if (Act::normalization == pol::Normalization::over_keys_exp)
            e = std::exp(e - mx);
          sum += e;
        }
        for (index_t c = 0; c < p.dv; ++c) {
          double acc = 0;
          for (index_t j = 0; j < p.nk; ++j)
            acc += w[std::size_t(j)] * double(x.v(b, h / group, j, c));
          if (Act::normalization != pol::Normalization::none) acc = sum > 0 ? acc / sum : 0.0;
          err = std::max(err, std::abs(acc - double(out(b, h, i, c))));
          mag = std::max(mag, std::abs(acc));
        }
      }
  INFO(p.str() << " decode " << int(mode) << ": max error " << err << " (|out| " << mag << ")");
  CHECK(err <= 2e-5 * std::max(1.0, mag));
}

}  // namespace

TEST_CASE("custom activations: the policy's own map under every normalization",
          "[attention][custom-activation]") {
  for (const Problem& p : {Problem{1, 1, 1, 1, 1, 1, 1}, Problem{2, 4, 2, 37, 37, 16, 16},
                           Problem{1, 8, 2, 67, 131, 24, 8}}) {
    check_custom(Clamp{}, p, DecodeMode::never, 1);
    check_custom(SquaredReLU{}, p, DecodeMode::never, 7);
    check_custom(SquarePlusOne{}, p, DecodeMode::never, 2);
    check_custom(HardCapSoftmax{}, p, DecodeMode::never, 3);
  }
  const Problem dec{1, 6, 2, 2, 1100, 16, 16};
  check_custom(Clamp{}, dec, DecodeMode::always, 4);
  check_custom(SquaredReLU{}, dec, DecodeMode::always, 8);
  check_custom(SquarePlusOne{}, dec, DecodeMode::always, 5);
  check_custom(HardCapSoftmax{}, dec, DecodeMode::always, 6);
}

TEST_CASE("custom activations: derivative() against central finite differences",
          "[policy][custom-activation]") {
  auto fd = [](const auto& a, double s) {
    const double h = 1e-6;
    return (a.map(s + h) - a.map(s - h)) / (2 * h);
  };
  for (double s : {-2.3, -0.7, -0.2, 0.3, 0.45, 0.8, 1.7, 3.1}) {
    INFO("s = " << s);
    CHECK(Clamp{}.derivative(s) == Approx(fd(Clamp{}, s)).margin(1e-7));
    CHECK(SquaredReLU{}.derivative(s) == Approx(fd(SquaredReLU{}, s)).margin(1e-7));
    CHECK(SquarePlusOne{}.derivative(s) == Approx(fd(SquarePlusOne{}, s)).margin(1e-7));
    CHECK(HardCapSoftmax{}.derivative(s) == Approx(fd(HardCapSoftmax{}, s)).margin(1e-7));
  }
}
