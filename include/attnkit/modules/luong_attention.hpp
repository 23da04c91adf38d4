// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// LuongAttention<Activation, T>: Luong's global attention of decoder states over an encoder
// memory with the dot, general and concat scores, for encoder–decoder models.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>

#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/kernel/gemm.hpp"
#include "attnkit/modules/detail/encoder_decoder.hpp"
#include "attnkit/policy/activation.hpp"
#include "attnkit/policy/concepts.hpp"

namespace attnkit::modules {

/// The score functions of Luong, Pham & Manning (2015), for a decoder state s and an encoder
/// state h.
enum class LuongScore : std::uint8_t {
  dot,      ///< sᵀ h (Dq = Dk)
  general,  ///< (W s)ᵀ h, W [Dk, Dq] (Luong's sᵀ W_a h with W = W_aᵀ; OpenNMT's linear_in)
  concat,   ///< vᵀ tanh(W [s; h]), W [A, Dq + Dk], v [A]
};

/// Luong's global attention:
///   e[b, i, j] = scale · score(query[b, i], memory[b, j])  (LuongScore)
///   P[b, i, :] = activation over the visible keys j < lengths[b] (softmax by default; P = 0
///                for the padding keys, and a row with no visible key is 0)
///   context[b, i] = Σ_j P[b, i, j] · memory[b, j]
/// Shapes as AdditiveAttention: query [B, Nq, Dq], memory [B, Nk, Dk], context [B, Nq, Dk],
/// weights (optional capture of P) [B, Nq, Nk], lengths (optional key padding) B values in
/// [0, Nk]; any strides. The dot and general scores are batched GEMMs (general first projects
/// the query: W is torch.nn.Linear(Dq, Dk, bias=False).weight); concat is additive attention
/// with W split into its query and memory columns. Luong's attentional state
/// tanh(W_c [context; s]) belongs to the model around this module. The score is chosen at run
/// time, so the three share one instantiation.
/// \tparam Activation a policy::score_activation normalized over keys or not at all
/// \tparam T float or double
template <class Activation = policy::Softmax, class T = float>
class LuongAttention {
  static_assert(policy::score_activation<Activation>,
                "attnkit: Activation of LuongAttention must model "
                "attnkit::policy::score_activation");
  static_assert(Activation::normalization != policy::Normalization::over_heads,
                "attnkit: Activation of LuongAttention must not normalize over heads "
                "(encoder-decoder attention has one head): use Softmax or an elementwise one");
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit: T of LuongAttention must be float or double");

 public:
  LuongScore score = LuongScore::dot;
  TensorView<const T, 2> weight;  ///< general: [Dk, Dq]; concat: [A, Dq + Dk]; dot: unused
  TensorView<const T, 1> v;       ///< concat: [A]; otherwise unused
  double scale = 1.0;             ///< 1 as in Luong; 1 / sqrt(Dk) gives scaled dot-product
  Activation activation{};        ///< how scores become weights (softmax by default)

  /// context = attention of query over memory (see the class comment); weights, when not empty,
  /// receives P. Throws shape_error naming the argument and both shapes.
  void forward(TensorView<const T, 3> query, TensorView<const T, 3> memory,
               TensorView<T, 3> context, std::span<const index_t> lengths = {},
               TensorView<T, 3> weights = {}) const {
    namespace ed = detail;
    ed::check_call<T>("LuongAttention", query, memory, context, lengths, weights);
    const index_t nb = query.extent(0), nq = query.extent(1), dq = query.extent(2);
    const index_t nk = memory.extent(1), dk = memory.extent(2);
    Tensor<T, 3> p({nb, nq, nk});  // [B, Nq, Nk]: scores, then weights
    if (score == LuongScore::concat) {
      if (weight.extent(1) != dq + dk || v.extent(0) != weight.extent(0))
        throw shape_error("attnkit: LuongAttention: concat needs weight [A, Dq + Dk = " +
                          std::to_string(dq + dk) + "] and v [A], got weight " +
                          shape_string(weight.shape()) + " and v " + shape_string(v.shape()));
      Tensor<T, 3> qp, kp;  // [B, Nq, A], [B, Nk, A]
      ed::project<T>(query, weight.slice(0, dq, 1), {}, qp);
      ed::project<T>(memory, weight.slice(dq, dq + dk, 1), {}, kp);
      ed::additive_scores<T>(qp, kp, v, lengths, p);
      if (scale != 1.0)
        for (T& e : p) e *= static_cast<T>(scale);
    } else {
      TensorView<const T, 3> q = query;
      Tensor<T, 3> qp;
      if (score == LuongScore::general) {
        if (weight.shape() != Shape<2>{dk, dq})
          throw_shape_mismatch("LuongAttention", "general weight", weight.shape(),
                               Shape<2>{dk, dq});
        ed::project<T>(query, weight, {}, qp);  // [B, Nq, Dk]
        q = qp.cview();
      } else if (dq != dk) {
        throw shape_error("attnkit: LuongAttention: the dot score needs Dq = Dk, got query " +
                          shape_string(query.shape()) + " and memory " +
                          shape_string(memory.shape()));
      }
      // e[b] = scale · q[b] · memory[b]ᵀ
      kernel::gemm_batched<T>(nb, nq, nk, dk, static_cast<T>(scale),
                              {q.data(), q.stride(1), q.stride(2)}, q.stride(0),
                              {memory.data(), memory.stride(2), memory.stride(1)}, memory.stride(0),
                              T(0), {p.data(), nk, 1}, nq * nk);
    }
    ed::activate_rows(activation, lengths, p);
    ed::weighted_memory<T>(p, memory, lengths, context, weights);
  }
};

}  // namespace attnkit::modules
