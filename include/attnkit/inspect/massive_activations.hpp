// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Massive activations: hidden-state entries far above the median magnitude of their layer
// (Sun et al. 2024 find a few channels 10^3-10^4 times the median, mostly on the first token).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "attnkit/core/tensor_view.hpp"
#include "attnkit/model/decoder.hpp"

namespace attnkit::inspect {

/// One hidden-state entry: where it is, its value and |value| / median |h| of its layer.
struct MassiveActivation {
  index_t layer = -1;
  index_t token = -1;
  index_t channel = -1;
  double value = 0.0;
  double ratio_to_median = 0.0;
};

/// When an entry counts as massive.
struct MassiveOptions {
  double min_ratio = 100.0;      ///< |h| >= min_ratio · median |h| of the layer
  double min_value = 0.0;        ///< and |h| >= min_value
  std::size_t max_reports = 64;  ///< keep at most this many, the largest ratios first
};

/// Collects massive activations from the hidden states of one pass, layer by layer: give it to
/// capture_prefill or to DecoderHooks::hidden through observe(). The median is over every entry
/// of the layer's [N, hidden] state (the mean of the two middle values for an even count); a
/// layer whose median is 0 reports nothing.
class MassiveActivationDetector {
 public:
  explicit MassiveActivationDetector(MassiveOptions opts = {}) : opts_(opts) {}

  /// Scans the hidden state `h` [N, hidden] after layer `layer`.
  /// \tparam T float or double
  template <class T>
  void observe(index_t layer, TensorView<const T, 2> h) {
    const index_t n = h.extent(0), c = h.extent(1);
    if (n * c == 0) return;
    std::vector<double> mag;
    mag.reserve(static_cast<std::size_t>(n * c));
    for (index_t t = 0; t < n; ++t)
      for (index_t ch = 0; ch < c; ++ch) mag.push_back(std::fabs(static_cast<double>(h(t, ch))));
    const std::size_t mid = mag.size() / 2;
    std::nth_element(mag.begin(), mag.begin() + static_cast<std::ptrdiff_t>(mid), mag.end());
    double median = mag[mid];
    if (mag.size() % 2 == 0)
      median = 0.5 * (median + *std::max_element(mag.begin(),
                                                 mag.begin() + static_cast<std::ptrdiff_t>(mid)));
    if (!(median > 0)) return;
    for (index_t t = 0; t < n; ++t)
      for (index_t ch = 0; ch < c; ++ch) {
        const double x = static_cast<double>(h(t, ch));
        const MassiveActivation m{layer, t, ch, x, std::fabs(x) / median};
        if (largest_.layer < 0 || m.ratio_to_median > largest_.ratio_to_median) largest_ = m;
        if (m.ratio_to_median >= opts_.min_ratio && std::fabs(x) >= opts_.min_value)
          found_.push_back(m);
      }
    std::stable_sort(found_.begin(), found_.end(), [](const auto& a, const auto& b) {
      return a.ratio_to_median > b.ratio_to_median;
    });
    if (found_.size() > opts_.max_reports) found_.resize(opts_.max_reports);
  }

  /// The massive activations found so far, largest ratio first.
  const std::vector<MassiveActivation>& found() const noexcept { return found_; }
  /// The entry with the largest ratio seen so far, massive or not (layer -1 before any).
  const MassiveActivation& largest() const noexcept { return largest_; }
  const MassiveOptions& options() const noexcept { return opts_; }

 private:
  MassiveOptions opts_;
  std::vector<MassiveActivation> found_;
  MassiveActivation largest_;
};

/// Runs the prefill pass of `model` on `ids` and returns the detector that saw every layer.
/// \tparam Policy the decoder's attention policy
/// \tparam T float or double
template <class Policy, class T, class Layer>
MassiveActivationDetector find_massive_activations(const model::Decoder<Policy, T, Layer>& model,
                                                   std::span<const std::int64_t> ids,
                                                   const MassiveOptions& opts = {}) {
  MassiveActivationDetector det(opts);
  model::DecoderHooks<T> hooks;
  hooks.hidden = [&](index_t l, TensorView<const T, 2> h) { det.observe<T>(l, h); };
  model.forward(ids, hooks);
  return det;
}

}  // namespace attnkit::inspect
