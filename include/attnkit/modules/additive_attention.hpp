// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// AdditiveAttention<Activation, T>: Bahdanau (additive) attention of decoder states over an
// encoder memory, e_ij = vᵀ tanh(W_q s_i + W_k h_j + b), for encoder–decoder models.
#pragma once

#include <span>
#include <type_traits>

#include "attnkit/block/linear.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/modules/detail/encoder_decoder.hpp"
#include "attnkit/policy/activation.hpp"
#include "attnkit/policy/concepts.hpp"

namespace attnkit::modules {

/// Bahdanau additive attention (Bahdanau, Cho & Bengio 2015):
///   e[b, i, j] = vᵀ tanh(W_q · query[b, i] + b_q + W_k · memory[b, j] + b_k)
///   P[b, i, :] = activation over the visible keys j < lengths[b] of e[b, i, :] (softmax by
///                default; P = 0 for the padding keys, and a row with no visible key is 0)
///   context[b, i] = Σ_j P[b, i, j] · memory[b, j]
/// Shapes: query [B, Nq, Dq] (decoder states: all steps at once under teacher forcing, or one
/// step), memory [B, Nk, Dk] (encoder states), context [B, Nq, Dk]; weights (optional capture
/// of P) [B, Nq, Nk]; lengths (optional key padding) B values in [0, Nk]. Any strides.
/// Weights in torch.nn.Linear layout: query_proj [A, Dq], memory_proj [A, Dk] (each bias
/// optional), v [A]. The projections and P · memory run on kernel::gemm; the scores need the
/// tanh of every (i, j, a), so they are an explicit [B, Nq, Nk] buffer (no fused kernel: the
/// score is not an inner product). Results do not depend on the thread count.
/// \tparam Activation a policy::score_activation normalized over keys or not at all (Softmax,
///   Sigmoid, NormalizedSigmoid, ...; not HeadSoftmax: there is one head)
/// \tparam T float or double
template <class Activation = policy::Softmax, class T = float>
class AdditiveAttention {
  static_assert(policy::score_activation<Activation>,
                "attnkit: Activation of AdditiveAttention must model "
                "attnkit::policy::score_activation");
  static_assert(Activation::normalization != policy::Normalization::over_heads,
                "attnkit: Activation of AdditiveAttention must not normalize over heads "
                "(encoder-decoder attention has one head): use Softmax or an elementwise one");
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit: T of AdditiveAttention must be float or double");

 public:
  block::Linear<T> query_proj;   ///< W_q [A, Dq], b_q [A] or empty
  block::Linear<T> memory_proj;  ///< W_k [A, Dk], b_k [A] or empty
  TensorView<const T, 1> v;      ///< [A]
  Activation activation{};       ///< how scores become weights (softmax by default)

  /// The memory projection W_k · memory + b_k [B, Nk, A]: compute it once per source sequence
  /// and pass it to forward() at every decoding step.
  Tensor<T, 3> project_memory(TensorView<const T, 3> memory) const {
    Tensor<T, 3> kp;
    detail::project<T>(memory, memory_proj.weight.native(), memory_proj.bias, kp);
    return kp;
  }

  /// context = attention of query over memory (see the class comment); weights, when not empty,
  /// receives P. Throws shape_error naming the argument and both shapes.
  void forward(TensorView<const T, 3> query, TensorView<const T, 3> memory,
               TensorView<T, 3> context, std::span<const index_t> lengths = {},
               TensorView<T, 3> weights = {}) const {
    detail::check_call<T>("AdditiveAttention", query, memory, context, lengths, weights);
    const Tensor<T, 3> kp = project_memory(memory);
    run(query, memory, kp, context, lengths, weights);
  }

  /// forward() with the memory projection precomputed by project_memory(memory).
  void forward(TensorView<const T, 3> query, TensorView<const T, 3> memory,
               const Tensor<T, 3>& projected_memory, TensorView<T, 3> context,
               std::span<const index_t> lengths = {}, TensorView<T, 3> weights = {}) const {
    detail::check_call<T>("AdditiveAttention", query, memory, context, lengths, weights);
    const Shape<3> want{memory.extent(0), memory.extent(1), memory_proj.out_features()};
    if (projected_memory.shape() != want)
      throw_shape_mismatch("AdditiveAttention", "projected_memory", projected_memory.shape(), want);
    run(query, memory, projected_memory, context, lengths, weights);
  }

 private:
  void run(TensorView<const T, 3> query, TensorView<const T, 3> memory, const Tensor<T, 3>& kp,
           TensorView<T, 3> context, std::span<const index_t> lengths,
           TensorView<T, 3> weights) const {
    namespace ed = detail;
    Tensor<T, 3> qp;
    ed::project<T>(query, query_proj.weight.native(), query_proj.bias, qp);  // [B, Nq, A]
    Tensor<T, 3> p({query.extent(0), query.extent(1), memory.extent(1)});    // [B, Nq, Nk]
    ed::additive_scores<T>(qp, kp, v, lengths, p);
    ed::activate_rows(activation, lengths, p);
    ed::weighted_memory<T>(p, memory, lengths, context, weights);
  }
};

}  // namespace attnkit::modules
