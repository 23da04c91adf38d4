// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Plain double-precision references of the block/ modules (norms, RoPE, projections, SwiGLU,
// GELU MLP, mixture of experts) and small helpers of the block tests.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "attnkit/core/tensor.hpp"

namespace block_test {

using attnkit::index_t;

/// A row-major double matrix.
struct Mat {
  index_t rows = 0, cols = 0;
  std::vector<double> v;
  Mat() = default;
  Mat(index_t r, index_t c) : rows(r), cols(c), v(static_cast<std::size_t>(r * c)) {}
  double& operator()(index_t i, index_t j) { return v[static_cast<std::size_t>(i * cols + j)]; }
  double operator()(index_t i, index_t j) const {
    return v[static_cast<std::size_t>(i * cols + j)];
  }
};

inline Mat random_mat(index_t r, index_t c, std::uint32_t seed, double scale = 1.0,
                      double offset = 0.0) {
  std::mt19937 g(seed);
  std::normal_distribution<double> d(0.0, 1.0);
  Mat m(r, c);
  for (double& x : m.v) x = offset + scale * d(g);
  return m;
}

/// The matrix as a Tensor<T, 2> (rounded to T).
template <class T>
attnkit::Tensor<T, 2> to_tensor(const Mat& m) {
  attnkit::Tensor<T, 2> t({m.rows, m.cols});
  for (index_t i = 0; i < m.rows; ++i)
    for (index_t j = 0; j < m.cols; ++j) t(i, j) = static_cast<T>(m(i, j));
  return t;
}

/// The T-rounded values back in double (so references see exactly what the kernel sees).
template <class T>
Mat rounded(const Mat& m) {
  Mat r = m;
  for (double& x : r.v) x = static_cast<double>(static_cast<T>(x));
  return r;
}

template <class T>
attnkit::Tensor<T, 1> to_tensor1(const std::vector<double>& v) {
  attnkit::Tensor<T, 1> t({static_cast<index_t>(v.size())});
  for (std::size_t i = 0; i < v.size(); ++i) t(static_cast<index_t>(i)) = static_cast<T>(v[i]);
  return t;
}

/// y = x Wᵀ (+ b).
inline Mat ref_linear(const Mat& x, const Mat& w, const std::vector<double>& b = {}) {
  Mat y(x.rows, w.rows);
  for (index_t i = 0; i < x.rows; ++i)
    for (index_t o = 0; o < w.rows; ++o) {
      double s = b.empty() ? 0.0 : b[static_cast<std::size_t>(o)];
      for (index_t k = 0; k < x.cols; ++k) s += x(i, k) * w(o, k);
      y(i, o) = s;
    }
  return y;
}

inline Mat ref_rmsnorm(const Mat& x, const std::vector<double>& w, double eps) {
  Mat y(x.rows, x.cols);
  for (index_t i = 0; i < x.rows; ++i) {
    double ms = 0;
    for (index_t j = 0; j < x.cols; ++j) ms += x(i, j) * x(i, j);
    ms /= static_cast<double>(x.cols);
    for (index_t j = 0; j < x.cols; ++j)
      y(i, j) = x(i, j) / std::sqrt(ms + eps) * w[static_cast<std::size_t>(j)];
  }
  return y;
}

inline Mat ref_layernorm(const Mat& x, const std::vector<double>& w, const std::vector<double>& b,
                         double eps) {
  Mat y(x.rows, x.cols);
  for (index_t i = 0; i < x.rows; ++i) {
    double mean = 0, var = 0;
    for (index_t j = 0; j < x.cols; ++j) mean += x(i, j);
    mean /= static_cast<double>(x.cols);
    for (index_t j = 0; j < x.cols; ++j) var += (x(i, j) - mean) * (x(i, j) - mean);
    var /= static_cast<double>(x.cols);
    for (index_t j = 0; j < x.cols; ++j)
      y(i, j) = (x(i, j) - mean) / std::sqrt(var + eps) * w[static_cast<std::size_t>(j)] +
                (b.empty() ? 0.0 : b[static_cast<std::size_t>(j)]);
  }
  return y;
}

inline double ref_silu(double x) { return x / (1.0 + std::exp(-x)); }

inline Mat ref_swiglu(const Mat& x, const Mat& gate, const Mat& up, const Mat& down) {
  Mat g = ref_linear(x, gate), u = ref_linear(x, up);
  for (std::size_t i = 0; i < g.v.size(); ++i) g.v[i] = ref_silu(g.v[i]) * u.v[i];
  return ref_linear(g, down);
}

inline Mat ref_gelu_mlp(const Mat& x, const Mat& fc1, const std::vector<double>& b1, const Mat& fc2,
                        const std::vector<double>& b2, bool tanh_form) {
  Mat h = ref_linear(x, fc1, b1);
  for (double& v : h.v)
    v = tanh_form ? 0.5 * v * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)))
                  : 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  return ref_linear(h, fc2, b2);
}

/// Mixtral routing and sum, written from the definition.
inline Mat ref_moe(const Mat& x, const Mat& router, const std::vector<Mat>& gates,
                   const std::vector<Mat>& ups, const std::vector<Mat>& downs, index_t k,
                   bool renormalize) {
  const Mat logits = ref_linear(x, router);
  Mat y(x.rows, x.cols);
  const index_t e = router.rows;
  for (index_t r = 0; r < x.rows; ++r) {
    std::vector<double> p(static_cast<std::size_t>(e));
    double mx = -1e300, s = 0;
    for (index_t j = 0; j < e; ++j) mx = std::max(mx, logits(r, j));
    for (index_t j = 0; j < e; ++j)
      s += (p[static_cast<std::size_t>(j)] = std::exp(logits(r, j) - mx));
    for (double& v : p) v /= s;
    std::vector<index_t> idx(static_cast<std::size_t>(e));
    std::iota(idx.begin(), idx.end(), index_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](index_t a, index_t b) {
      return p[static_cast<std::size_t>(a)] > p[static_cast<std::size_t>(b)];
    });
    double top = 0;
    for (index_t t = 0; t < k; ++t)
      top += p[static_cast<std::size_t>(idx[static_cast<std::size_t>(t)])];
    Mat xr(1, x.cols);
    for (index_t c = 0; c < x.cols; ++c) xr(0, c) = x(r, c);
    for (index_t t = 0; t < k; ++t) {
      const auto j = static_cast<std::size_t>(idx[static_cast<std::size_t>(t)]);
      const double w = renormalize ? p[j] / top : p[j];
      const Mat o = ref_swiglu(xr, gates[j], ups[j], downs[j]);
      for (index_t c = 0; c < x.cols; ++c) y(r, c) += w * o(0, c);
    }
  }
  return y;
}

/// RoPE of one head row at position pos, rotate-half or interleaved, rotary dim r <= row size.
inline std::vector<double> ref_rope_row(const std::vector<double>& x, double pos, index_t r,
                                        double theta, bool interleaved) {
  std::vector<double> y = x;
  for (index_t i = 0; i < r / 2; ++i) {
    const double a = pos * std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(r));
    const auto lo = static_cast<std::size_t>(interleaved ? 2 * i : i);
    const auto hi = static_cast<std::size_t>(interleaved ? 2 * i + 1 : i + r / 2);
    y[lo] = x[lo] * std::cos(a) - x[hi] * std::sin(a);
    y[hi] = x[hi] * std::cos(a) + x[lo] * std::sin(a);
  }
  return y;
}

/// max |a - b| over a Tensor and a reference matrix of the same shape.
template <class T>
double max_abs_diff(const attnkit::Tensor<T, 2>& a, const Mat& b) {
  double m = 0;
  for (index_t i = 0; i < b.rows; ++i)
    for (index_t j = 0; j < b.cols; ++j) m = std::max(m, std::abs(double(a(i, j)) - b(i, j)));
  return m;
}

/// Tolerance per type for O(1) values after O(100)-term sums.
template <class T>
constexpr double tol() {
  return sizeof(T) == 4 ? 2e-5 : 1e-12;
}

}  // namespace block_test
