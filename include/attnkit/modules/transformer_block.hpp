// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// TransformerBlock: self-attention and a feed-forward module, each in a residual branch with a
// norm before it (PreNorm: LLaMA, GPT-2) or after the sum (PostNorm: the original Transformer).
#pragma once

#include <span>
#include <type_traits>

#include "attnkit/block/norm.hpp"
#include "attnkit/core/scratch_stack.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/modules/multi_head_attention.hpp"

namespace attnkit::modules {

/// A transformer block over x [B, N, H]:
///   PreNorm:  x = x + attn(norm1(x));  x = x + ffn(norm2(x))
///   PostNorm: x = norm1(x + attn(x));  x = norm2(x + ffn(x))
/// \tparam Policy the attention policy of the MultiHeadAttention
/// \tparam Norm a norm_policy (RMSNorm, LayerNorm, or SelectableNorm: either, chosen at run time)
/// \tparam Placement PreNorm or PostNorm, or SelectablePlacement (chosen at run time)
/// \tparam FFN a feed-forward module callable as ffn(TensorView<const T, 2> x, TensorView<T, 2> y)
///   (SwiGLU<T>, GeluMLP<T>, MixtureOfExperts<T>, or SelectableFeedForward<T>: one of them)
/// \tparam T float or double
template <class Policy, class Norm, class Placement, class FFN, class T = float>
struct TransformerBlock {
  static_assert(block::norm_policy<Norm>,
                "attnkit: Norm of TransformerBlock must model attnkit::block::norm_policy");
  static_assert(std::is_same_v<Placement, block::PreNorm> ||
                    std::is_same_v<Placement, block::PostNorm> ||
                    std::is_same_v<Placement, block::SelectablePlacement>,
                "attnkit: Placement of TransformerBlock must be PreNorm, PostNorm or "
                "SelectablePlacement");
  static_assert(std::is_invocable_v<const FFN&, TensorView<const T, 2>, TensorView<T, 2>>,
                "attnkit: FFN of TransformerBlock must be callable as ffn(x [M, H], y [M, H])");

  MultiHeadAttention<Policy, T> attn;
  FFN ffn;
  Norm norm{};
  Placement placement{};  ///< a tag, or SelectablePlacement's run-time choice
  TensorView<const T, 1> norm1_weight, norm1_bias;  ///< [H]; the bias may be empty
  TensorView<const T, 1> norm2_weight, norm2_bias;  ///< [H]; the bias may be empty

  /// Applies the block to x [B, N, H] in place; positions [N] for RoPE; an optional capture of
  /// the attention weights (MultiHeadAttention::forward).
  void forward(TensorView<T, 3> x, std::span<const index_t> positions,
               const AttentionCapture<T>* capture = nullptr) const {
    apply(x, [&](TensorView<const T, 3> in, TensorView<T, 3> out) {
      attn.forward(in, positions, out, capture);
    });
  }

  /// The same through a cache policy object (modules::KVCache: full, window, sinks, retention):
  /// x holds the new rows, which attend to what the cache holds (MultiHeadAttention::forward).
  template <class Cache>
  requires requires { typename Cache::kv_cache_tag; }
  void forward(TensorView<T, 3> x, std::span<const index_t> positions, Cache& cache,
               const AttentionCapture<T>* capture = nullptr) const {
    apply(x, [&](TensorView<const T, 3> in, TensorView<T, 3> out) {
      attn.forward(in, positions, out, cache, capture);
    });
  }

 private:
  template <class Attend>
  void apply(TensorView<T, 3> x, Attend&& attend) const {
    if (!x.is_contiguous()) throw shape_error("attnkit: TransformerBlock: x must be contiguous");
    const index_t nb = x.extent(0), n = x.extent(1), h = x.extent(2), m = nb * n;
    ScratchFrame frame;  // no allocation per call (core/scratch_stack.hpp)
    const TensorView<T, 3> t = frame.tensor<T>(Shape<3>{nb, n, h});
    const TensorView<T, 3> y = frame.tensor<T>(Shape<3>{nb, n, h});
    const TensorView<T, 2> x2(x.data(), {m, h}), t2(t.data(), {m, h}), y2(y.data(), {m, h});
    auto add = [&] {
      for (index_t k = 0; k < x.size(); ++k) x.data()[k] += y.data()[k];
    };
    bool post = std::is_same_v<Placement, block::PostNorm>;
    if constexpr (std::is_same_v<Placement, block::SelectablePlacement>) post = placement.post;
    if (!post) {
      block::normalize_rows<Norm, T>(norm, x2, norm1_weight, norm1_bias, t2);
      attend(TensorView<const T, 3>(t), y);
      add();
      block::normalize_rows<Norm, T>(norm, x2, norm2_weight, norm2_bias, t2);
      ffn(TensorView<const T, 2>(t2), y2);
      add();
    } else {
      attend(TensorView<const T, 3>(x), y);
      add();
      block::normalize_rows<Norm, T>(norm, x2, norm1_weight, norm1_bias, x2);
      ffn(TensorView<const T, 2>(x2), y2);
      add();
      block::normalize_rows<Norm, T>(norm, x2, norm2_weight, norm2_bias, x2);
    }
  }
};

}  // namespace attnkit::modules
