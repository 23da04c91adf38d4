// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Rotary position embedding (RoPE, Su et al. 2021) in the Hugging Face rotate-half form and the
// interleaved (GPT-J / original LLaMA) form, at positions the caller gives.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/core/scratch_stack.hpp"
#include "attnkit/core/tensor_view.hpp"

namespace attnkit::block {

/// Which pairs of channels RoPE rotates together.
enum class RopeStyle : std::uint8_t {
  /// (x[i], x[i + R/2]) for i < R/2: Hugging Face `rotate_half` (LLaMA, Mistral, Qwen in HF).
  rotate_half,
  /// (x[2i], x[2i + 1]): GPT-J and Meta's original LLaMA code (complex multiplication).
  interleaved,
};

/// How a checkpoint stretches RoPE's frequencies for contexts longer than it was trained on
/// (config.json's `rope_scaling`), as Hugging Face computes them:
///   none     inv_freq unchanged;
///   linear   inv_freq / factor (position interpolation);
///   llama3   LLaMA 3.1: with L = original_max_position_embeddings and wavelength w = 2π /
///            inv_freq, frequencies with w < L / high_freq_factor stay, those with
///            w > L / low_freq_factor are divided by factor, and the ones between blend the two
///            with s = (L / w - low_freq_factor) / (high_freq_factor - low_freq_factor):
///            (1 - s) · inv_freq / factor + s · inv_freq;
///   dynamic  NTK-aware scaling that follows the sequence: a call whose positions reach
///            seq_len = (largest position + 1) > max_position_embeddings (M) uses the base
///            theta · (factor · seq_len / M - (factor - 1))^(R / (R - 2)); shorter calls, theta.
///            This is Hugging Face's dynamic RoPE on a freshly loaded model: each call's new rows
///            (and, with a KV cache, the keys they add) are rotated with that call's frequencies.
struct RopeScaling {
  enum class Kind : std::uint8_t { none, linear, llama3, dynamic };
  Kind kind = Kind::none;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  double original_max_position_embeddings = 8192.0;
  double max_position_embeddings = 2048.0;  ///< M of dynamic

  /// The scaled frequencies (dynamic: unchanged, the call picks them); throws attnkit::error for
  /// parameters outside their range.
  std::vector<double> apply(std::vector<double> inv_freq) const {
    if (kind == Kind::none) return inv_freq;
    if (!(factor > 0) || !std::isfinite(factor))
      throw error("attnkit: RopeScaling: factor must be finite and > 0");
    if (kind == Kind::linear) {
      for (double& f : inv_freq) f /= factor;
      return inv_freq;
    }
    if (kind == Kind::dynamic) {
      if (!(max_position_embeddings >= 1) || !std::isfinite(max_position_embeddings))
        throw error("attnkit: RopeScaling: dynamic needs max_position_embeddings >= 1");
      return inv_freq;
    }
    if (!(low_freq_factor > 0) || !(high_freq_factor > low_freq_factor) ||
        !std::isfinite(high_freq_factor) || !(original_max_position_embeddings > 0) ||
        !std::isfinite(original_max_position_embeddings))
      throw error(
          "attnkit: RopeScaling: llama3 needs 0 < low_freq_factor < high_freq_factor and "
          "original_max_position_embeddings > 0");
    const double pi = 3.14159265358979323846;
    const double low_wavelen = original_max_position_embeddings / low_freq_factor;
    const double high_wavelen = original_max_position_embeddings / high_freq_factor;
    for (double& f : inv_freq) {
      const double wavelen = 2 * pi / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f /= factor;
        continue;
      }
      const double s = (original_max_position_embeddings / wavelen - low_freq_factor) /
                       (high_freq_factor - low_freq_factor);
      f = (1 - s) * f / factor + s * f;
    }
    return inv_freq;
  }
};

/// RoPE over the first `rotary_dim` channels of each head (the rest pass through). Pair i is
/// rotated by the angle pos · inv_freq[i], inv_freq[i] = theta^(-2i / rotary_dim), i < R/2.
/// Angles, cosines and sines are computed in double and rounded once to T.
///
/// Positions are given per query/key row, so a KV cache can assign them (they need not be
/// 0..N-1 or increasing).
class RoPE {
 public:
  /// \param rotary_dim R, even and >= 2 (usually the head dimension)
  /// \param theta the base (10000 in LLaMA 1/2, 500000 in LLaMA 3)
  /// \param style rotate-half (Hugging Face) or interleaved
  /// \param scaling how the frequencies are stretched (RopeScaling; none by default)
  RoPE(index_t rotary_dim, double theta = 10000.0, RopeStyle style = RopeStyle::rotate_half,
       const RopeScaling& scaling = {})
      : dim_(rotary_dim), theta_(theta), style_(style), scaling_(scaling) {
    if (rotary_dim < 2 || rotary_dim % 2 != 0)
      throw error("attnkit: RoPE: rotary_dim must be even and >= 2, got " +
                  std::to_string(rotary_dim));
    if (!(theta > 0) || !std::isfinite(theta))
      throw error("attnkit: RoPE: theta must be finite and > 0");
    if (scaling.kind == RopeScaling::Kind::dynamic && rotary_dim < 4)
      throw error("attnkit: RoPE: dynamic scaling needs rotary_dim >= 4");
    inv_freq_.resize(static_cast<std::size_t>(dim_ / 2));
    for (index_t i = 0; i < dim_ / 2; ++i)
      inv_freq_[static_cast<std::size_t>(i)] =
          std::pow(theta_, -2.0 * static_cast<double>(i) / static_cast<double>(dim_));
    inv_freq_ = scaling.apply(std::move(inv_freq_));
  }

  index_t rotary_dim() const noexcept { return dim_; }
  double theta() const noexcept { return theta_; }
  RopeStyle style() const noexcept { return style_; }
  /// inv_freq[i] = theta^(-2i / R), i < R/2 (then scaled, see RopeScaling).
  const std::vector<double>& inv_freq() const noexcept { return inv_freq_; }
  const RopeScaling& scaling() const noexcept { return scaling_; }

  /// The frequencies of a call whose largest position is `last`: inv_freq(), or with dynamic
  /// scaling past max_position_embeddings those of the grown base (RopeScaling).
  std::vector<double> frequencies(index_t last) const {
    const double seq_len = static_cast<double>(last) + 1;
    if (scaling_.kind != RopeScaling::Kind::dynamic || seq_len <= scaling_.max_position_embeddings)
      return inv_freq_;
    const double r = static_cast<double>(dim_);
    const double base =
        theta_ * std::pow(scaling_.factor * seq_len / scaling_.max_position_embeddings -
                              (scaling_.factor - 1),
                          r / (r - 2));
    std::vector<double> f(inv_freq_.size());
    for (std::size_t i = 0; i < f.size(); ++i) f[i] = std::pow(base, -2.0 * double(i) / r);
    return f;
  }

  /// Rotates x [B, H, N, D] in place: row n of every (b, h) is at position positions[n].
  /// D >= rotary_dim; any strides. Throws shape_error when positions has not N entries or D is
  /// smaller than rotary_dim.
  /// \tparam T float or double
  template <std::floating_point T>
  void apply(TensorView<T, 4> x, std::span<const index_t> positions) const {
    rotate(x, positions, false);
  }

  /// The inverse (and transpose) of apply: rotates x [B, H, N, D] back by the angles of
  /// `positions`. apply is orthogonal, so this is also its backward: it maps the gradient of
  /// apply's output to the gradient of its input. Same arguments and errors as apply.
  /// \tparam T float or double
  template <std::floating_point T>
  void apply_inverse(TensorView<T, 4> x, std::span<const index_t> positions) const {
    rotate(x, positions, true);
  }

 private:
  template <std::floating_point T>
  void rotate(TensorView<T, 4> x, std::span<const index_t> positions, bool inverse) const {
    const index_t nb = x.extent(0), nh = x.extent(1), n = x.extent(2), d = x.extent(3);
    if (static_cast<index_t>(positions.size()) != n)
      throw shape_error(
          std::string(inverse ? "attnkit: RoPE::apply_inverse: " : "attnkit: RoPE::apply: ") +
          std::to_string(positions.size()) + " positions for x of shape " +
          shape_string(x.shape()) + " (needs one per row, " + std::to_string(n) + ")");
    if (d < dim_)
      throw shape_error(
          std::string(inverse ? "attnkit: RoPE::apply_inverse: " : "attnkit: RoPE::apply: ") +
          "x of shape " + shape_string(x.shape()) + " has head dimension " + std::to_string(d) +
          " < rotary_dim " + std::to_string(dim_));
    if (x.size() == 0) return;
    const index_t half = dim_ / 2;
    // Only dynamic scaling picks the frequencies per call (from the largest position).
    std::vector<double> grown;
    const std::vector<double>* freq = &inv_freq_;
    if (scaling_.kind == RopeScaling::Kind::dynamic) {
      index_t last = 0;
      for (index_t p : positions) last = std::max(last, p);
      grown = frequencies(last);
      freq = &grown;
    }
    ScratchFrame frame;  // no allocation per call (core/scratch_stack.hpp)
    const std::span<T> cs = frame.array<T>(n * half), sn = frame.array<T>(n * half);
    for (index_t r = 0; r < n; ++r)
      for (index_t i = 0; i < half; ++i) {
        const double a = static_cast<double>(positions[static_cast<std::size_t>(r)]) *
                         (*freq)[static_cast<std::size_t>(i)];
        cs[static_cast<std::size_t>(r * half + i)] = static_cast<T>(std::cos(a));
        sn[static_cast<std::size_t>(r * half + i)] =
            static_cast<T>(inverse ? -std::sin(a) : std::sin(a));
      }
    const index_t s3 = x.stride(3);
    const index_t lo_step = style_ == RopeStyle::rotate_half ? 1 : 2;
    const index_t hi_off = style_ == RopeStyle::rotate_half ? half : 1;
    auto one = [&](long bh) {
      const index_t b = bh / nh, h = bh % nh;
      for (index_t r = 0; r < n; ++r) {
        T* row = x.data() + b * x.stride(0) + h * x.stride(1) + r * x.stride(2);
        const T* c = cs.data() + r * half;
        const T* s = sn.data() + r * half;
        for (index_t i = 0; i < half; ++i) {
          T& lo = row[i * lo_step * s3];
          T& hi = row[(i * lo_step + hi_off) * s3];
          const T x1 = lo, x2 = hi;
          lo = x1 * c[i] - x2 * s[i];
          hi = x2 * c[i] + x1 * s[i];
        }
      }
    };
    if (x.size() >= 65536) {
      parallel_for(static_cast<long>(nb * nh), one);
    } else {
      for (long bh = 0; bh < nb * nh; ++bh) one(bh);
    }
  }

  index_t dim_;
  double theta_;
  RopeStyle style_;
  RopeScaling scaling_;
  std::vector<double> inv_freq_;
};

}  // namespace attnkit::block
