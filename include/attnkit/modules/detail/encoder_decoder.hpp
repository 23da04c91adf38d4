// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The shared steps of the encoder–decoder attentions (AdditiveAttention, LuongAttention): shape
// checks, row projections on kernel::gemm, additive scores v·tanh(q' + k'), the activation over
// the visible keys of each score row, and context = P · memory.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "attnkit/block/linear.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/kernel/gemm.hpp"
#include "attnkit/policy/concepts.hpp"
#include "attnkit/simd/arch.hpp"
#include "attnkit/simd/rows.hpp"

namespace attnkit::modules::detail {

/// Checks query [B, Nq, Dq], memory [B, Nk, Dk], context [B, Nq, Dk], weights (empty or
/// [B, Nq, Nk]) and lengths (empty or B values in [0, Nk]); throws shape_error naming them.
template <class T>
void check_call(const char* who, TensorView<const T, 3> query, TensorView<const T, 3> memory,
                TensorView<T, 3> context, std::span<const index_t> lengths,
                TensorView<T, 3> weights) {
  const index_t nb = query.extent(0), nq = query.extent(1), nk = memory.extent(1),
                dk = memory.extent(2);
  if (memory.extent(0) != nb)
    throw_shape_mismatch(who, "memory", memory.shape(), Shape<3>{nb, nk, dk});
  if (context.shape() != Shape<3>{nb, nq, dk})
    throw_shape_mismatch(who, "context", context.shape(), Shape<3>{nb, nq, dk});
  if (!weights.empty() && weights.shape() != Shape<3>{nb, nq, nk})
    throw_shape_mismatch(who, "weights", weights.shape(), Shape<3>{nb, nq, nk});
  if (!lengths.empty()) {
    if (static_cast<index_t>(lengths.size()) != nb)
      throw shape_error(std::string("attnkit: ") + who + ": " + std::to_string(lengths.size()) +
                        " memory lengths for a batch of " + std::to_string(nb));
    for (index_t len : lengths)
      if (len < 0 || len > nk)
        throw shape_error(std::string("attnkit: ") + who + ": memory length " +
                          std::to_string(len) + " is outside [0, " + std::to_string(nk) + "]");
  }
}

/// Visible keys of batch entry b: lengths[b], or every key when no lengths are given.
inline index_t visible_keys(std::span<const index_t> lengths, index_t b, index_t nk) noexcept {
  return lengths.empty() ? nk : lengths[static_cast<std::size_t>(b)];
}

/// out[b] = x[b] · Wᵀ (+ bias) for every batch entry, one batched GEMM (W shared: stride 0).
/// x [B, N, in] any strides, weight [out, in] (torch.nn.Linear layout), out [B, N, out].
template <class T>
void project(TensorView<const T, 3> x, TensorView<const T, 2> weight, TensorView<const T, 1> bias,
             Tensor<T, 3>& out) {
  const index_t nb = x.extent(0), n = x.extent(1), in = x.extent(2), o = weight.extent(0);
  if (weight.extent(1) != in)
    throw_shape_mismatch("linear", "weight", weight.shape(), Shape<2>{o, in});
  if (!bias.empty() && bias.shape() != Shape<1>{o})
    throw_shape_mismatch("linear", "bias", bias.shape(), Shape<1>{o});
  out = Tensor<T, 3>({nb, n, o});
  kernel::gemm_batched<T>(nb, n, o, in, T(1), {x.data(), x.stride(1), x.stride(2)}, x.stride(0),
                          {weight.data(), weight.stride(1), weight.stride(0)}, 0, T(0),
                          {out.data(), o, 1}, n * o);
  if (!bias.empty())
    for (index_t r = 0; r < nb * n; ++r)
      for (index_t c = 0; c < o; ++c) out.data()[r * o + c] += bias(c);
}

/// scores[b, i, j] = v · tanh(qp[b, i, :] + kp[b, j, :]) for the visible keys j (the others are
/// left alone). qp [B, Nq, A], kp [B, Nk, A] (contiguous), v [A], scores [B, Nq, Nk].
template <class T>
void additive_scores(const Tensor<T, 3>& qp, const Tensor<T, 3>& kp, TensorView<const T, 1> v,
                     std::span<const index_t> lengths, Tensor<T, 3>& scores) {
  const index_t nb = qp.extent(0), nq = qp.extent(1), a = qp.extent(2), nk = kp.extent(1);
  if (kp.extent(2) != a || v.extent(0) != a)
    throw shape_error("attnkit: additive attention: the query projection has " + std::to_string(a) +
                      " outputs, the memory projection " + std::to_string(kp.extent(2)) +
                      " and v " + std::to_string(v.extent(0)));
  std::vector<T> vc(static_cast<std::size_t>(a));
  for (index_t c = 0; c < a; ++c) vc[static_cast<std::size_t>(c)] = v(c);
  simd::dispatch([&](auto arch) {
    using Arch = decltype(arch);
    // One (b, i) row per work item; each writes only its own row: thread-count independent.
    parallel_for(static_cast<long>(nb * nq), [&](long r) {
      const index_t b = static_cast<index_t>(r) / nq, i = static_cast<index_t>(r) % nq;
      const T* q = qp.data() + (b * nq + i) * a;
      T* s = scores.data() + (b * nq + i) * nk;
      std::vector<T> t(static_cast<std::size_t>(a));
      for (index_t j = 0; j < visible_keys(lengths, b, nk); ++j) {
        const T* k = kp.data() + (b * nk + j) * a;
        for (index_t c = 0; c < a; ++c) t[static_cast<std::size_t>(c)] = q[c] + k[c];
        simd::tanh_inplace<Arch>(t.data(), a);
        s[j] = simd::dot<Arch>(vc.data(), t.data(), a);
      }
    });
  });
}

/// Turns each score row [B, Nq, Nk] into weights in place: the activation over the visible keys
/// j < lengths[b] (softmax family: map, exp and normalize; a running-sum kind: map and
/// normalize; the elementwise ones: map), 0 for the others. A row with no visible key is all 0.
template <class Activation, class T>
void activate_rows(const Activation& activation, std::span<const index_t> lengths,
                   Tensor<T, 3>& scores) {
  using policy::Normalization;
  const index_t nb = scores.extent(0), nq = scores.extent(1), nk = scores.extent(2);
  const Activation act = activation.bind(policy::Geometry{nb, 1, 1, nq, nk, 0, 0});
  simd::dispatch([&](auto arch) {
    using Arch = decltype(arch);
    parallel_for(static_cast<long>(nb * nq), [&](long r) {
      const index_t b = static_cast<index_t>(r) / nq, n = visible_keys(lengths, b, nk);
      T* s = scores.data() + r * nk;
      std::fill(s + n, s + nk, T(0));
      if (n == 0) return;
      if constexpr (!policy::is_identity_map<Activation>)
        for (index_t j = 0; j < n; ++j) s[j] = static_cast<T>(act.map(static_cast<double>(s[j])));
      if constexpr (Activation::normalization == Normalization::over_keys_exp) {
        const T sum = simd::exp_shift_sum<Arch>(s, simd::row_max<Arch>(s, n), n);
        simd::scale_inplace<Arch>(s, T(1) / sum, n);
      } else if constexpr (Activation::normalization == Normalization::over_keys_sum) {
        const T sum = simd::row_sum<Arch>(s, n);
        simd::scale_inplace<Arch>(s, sum > T(0) ? T(1) / sum : T(0), n);
      }
    });
  });
}

/// context[b] = P[b] · memory[b] over the visible keys (padding rows of memory are never read,
/// so they may hold anything) and the optional copy of P into weights.
template <class T>
void weighted_memory(const Tensor<T, 3>& p, TensorView<const T, 3> memory,
                     std::span<const index_t> lengths, TensorView<T, 3> context,
                     TensorView<T, 3> weights) {
  const index_t nb = p.extent(0), nq = p.extent(1), nk = p.extent(2), dk = memory.extent(2);
  if (lengths.empty()) {
    kernel::gemm_batched<T>(nb, nq, dk, nk, T(1), {p.data(), nk, 1}, nq * nk,
                            {memory.data(), memory.stride(1), memory.stride(2)}, memory.stride(0),
                            T(0), {context.data(), context.stride(1), context.stride(2)},
                            context.stride(0));
  } else {
    for (index_t b = 0; b < nb; ++b)
      kernel::gemm<T>(
          nq, dk, lengths[static_cast<std::size_t>(b)], T(1), {p.data() + b * nq * nk, nk, 1},
          {memory.data() + b * memory.stride(0), memory.stride(1), memory.stride(2)}, T(0),
          {context.data() + b * context.stride(0), context.stride(1), context.stride(2)});
  }
  if (!weights.empty())
    for (index_t b = 0; b < nb; ++b)
      for (index_t i = 0; i < nq; ++i)
        for (index_t j = 0; j < nk; ++j) weights(b, i, j) = p(b, i, j);
}

}  // namespace attnkit::modules::detail
