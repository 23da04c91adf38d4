// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Helpers of the einsum tests: random operands, conversion to the double reference, and the
// check that the compile-time and runtime forms agree bit for bit and match the reference.
#pragma once

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/attnkit.hpp"

#include "reference/einsum_ref.hpp"

namespace einsum_test {

using attnkit::index_t;
using attnkit::Shape;
using attnkit::StridedView;
using attnkit::Tensor;
using attnkit::ref::RefArray;

/// Sizes that stress the kernels: 1, primes, around the SIMD width (16) and the block sizes.
inline const std::vector<index_t> awkward_sizes = {1,  2,  3,  5,  7,  13, 15,
                                                   16, 17, 31, 33, 63, 64, 65};

inline std::mt19937& rng() {
  static std::mt19937 g(20261125u);
  return g;
}

/// A size drawn from `awkward_sizes`, at most `cap`.
inline index_t pick(index_t cap = 65) {
  for (;;) {
    const index_t s = awkward_sizes[std::uniform_int_distribution<std::size_t>(
        0, awkward_sizes.size() - 1)(rng())];
    if (s <= cap) return s;
  }
}

template <class T, std::size_t R>
Tensor<T, R> random_tensor(const Shape<R>& shape) {
  Tensor<T, R> t(shape);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (auto& x : t) x = static_cast<T>(u(rng()));
  return t;
}

/// The elements of any strided view as a row-major double array.
template <class T>
RefArray to_ref(StridedView<const T> v) {
  RefArray r;
  r.shape.assign(v.shape().begin(), v.shape().end());
  const index_t n = v.size();
  r.data.resize(static_cast<std::size_t>(n));
  std::vector<index_t> idx(v.rank(), 0);
  for (index_t e = 0; e < n; ++e) {
    index_t off = 0;
    for (std::size_t d = 0; d < v.rank(); ++d) off += idx[d] * v.stride(d);
    r.data[static_cast<std::size_t>(e)] = static_cast<double>(v.data()[off]);
    for (std::size_t d = v.rank(); d-- > 0;) {
      if (++idx[d] < v.extent(d)) break;
      idx[d] = 0;
    }
  }
  return r;
}

/// Relative tolerance per element, against the sum of |products| of the element.
template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, float> ? 3e-5 : 1e-13;
}

/// Requires `got` to match the reference of `spec` over `ins`, element by element.
template <class T>
void require_matches_ref(const std::string& spec, StridedView<const T> got,
                         const std::vector<StridedView<const T>>& ins) {
  std::vector<RefArray> ops;
  for (auto& v : ins) ops.push_back(to_ref(v));
  const auto ref = attnkit::ref::einsum_ref(spec, ops);
  const RefArray g = to_ref(got);
  REQUIRE(g.shape == ref.value.shape);
  for (std::size_t i = 0; i < g.data.size(); ++i) {
    const double err = std::fabs(g.data[i] - ref.value.data[i]);
    const double bound = tolerance<T>() * ref.abs_sum[i] + 1e-30;
    if (!(err <= bound)) {
      INFO(spec << " element " << i << ": got " << g.data[i] << ", reference " << ref.value.data[i]
                << " (|products| " << ref.abs_sum[i] << ")");
      REQUIRE(err <= bound);
    }
  }
}

/// Bitwise equality of two views of equal shape.
template <class T>
bool bitwise_equal(StridedView<const T> a, StridedView<const T> b) {
  const RefArray x = to_ref(a), y = to_ref(b);
  return x.shape == y.shape && (x.data.empty() || std::memcmp(x.data.data(), y.data.data(),
                                                              x.data.size() * sizeof(double)) == 0);
}

/// Runs Spec on the compile-time form (into a rank-RO Tensor, or a scalar for RO == 0) and on
/// the runtime form; requires bit-identical results that match the double reference.
template <attnkit::fixed_string Spec, std::size_t RO, class T, std::size_t... R>
void check_spec(const Tensor<T, R>&... ins) {
  const std::string spec(Spec.view());
  INFO("spec " << spec);
  const std::vector<StridedView<const T>> views{StridedView<const T>(ins)...};
  const auto plan = attnkit::EinsumPlan<T>::make(Spec.view(), ins.shape()...);
  const auto oshape = plan.output_shape();
  REQUIRE(oshape.size() == RO);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  if constexpr (RO == 0) {
    T a = nan, b = nan, c = nan;
    attnkit::einsum<Spec>(a, ins...);
    attnkit::einsum(Spec.view(), b, {ins...});
    plan.run(StridedView<T>::scalar(&c), views);
    REQUIRE(std::memcmp(&a, &b, sizeof(T)) == 0);
    REQUIRE(std::memcmp(&a, &c, sizeof(T)) == 0);
    require_matches_ref<T>(spec, StridedView<const T>::scalar(&a), views);
  } else {
    Shape<RO> s{};
    for (std::size_t d = 0; d < RO; ++d) s[d] = oshape[d];
    Tensor<T, RO> a(s, nan), b(s, nan), c(s, nan);
    attnkit::einsum<Spec>(a, ins...);
    attnkit::einsum(Spec.view(), b, {ins...});
    plan.run(c, views);
    REQUIRE(bitwise_equal<T>(a, b));
    REQUIRE(bitwise_equal<T>(a, c));
    require_matches_ref<T>(spec, a, views);
  }
}

}  // namespace einsum_test
