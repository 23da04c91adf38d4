// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// AttentionDropout: seeded inverted dropout on the attention weights P, for training-time
// experiments (off by default). The fused kernel applies it to each P tile after the activation.
#pragma once

#include <cstdint>
#include <string>

#include "attnkit/core/error.hpp"
#include "attnkit/core/shape.hpp"

namespace attnkit {

/// Scaled dot-product attention dropout (inverted): each weight P[b, h, i, j] is dropped (set to
/// 0) with probability p and the kept ones are multiplied by 1 / (1 - p), as
/// torch.nn.functional.scaled_dot_product_attention(dropout_p = p) does. For training-time
/// experiments; inference leaves it off (p = 0, the default, runs exactly the dropout-free code).
///
/// Which pairs drop is a pure function of (seed, b, h, i, j) — a counter-based hash, no state —
/// so the output is the same for a seed whatever the thread count, tiling or kernel path
/// (prefill, decode, head softmax), and keeps() reproduces the mask outside the kernel. The
/// normalization (softmax sum, normalized-sigmoid sum) runs over every visible key before the
/// drop, so E[output] equals the output without dropout. Indices are those of the attention()
/// call: i is the query row of the call (not its absolute position), h the query head. Give
/// each layer and each training step its own seed. With P capture, the captured weights are the
/// ones applied (dropped and rescaled).
struct AttentionDropout {
  double p = 0.0;          ///< drop probability in [0, 1); 0 = off
  std::uint64_t seed = 0;  ///< the mask's seed

  /// Whether the dropout does anything.
  constexpr bool enabled() const noexcept { return p > 0.0; }

  /// Throws attnkit::error unless 0 <= p < 1.
  void check() const {
    if (!(p >= 0.0 && p < 1.0))
      throw error("attnkit: AttentionDropout: p must be in [0, 1), got " + std::to_string(p));
  }

  /// The factor of kept weights, 1 / (1 - p).
  constexpr double keep_scale() const noexcept { return 1.0 / (1.0 - p); }

  /// splitmix64's finalizer: a bijection of 64-bit words with full avalanche.
  static constexpr std::uint64_t mix(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  /// The hash key of row (b, h, i); computed once per row, then row_keeps() per key.
  constexpr std::uint64_t row_key(index_t b, index_t h, index_t i) const noexcept {
    std::uint64_t z = mix(seed + 0x9E3779B97F4A7C15ULL);
    z = mix(z ^ static_cast<std::uint64_t>(b));
    z = mix(z ^ (static_cast<std::uint64_t>(h) + 0x632BE59BD9B4E019ULL));
    return mix(z ^ (static_cast<std::uint64_t>(i) + 0x85157AF5B2F0E8A3ULL));
  }

  /// Whether key j of the row with `row_key` is kept: a uniform 53-bit draw u, kept iff u >= p.
  constexpr bool row_keeps(std::uint64_t row, index_t j) const noexcept {
    const std::uint64_t u =
        mix(row + (static_cast<std::uint64_t>(j) + 1) * 0x9E3779B97F4A7C15ULL) >> 11;
    return static_cast<double>(u) >= p * 9007199254740992.0;  // p · 2^53
  }

  /// Whether P[b, h, i, j] is kept (the kernel's mask, for references and tests).
  constexpr bool keeps(index_t b, index_t h, index_t i, index_t j) const noexcept {
    return row_keeps(row_key(b, h, i), j);
  }
};

}  // namespace attnkit
