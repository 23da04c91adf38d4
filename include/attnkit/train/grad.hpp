// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The backward passes of the decoder's modules: linear, embedding, RMSNorm, LayerNorm, RoPE,
// SwiGLU and GELU activations, and the LM head's softmax cross-entropy. Parameter gradients are
// added to (a training step zeroes them once); input gradients are written, or added to when
// `accumulate` is set (a residual stream's gradient collects several paths).
#pragma once

#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <span>
#include <string>

#include "attnkit/block/feed_forward.hpp"
#include "attnkit/block/rope.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/kernel/gemm.hpp"

namespace attnkit::train {

namespace detail {

template <class T>
kernel::MatrixRef<const T> mref(TensorView<const T, 2> x) {
  return {x.data(), x.stride(0), x.stride(1)};
}
template <class T>
kernel::MatrixRef<T> mref(TensorView<T, 2> x) {
  return {x.data(), x.stride(0), x.stride(1)};
}

inline void check_shape2(const char* where, const char* what, const Shape<2>& got,
                         const Shape<2>& want) {
  if (got != want) throw_shape_mismatch(where, what, got, want);
}

}  // namespace detail

/// The backward of y[M, out] = x[M, in] · Wᵀ + b (block::linear; W [out, in] as torch.nn.Linear
/// stores it): dx = dy · W (written, or added when `accumulate`; skipped when dx is empty),
/// dW += dyᵀ · x, db += the column sums of dy (skipped when db is empty). Any strides; the
/// outputs must not alias the inputs. Throws shape_error naming the argument and both shapes.
/// \tparam T float or double
template <std::floating_point T>
void linear_backward(std::type_identity_t<TensorView<const T, 2>> x,
                     std::type_identity_t<TensorView<const T, 2>> weight,
                     std::type_identity_t<TensorView<const T, 2>> dy, TensorView<T, 2> dx,
                     TensorView<T, 2> dweight, TensorView<T, 1> dbias, bool accumulate = false) {
  const index_t m = x.extent(0), in = x.extent(1), out = weight.extent(0);
  detail::check_shape2("linear_backward", "weight", weight.shape(), Shape<2>{out, in});
  detail::check_shape2("linear_backward", "dy", dy.shape(), Shape<2>{m, out});
  detail::check_shape2("linear_backward", "dweight", dweight.shape(), Shape<2>{out, in});
  if (!dx.empty()) detail::check_shape2("linear_backward", "dx", dx.shape(), Shape<2>{m, in});
  if (!dbias.empty() && dbias.shape() != Shape<1>{out})
    throw_shape_mismatch("linear_backward", "dbias", dbias.shape(), Shape<1>{out});
  if (!dx.empty())
    kernel::gemm<T>(m, in, out, T(1), detail::mref(dy), detail::mref(weight),
                    accumulate ? T(1) : T(0), detail::mref(dx));
  kernel::gemm<T>(out, in, m, T(1), detail::mref(dy).transposed(), detail::mref(x), T(1),
                  detail::mref(dweight));
  if (!dbias.empty())
    for (index_t r = 0; r < m; ++r)
      for (index_t c = 0; c < out; ++c) dbias(c) += dy(r, c);
}

/// The backward of an embedding lookup y[n] = E[ids[n]]: dE[ids[n]] += dy[n]. Throws error for
/// an id outside [0, V), shape_error for mismatched shapes.
/// \tparam T float or double
/// \tparam Id an integer type
template <std::floating_point T, std::integral Id>
void embedding_backward(std::span<const Id> ids, std::type_identity_t<TensorView<const T, 2>> dy,
                        TensorView<T, 2> dtable) {
  const index_t n = static_cast<index_t>(ids.size()), h = dtable.extent(1), v = dtable.extent(0);
  detail::check_shape2("embedding_backward", "dy", dy.shape(), Shape<2>{n, h});
  for (index_t r = 0; r < n; ++r) {
    const auto id = static_cast<index_t>(ids[static_cast<std::size_t>(r)]);
    if (id < 0 || id >= v)
      throw error("attnkit: embedding_backward: token id " + std::to_string(id) + " at " +
                  std::to_string(r) + " is outside the vocabulary [0, " + std::to_string(v) + ")");
    for (index_t c = 0; c < h; ++c) dtable(id, c) += dy(r, c);
  }
}

/// The backward of RMSNorm y = x · r · w, r = 1 / sqrt(mean(x²) + eps), over the rows of x
/// [M, n]: dw += Σ_rows dy · x · r; dx = r · (dy·w − x̂ · mean(dy·w·x̂)), x̂ = x · r (written,
/// or added when `accumulate`). Row sums in double.
/// \tparam T float or double
template <std::floating_point T>
void rms_norm_backward(std::type_identity_t<TensorView<const T, 2>> x,
                       std::type_identity_t<TensorView<const T, 1>> weight, double eps,
                       std::type_identity_t<TensorView<const T, 2>> dy, TensorView<T, 2> dx,
                       TensorView<T, 1> dweight, bool accumulate = false) {
  const index_t m = x.extent(0), n = x.extent(1);
  if (weight.shape() != Shape<1>{n})
    throw_shape_mismatch("rms_norm_backward", "weight", weight.shape(), Shape<1>{n});
  if (dweight.shape() != Shape<1>{n})
    throw_shape_mismatch("rms_norm_backward", "dweight", dweight.shape(), Shape<1>{n});
  detail::check_shape2("rms_norm_backward", "dy", dy.shape(), x.shape());
  detail::check_shape2("rms_norm_backward", "dx", dx.shape(), x.shape());
  for (index_t r = 0; r < m; ++r) {
    double sq = 0;
    for (index_t c = 0; c < n; ++c) sq += double(x(r, c)) * double(x(r, c));
    const double rs = 1.0 / std::sqrt(sq / double(n) + eps);
    double dot = 0;  // Σ dy·w·x̂
    for (index_t c = 0; c < n; ++c) {
      const double xh = double(x(r, c)) * rs;
      dot += double(dy(r, c)) * double(weight(c)) * xh;
      dweight(c) += static_cast<T>(double(dy(r, c)) * xh);
    }
    const double mean = dot / double(n);
    for (index_t c = 0; c < n; ++c) {
      const double xh = double(x(r, c)) * rs;
      const T g = static_cast<T>(rs * (double(dy(r, c)) * double(weight(c)) - xh * mean));
      dx(r, c) = accumulate ? dx(r, c) + g : g;
    }
  }
}

/// The backward of LayerNorm y = (x − μ) · r · w + b, r = 1 / sqrt(var(x) + eps) (population
/// variance) over the rows of x [M, n]: dw += Σ dy·x̂, db += Σ dy (skipped when empty);
/// dx = r · (g − mean(g) − x̂ · mean(g·x̂)), g = dy·w (written, or added when `accumulate`).
/// \tparam T float or double
template <std::floating_point T>
void layer_norm_backward(std::type_identity_t<TensorView<const T, 2>> x,
                         std::type_identity_t<TensorView<const T, 1>> weight, double eps,
                         std::type_identity_t<TensorView<const T, 2>> dy, TensorView<T, 2> dx,
                         TensorView<T, 1> dweight, TensorView<T, 1> dbias,
                         bool accumulate = false) {
  const index_t m = x.extent(0), n = x.extent(1);
  if (weight.shape() != Shape<1>{n})
    throw_shape_mismatch("layer_norm_backward", "weight", weight.shape(), Shape<1>{n});
  if (dweight.shape() != Shape<1>{n})
    throw_shape_mismatch("layer_norm_backward", "dweight", dweight.shape(), Shape<1>{n});
  if (!dbias.empty() && dbias.shape() != Shape<1>{n})
    throw_shape_mismatch("layer_norm_backward", "dbias", dbias.shape(), Shape<1>{n});
  detail::check_shape2("layer_norm_backward", "dy", dy.shape(), x.shape());
  detail::check_shape2("layer_norm_backward", "dx", dx.shape(), x.shape());
  for (index_t r = 0; r < m; ++r) {
    double mu = 0;
    for (index_t c = 0; c < n; ++c) mu += double(x(r, c));
    mu /= double(n);
    double var = 0;
    for (index_t c = 0; c < n; ++c) var += (double(x(r, c)) - mu) * (double(x(r, c)) - mu);
    const double rs = 1.0 / std::sqrt(var / double(n) + eps);
    double sg = 0, sgx = 0;
    for (index_t c = 0; c < n; ++c) {
      const double xh = (double(x(r, c)) - mu) * rs, g = double(dy(r, c)) * double(weight(c));
      sg += g;
      sgx += g * xh;
      dweight(c) += static_cast<T>(double(dy(r, c)) * xh);
      if (!dbias.empty()) dbias(c) += dy(r, c);
    }
    sg /= double(n);
    sgx /= double(n);
    for (index_t c = 0; c < n; ++c) {
      const double xh = (double(x(r, c)) - mu) * rs, g = double(dy(r, c)) * double(weight(c));
      const T d = static_cast<T>(rs * (g - sg - xh * sgx));
      dx(r, c) = accumulate ? dx(r, c) + d : d;
    }
  }
}

/// The backward of RoPE: the rotation is orthogonal, so the gradient of its input is the
/// output's gradient rotated back (RoPE::apply_inverse), in place. x [B, H, N, D], any strides.
/// \tparam T float or double
template <std::floating_point T>
void rope_backward(const block::RoPE& rope, TensorView<T, 4> dx,
                   std::span<const index_t> positions) {
  rope.apply_inverse(dx, positions);
}

/// SiLU(g) · u elementwise: h[i] = g[i] σ(g[i]) u[i] (SwiGLU's hidden activation), h [M, I]
/// contiguous; g is kept for the backward. The kernel of block::SwiGLU (silu_mul_inplace).
/// \tparam T float or double
template <std::floating_point T>
void swiglu_forward(std::type_identity_t<TensorView<const T, 2>> g,
                    std::type_identity_t<TensorView<const T, 2>> u, TensorView<T, 2> h) {
  detail::check_shape2("swiglu_forward", "u", u.shape(), g.shape());
  detail::check_shape2("swiglu_forward", "h", h.shape(), g.shape());
  copy(g, h);
  block::silu_mul_inplace<T>(h, u);
}

/// The backward of h = SiLU(g) · u: dg = dh · u · σ(g) (1 + g (1 − σ(g))), du = dh · SiLU(g).
/// \tparam T float or double
template <std::floating_point T>
void swiglu_backward(std::type_identity_t<TensorView<const T, 2>> g,
                     std::type_identity_t<TensorView<const T, 2>> u,
                     std::type_identity_t<TensorView<const T, 2>> dh, TensorView<T, 2> dg,
                     TensorView<T, 2> du) {
  for (const auto& [what, s] : {std::pair{"u", u.shape()}, std::pair{"dh", dh.shape()},
                                std::pair{"dg", dg.shape()}, std::pair{"du", du.shape()}})
    detail::check_shape2("swiglu_backward", what, s, g.shape());
  for (index_t r = 0; r < g.extent(0); ++r)
    for (index_t c = 0; c < g.extent(1); ++c) {
      const T x = g(r, c), s = T(1) / (T(1) + std::exp(-x));
      dg(r, c) = dh(r, c) * u(r, c) * s * (T(1) + x * (T(1) - s));
      du(r, c) = dh(r, c) * x * s;
    }
}

/// GELU elementwise, h = gelu(a) (block::GeluKind: exact or tanh), a and h [M, I], h
/// contiguous; a is kept for the backward. The kernel of block::GeluMLP (gelu_inplace).
/// \tparam T float or double
template <std::floating_point T>
void gelu_forward(std::type_identity_t<TensorView<const T, 2>> a, TensorView<T, 2> h,
                  block::GeluKind kind) {
  detail::check_shape2("gelu_forward", "h", h.shape(), a.shape());
  copy(a, h);
  block::gelu_inplace<T>(h, kind);
}

/// The backward of h = gelu(a): da = dh · gelu'(a).
/// \tparam T float or double
template <std::floating_point T>
void gelu_backward(std::type_identity_t<TensorView<const T, 2>> a,
                   std::type_identity_t<TensorView<const T, 2>> dh, TensorView<T, 2> da,
                   block::GeluKind kind) {
  detail::check_shape2("gelu_backward", "dh", dh.shape(), a.shape());
  detail::check_shape2("gelu_backward", "da", da.shape(), a.shape());
  constexpr double k0 = 0.7978845608028654, k1 = 0.044715;
  for (index_t r = 0; r < a.extent(0); ++r)
    for (index_t c = 0; c < a.extent(1); ++c) {
      const double x = a(r, c);
      double d;
      if (kind == block::GeluKind::exact) {
        d = 0.5 * (1 + std::erf(x / std::sqrt(2.0))) +
            x * std::exp(-0.5 * x * x) * 0.3989422804014327;
      } else {
        const double t = std::tanh(k0 * (x + k1 * x * x * x));
        d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k0 * (1 + 3 * k1 * x * x);
      }
      da(r, c) = static_cast<T>(double(dh(r, c)) * d);
    }
}

/// What softmax_cross_entropy measured: the summed loss over the counted rows, how many rows
/// counted (targets >= 0) and how many of those the argmax predicted.
struct CrossEntropy {
  double loss_sum = 0;  ///< Σ −log softmax(logits)[target]
  index_t count = 0;    ///< rows with a target >= 0
  index_t correct = 0;  ///< of those, rows whose first largest logit is the target
  /// The mean loss (0 when nothing counted).
  double mean() const noexcept { return count > 0 ? loss_sum / double(count) : 0.0; }
  /// Adds another batch's sums and counts.
  CrossEntropy& operator+=(const CrossEntropy& o) noexcept {
    loss_sum += o.loss_sum;
    count += o.count;
    correct += o.correct;
    return *this;
  }
};

/// Softmax cross-entropy of logits [M, V] against targets (one per row; a negative target is
/// ignored) and, when dlogits is not empty, its gradient scaled by `grad_scale`:
/// dlogits = grad_scale · (softmax(logits) − onehot(target)) (rows ignored: 0). With grad_scale =
/// 1 / count this is the gradient of the mean loss. Row sums in double. Throws error for a
/// target >= V, shape_error for mismatched shapes.
/// \tparam T float or double
/// \tparam Id an integer type
template <std::floating_point T, std::integral Id>
CrossEntropy softmax_cross_entropy(std::type_identity_t<TensorView<const T, 2>> logits,
                                   std::span<const Id> targets, TensorView<T, 2> dlogits,
                                   double grad_scale) {
  const index_t m = logits.extent(0), v = logits.extent(1);
  if (static_cast<index_t>(targets.size()) != m)
    throw shape_error("attnkit: softmax_cross_entropy: " + std::to_string(targets.size()) +
                      " targets for logits of shape " + shape_string(logits.shape()));
  if (!dlogits.empty())
    detail::check_shape2("softmax_cross_entropy", "dlogits", dlogits.shape(), logits.shape());
  CrossEntropy ce;
  for (index_t r = 0; r < m; ++r) {
    const auto t = static_cast<index_t>(targets[static_cast<std::size_t>(r)]);
    if (t >= v)
      throw error("attnkit: softmax_cross_entropy: target " + std::to_string(t) + " of row " +
                  std::to_string(r) + " is outside the vocabulary [0, " + std::to_string(v) + ")");
    if (t < 0) {
      if (!dlogits.empty())
        for (index_t c = 0; c < v; ++c) dlogits(r, c) = T(0);
      continue;
    }
    double mx = -std::numeric_limits<double>::infinity();
    index_t arg = 0;
    for (index_t c = 0; c < v; ++c)
      if (double(logits(r, c)) > mx) {
        mx = logits(r, c);
        arg = c;
      }
    double sum = 0;
    for (index_t c = 0; c < v; ++c) sum += std::exp(double(logits(r, c)) - mx);
    const double lse = mx + std::log(sum);
    ce.loss_sum += lse - double(logits(r, t));
    ce.count += 1;
    ce.correct += arg == t ? 1 : 0;
    if (!dlogits.empty())
      for (index_t c = 0; c < v; ++c) {
        const double p = std::exp(double(logits(r, c)) - lse);
        dlogits(r, c) = static_cast<T>(grad_scale * (p - (c == t ? 1.0 : 0.0)));
      }
  }
  return ce;
}

}  // namespace attnkit::train
