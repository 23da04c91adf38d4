// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Statistics of captured attention weights per (layer, head): row sums, min/max, entropy, sink
// mass, sparsity, max |ΔP| against softmax on the same inputs, and keyword mass.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/inspect/capture.hpp"

namespace attnkit::inspect {

/// Parameters of the statistics.
struct StatsOptions {
  index_t sink_keys = 4;             ///< k: the first k keys are the sinks (StreamingLLM keeps 4)
  double sparsity_threshold = 0.01;  ///< a visible weight with |P| below this counts as sparse
};

/// Minimum, maximum and mean over the rows.
struct RowSumStats {
  double min = 0.0;
  double max = 0.0;
  double mean = 0.0;
};

/// The statistics of one (layer, head) over its captured rows. Weights of invisible (masked)
/// pairs are exactly 0 under every activation; min, max and sparsity look at visible pairs only.
struct HeadStats {
  index_t layer = 0;
  index_t head = 0;
  index_t rows = 0;  ///< captured query rows
  /// Σ_j P_ij per row (1 for softmax and normalized sigmoid; anything for sigmoid and linear).
  RowSumStats row_sum;
  double min = 0.0;  ///< smallest visible P_ij
  double max = 0.0;  ///< largest visible P_ij
  /// Mean over rows of the Shannon entropy (nats) of the row's distribution |P_ij| / Σ_j |P_ij|
  /// (for softmax rows that is P itself); rows whose weights are all 0 are skipped.
  double entropy = 0.0;
  /// Mean over rows of the share of the row's weight on the first k keys,
  /// Σ_{j<k} |P_ij| / Σ_j |P_ij| (the attention sink); only rows that see a key at j >= k count
  /// (under a causal mask rows i < k see nothing else), all rows when none does.
  double sink_mass = 0.0;
  /// Fraction of the visible pairs with |P_ij| < threshold.
  double sparsity = 0.0;
  /// max |P_ij - softmax_ij| with softmax computed on the same q, k, mask and score mod; NaN
  /// when no reference was captured.
  double max_abs_dp_vs_softmax = std::numeric_limits<double>::quiet_NaN();
};

/// The statistics of weights `probs` [R, Nk] with the visible set `visible` [R, Nk] (empty: all
/// pairs visible) and the softmax reference `softmax` [R, Nk] (empty: none).
/// \tparam T float or double
template <class T>
HeadStats attention_stats(TensorView<const T, 2> probs, TensorView<const std::uint8_t, 2> visible,
                          TensorView<const T, 2> softmax, const StatsOptions& opts = {}) {
  const index_t nr = probs.extent(0), nk = probs.extent(1);
  if (visible.data() != nullptr && visible.shape() != probs.shape())
    throw_shape_mismatch("attention_stats", "visible", visible.shape(), probs.shape());
  if (softmax.data() != nullptr && softmax.shape() != probs.shape())
    throw_shape_mismatch("attention_stats", "softmax", softmax.shape(), probs.shape());
  const bool all_visible = visible.data() == nullptr;
  const index_t k = std::max<index_t>(0, opts.sink_keys);
  HeadStats s;
  s.rows = nr;
  double rs_sum = 0, ent_sum = 0, sink_any = 0, sink_qual = 0;
  index_t ent_rows = 0, any_rows = 0, qual_rows = 0, vis = 0, sparse = 0;
  bool first = true;
  s.row_sum.min = std::numeric_limits<double>::infinity();
  s.row_sum.max = -std::numeric_limits<double>::infinity();
  double dp = 0;
  for (index_t r = 0; r < nr; ++r) {
    double sum = 0, total = 0, head = 0;
    bool beyond = false;
    for (index_t j = 0; j < nk; ++j) {
      const double p = static_cast<double>(probs(r, j));
      sum += p;
      total += std::fabs(p);
      if (j < k) head += std::fabs(p);
      if (softmax.data() != nullptr)
        dp = std::max(dp, std::fabs(p - static_cast<double>(softmax(r, j))));
      if (!all_visible && visible(r, j) == 0) continue;
      beyond = beyond || j >= k;
      ++vis;
      if (std::fabs(p) < opts.sparsity_threshold) ++sparse;
      if (first) {
        s.min = s.max = p;
        first = false;
      } else {
        s.min = std::min(s.min, p);
        s.max = std::max(s.max, p);
      }
    }
    rs_sum += sum;
    s.row_sum.min = std::min(s.row_sum.min, sum);
    s.row_sum.max = std::max(s.row_sum.max, sum);
    if (total > 0) {
      double h = 0;
      for (index_t j = 0; j < nk; ++j) {
        const double qj = std::fabs(static_cast<double>(probs(r, j))) / total;
        if (qj > 0) h -= qj * std::log(qj);
      }
      ent_sum += h;
      ++ent_rows;
      sink_any += head / total;
      ++any_rows;
      if (beyond) {
        sink_qual += head / total;
        ++qual_rows;
      }
    }
  }
  if (nr == 0)
    s.row_sum = RowSumStats{};
  else
    s.row_sum.mean = rs_sum / static_cast<double>(nr);
  s.entropy = ent_rows > 0 ? ent_sum / static_cast<double>(ent_rows) : 0.0;
  s.sink_mass = qual_rows > 0  ? sink_qual / static_cast<double>(qual_rows)
                : any_rows > 0 ? sink_any / static_cast<double>(any_rows)
                               : 0.0;
  s.sparsity = vis > 0 ? static_cast<double>(sparse) / static_cast<double>(vis) : 0.0;
  if (softmax.data() != nullptr) s.max_abs_dp_vs_softmax = dp;
  return s;
}

/// The statistics of one captured (layer, head).
template <class T>
HeadStats attention_stats(const HeadCapture<T>& c, const StatsOptions& opts = {}) {
  HeadStats s =
      attention_stats<T>(c.probs.cview(), c.visible.cview(),
                         c.softmax.empty() ? TensorView<const T, 2>{} : c.softmax.cview(), opts);
  s.layer = c.layer;
  s.head = c.head;
  return s;
}

/// Keyword attention: the share of each row's weight on the key positions `keys`,
/// Σ_{j∈keys} |P_ij| / Σ_j |P_ij| (for softmax: the weight itself), averaged over the rows that
/// see at least one of them (`visible` empty: every row); repeated positions count once. 0 when
/// no row sees any.
/// \tparam T float or double
template <class T>
double keyword_mass(TensorView<const T, 2> probs, TensorView<const std::uint8_t, 2> visible,
                    std::span<const index_t> keys) {
  const index_t nr = probs.extent(0), nk = probs.extent(1);
  if (visible.data() != nullptr && visible.shape() != probs.shape())
    throw_shape_mismatch("keyword_mass", "visible", visible.shape(), probs.shape());
  std::vector<index_t> uniq(keys.begin(), keys.end());
  std::sort(uniq.begin(), uniq.end());
  uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
  for (index_t j : uniq)
    if (j < 0 || j >= nk)
      throw error("attnkit: keyword_mass: key position " + std::to_string(j) + " is outside [0, " +
                  std::to_string(nk) + ")");
  double acc = 0;
  index_t counted = 0;
  for (index_t r = 0; r < nr; ++r) {
    bool sees = visible.data() == nullptr;
    double on = 0, total = 0;
    for (index_t j : uniq) {
      sees = sees || visible(r, j) != 0;
      on += std::fabs(static_cast<double>(probs(r, j)));
    }
    if (!sees) continue;
    for (index_t j = 0; j < nk; ++j) total += std::fabs(static_cast<double>(probs(r, j)));
    if (total > 0) acc += on / total;
    ++counted;
  }
  return counted > 0 ? acc / static_cast<double>(counted) : 0.0;
}

/// Keyword attention of one captured (layer, head); `keys` are key positions (token positions).
template <class T>
double keyword_mass(const HeadCapture<T>& c, std::span<const index_t> keys) {
  return keyword_mass<T>(c.probs.cview(), c.visible.cview(), keys);
}

}  // namespace attnkit::inspect
