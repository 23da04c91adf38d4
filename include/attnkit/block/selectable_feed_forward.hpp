// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// SelectableFeedForward: a feed-forward module chosen at run time (SwiGLU, the GELU MLP or a
// top-k mixture of experts), as a model folder's config.json chooses it.
#pragma once

#include <concepts>
#include <variant>

#include "attnkit/block/feed_forward.hpp"
#include "attnkit/block/moe.hpp"
#include "attnkit/core/tensor_view.hpp"

namespace attnkit::block {

/// One of SwiGLU<T> (default), GeluMLP<T> or MixtureOfExperts<T>, chosen at run time. Callable
/// as ffn(x [M, H], y [M, H]) like each of them, so TransformerBlock takes it as its FFN; the
/// choice is read once per call.
/// \tparam T float or double
template <std::floating_point T>
struct SelectableFeedForward {
  std::variant<SwiGLU<T>, GeluMLP<T>, MixtureOfExperts<T>> module;

  SelectableFeedForward() = default;
  /// \param m the module to run
  SelectableFeedForward(SwiGLU<T> m) : module(std::move(m)) {}
  SelectableFeedForward(GeluMLP<T> m) : module(std::move(m)) {}
  SelectableFeedForward(MixtureOfExperts<T> m) : module(std::move(m)) {}

  /// "swiglu", "gelu" or "moe" (the config.json spelling of `attnkit_mlp`).
  const char* name() const noexcept {
    switch (module.index()) {
      case 1:
        return "gelu";
      case 2:
        return "moe";
      default:
        return "swiglu";
    }
  }

  /// Bytes of the chosen module's weights in their stored dtype.
  std::size_t weight_bytes() const noexcept {
    return std::visit([](const auto& m) { return m.weight_bytes(); }, module);
  }

  /// y [M, H] = the chosen module applied to x [M, H]. y must not alias x.
  void operator()(TensorView<const T, 2> x, TensorView<T, 2> y) const {
    std::visit([&](const auto& m) { m(x, y); }, module);
  }
};

}  // namespace attnkit::block
