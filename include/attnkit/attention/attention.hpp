// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attention(policy, q, k, v, out, options): the fused attention kernel for any AttentionPolicy
// over [B, H, N, D] views (MHA, GQA, MQA), with optional capture of the weights P.
#pragma once

#include <cmath>
#include <optional>
#include <string>
#include <type_traits>

#include "attnkit/attention/detail/capture.hpp"
#include "attnkit/attention/detail/decode.hpp"
#include "attnkit/attention/detail/fused_kernel.hpp"
#include "attnkit/attention/detail/head_softmax.hpp"
#include "attnkit/attention/detail/prefill.hpp"
#include "attnkit/attention/dropout.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/policy/attention_policy.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit {

/// When attention() uses the decode path (keys split across threads, flash-decoding).
enum class DecodeMode {
  automatic,  ///< when Hq/Hkv · Nq <= 64 and Nk >= 2048 (shapes only, never the thread count)
  never,      ///< always the prefill path
  always,     ///< whenever possible (not with head softmax)
};

/// Runtime options of one attention() call.
struct AttentionOptions {
  /// Scores are s = scale · q·k; default 1/sqrt(D).
  std::optional<double> scale;
  /// Path selection (results differ between paths only by rounding).
  DecodeMode decode = DecodeMode::automatic;
  /// Dropout on P for training-time experiments (off by default; see AttentionDropout).
  AttentionDropout dropout{};
};

namespace attention_detail {

template <class T, class Policy>
void run(const Policy& policy, TensorView<const T, 4> q, TensorView<const T, 4> k,
         TensorView<const T, 4> v, TensorView<T, 4> out, TensorView<T, 4> probs, bool capture,
         const AttentionOptions& opts) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit: attention supports float and double tensors");
  static_assert(policy::is_attention_policy<Policy>,
                "attnkit: the policy argument of attention must be an "
                "attnkit::policy::AttentionPolicy<Activation, Mask, ScoreMod, Gate>");
  const index_t nb = q.extent(0), hq = q.extent(1), nq = q.extent(2), d = q.extent(3);
  const index_t hkv = k.extent(1), nk = k.extent(2), dv = v.extent(3);
  if (k.extent(0) != nb || k.extent(3) != d)
    throw_shape_mismatch("attention", "k", k.shape(), Shape<4>{nb, hkv, nk, d});
  if (hkv < 1 || hq % hkv != 0)
    throw shape_error("attnkit: attention: q has " + std::to_string(hq) +
                      " heads, not a multiple of the " + std::to_string(hkv) + " heads of k (q " +
                      shape_string(q.shape()) + ", k " + shape_string(k.shape()) + ")");
  if (v.extent(0) != nb || v.extent(1) != hkv || v.extent(2) != nk)
    throw_shape_mismatch("attention", "v", v.shape(), Shape<4>{nb, hkv, nk, dv});
  if (out.shape() != Shape<4>{nb, hq, nq, dv})
    throw_shape_mismatch("attention", "out", out.shape(), Shape<4>{nb, hq, nq, dv});
  if (capture && probs.shape() != Shape<4>{nb, hq, nq, nk})
    throw_shape_mismatch("attention", "probs", probs.shape(), Shape<4>{nb, hq, nq, nk});
  if (opts.scale && !std::isfinite(*opts.scale))
    throw error("attnkit: attention: the scale must be finite");
  opts.dropout.check();

  const policy::Geometry geom{nb, hq, hkv, nq, nk, d, dv};
  const Policy bound = policy.bind(geom);
  if (out.size() == 0) return;
  if (nk == 0) {
    fill(out, T(0));
    return;
  }

  Operands<T> x{};
  x.q = q.data();
  x.qs = q.strides();
  x.k = k.data();
  x.ks = k.strides();
  x.v = v.data();
  x.vs = v.strides();
  x.out = out.data();
  x.os = out.strides();
  x.probs = capture ? probs.data() : nullptr;
  x.ps = probs.strides();
  x.g = geom;
  x.group = hq / hkv;
  x.scale = static_cast<T>(opts.scale ? *opts.scale : (d > 0 ? 1.0 / std::sqrt(double(d)) : 1.0));
  x.dropout = opts.dropout;

  using Activation = typename Policy::activation_type;
  constexpr bool heads = Activation::normalization == policy::Normalization::over_heads;
  const bool decode = !heads && opts.decode != DecodeMode::never && x.group * nq <= query_tile &&
                      (opts.decode == DecodeMode::always || nk >= 4 * decode_chunk);
  simd::dispatch([&](auto arch) {
    using Arch = decltype(arch);
    constexpr index_t W = static_cast<index_t>(xsimd::batch<T, Arch>::size);
    x.dvp = (dv + W - 1) / W * W;
    x.v_direct = v.stride(3) == 1 && dv % W == 0;
    const FusedKernel<Arch, T, Policy> kernel{bound, x};
    if constexpr (heads) {
      kernel.run_head_softmax();
    } else {
      if (decode) {
        kernel.run_decode();
      } else {
        kernel.run_prefill();
      }
    }
  });
}

}  // namespace attention_detail

/// Fused attention: out[b, h, i, :] = Σ_j P[b, h, i, j] · v[b, h / (Hq / Hkv), j, :] with P as
/// docs/CLI.md defines it for the policy's activation, mask, score mod and gate.
/// Shapes: q [B, Hq, Nq, D], k [B, Hkv, Nk, D], v [B, Hkv, Nk, Dv], out [B, Hq, Nq, Dv], Hq a
/// multiple of Hkv; any strides. Throws shape_error naming the argument and both shapes.
/// Results are identical bit for bit for any thread count.
/// \tparam Policy an attnkit::policy::AttentionPolicy
/// \tparam T float or double
template <class Policy, class T>
void attention(const Policy& policy, std::type_identity_t<TensorView<const T, 4>> q,
               std::type_identity_t<TensorView<const T, 4>> k,
               std::type_identity_t<TensorView<const T, 4>> v, TensorView<T, 4> out,
               const AttentionOptions& options = {}) {
  attention_detail::run<T>(policy, q, k, v, out, TensorView<T, 4>{}, false, options);
}

/// Like attention() above and also writes the weights P into `probs` [B, Hq, Nq, Nk] (N² memory,
/// the caller's; the values are the kernel's own P, normalized).
template <class Policy, class T>
void attention(const Policy& policy, std::type_identity_t<TensorView<const T, 4>> q,
               std::type_identity_t<TensorView<const T, 4>> k,
               std::type_identity_t<TensorView<const T, 4>> v, TensorView<T, 4> out,
               std::type_identity_t<TensorView<T, 4>> probs, const AttentionOptions& options = {}) {
  attention_detail::run<T>(policy, q, k, v, out, probs, true, options);
}

/// attention<Policy>(q, k, v, out): a default-constructed policy (no runtime values).
template <class Policy, class T>
requires policy::is_attention_policy<Policy>
void attention(std::type_identity_t<TensorView<const T, 4>> q,
               std::type_identity_t<TensorView<const T, 4>> k,
               std::type_identity_t<TensorView<const T, 4>> v, TensorView<T, 4> out,
               const AttentionOptions& options = {}) {
  attention_detail::run<T>(Policy{}, q, k, v, out, TensorView<T, 4>{}, false, options);
}

}  // namespace attnkit
