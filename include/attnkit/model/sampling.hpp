// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Choosing the next token: logits processors as small composable policies (repetition penalty,
// banned tokens, temperature, top-k, top-p), greedy choice, and sampling from a seeded generator
// that gives the same tokens on every platform.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "attnkit/core/error.hpp"
#include "attnkit/core/shape.hpp"

namespace attnkit::model {

/// A logits processor: changes the next token's logits in place, given the tokens so far (the
/// prompt and the generated ones). Removing a token means setting its logit to -inf.
///
/// Requirements: `p(logits, context)` with std::span<float> logits and
/// std::span<const std::int64_t> context, callable on a const p.
template <class P>
concept logits_processor = requires(const P& p, std::span<float> logits,
                                    std::span<const std::int64_t> context) {
  p(logits, context);
};

namespace sampling_detail {
inline constexpr float minus_inf = -std::numeric_limits<float>::infinity();

/// Ids sorted by logit, largest first; ties keep the lower id first.
inline std::vector<index_t> order_by_logit(std::span<const float> logits) {
  std::vector<index_t> order(logits.size());
  std::iota(order.begin(), order.end(), index_t{0});
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
    return logits[static_cast<std::size_t>(a)] > logits[static_cast<std::size_t>(b)];
  });
  return order;
}
}  // namespace sampling_detail

/// CTRL's repetition penalty (Keskar et al. 2019, as in Hugging Face): the logit of a token that
/// occurs in the context is divided by `penalty` when positive and multiplied by it when not.
/// 1 does nothing; > 1 discourages repeats.
struct RepetitionPenalty {
  double penalty = 1.0;  ///< > 0
  void operator()(std::span<float> logits, std::span<const std::int64_t> context) const {
    if (penalty == 1.0) return;
    if (!(penalty > 0)) throw error("attnkit: RepetitionPenalty: the penalty must be > 0");
    std::vector<std::uint8_t> seen(logits.size(), 0);
    for (std::int64_t id : context)
      if (id >= 0 && static_cast<std::size_t>(id) < logits.size())
        seen[static_cast<std::size_t>(id)] = 1;
    for (std::size_t i = 0; i < logits.size(); ++i) {
      if (!seen[i]) continue;
      const double l = logits[i];
      logits[i] = static_cast<float>(l > 0 ? l / penalty : l * penalty);
    }
  }
};

/// Removes the listed token ids (ids outside the vocabulary are ignored).
struct BannedTokens {
  std::vector<std::int64_t> ids;
  void operator()(std::span<float> logits, std::span<const std::int64_t>) const {
    for (std::int64_t id : ids)
      if (id >= 0 && static_cast<std::size_t>(id) < logits.size())
        logits[static_cast<std::size_t>(id)] = sampling_detail::minus_inf;
  }
};

/// Divides the logits by the temperature (> 0); 1 does nothing.
struct Temperature {
  double value = 1.0;
  void operator()(std::span<float> logits, std::span<const std::int64_t>) const {
    if (value == 1.0) return;
    if (!(value > 0)) throw error("attnkit: Temperature: the temperature must be > 0");
    for (float& l : logits) l = static_cast<float>(double(l) / value);
  }
};

/// Keeps the k largest logits (ties: the lower id), removes the rest; 0 keeps all.
struct TopK {
  index_t k = 0;
  void operator()(std::span<float> logits, std::span<const std::int64_t>) const {
    if (k <= 0 || static_cast<std::size_t>(k) >= logits.size()) return;
    const std::vector<index_t> order = sampling_detail::order_by_logit(logits);
    for (std::size_t i = static_cast<std::size_t>(k); i < order.size(); ++i)
      logits[static_cast<std::size_t>(order[i])] = sampling_detail::minus_inf;
  }
};

/// Nucleus (Holtzman et al. 2020): keeps the smallest set of most probable tokens (softmax of the
/// logits as they arrive; ties: the lower id first) whose probability reaches p, removes the
/// rest; 1 keeps all.
struct TopP {
  double p = 1.0;  ///< in (0, 1]
  void operator()(std::span<float> logits, std::span<const std::int64_t>) const {
    if (p >= 1.0 || logits.empty()) return;
    if (!(p > 0)) throw error("attnkit: TopP: p must be in (0, 1]");
    const std::vector<index_t> order = sampling_detail::order_by_logit(logits);
    const double mx = logits[static_cast<std::size_t>(order[0])];
    if (std::isinf(mx)) return;  // nothing left to choose from
    std::vector<double> e(order.size());
    double sum = 0;
    for (std::size_t i = 0; i < order.size(); ++i)
      sum += (e[i] = std::exp(double(logits[static_cast<std::size_t>(order[i])]) - mx));
    double acc = 0;
    std::size_t keep = order.size();
    for (std::size_t i = 0; i < order.size(); ++i) {
      acc += e[i] / sum;
      if (acc >= p) {
        keep = i + 1;
        break;
      }
    }
    for (std::size_t i = keep; i < order.size(); ++i)
      logits[static_cast<std::size_t>(order[i])] = sampling_detail::minus_inf;
  }
};

/// Processors applied in order; itself a processor.
/// \tparam Processors models of logits_processor
template <class... Processors>
struct LogitsChain {
  static_assert((logits_processor<Processors> && ...),
                "attnkit: every Processors of LogitsChain must model attnkit::model::"
                "logits_processor: needs a const operator()(std::span<float>, "
                "std::span<const std::int64_t>)");
  std::tuple<Processors...> steps;
  LogitsChain() = default;
  explicit LogitsChain(Processors... p) : steps(std::move(p)...) {}
  void operator()(std::span<float> logits, std::span<const std::int64_t> context) const {
    std::apply([&](const auto&... p) { (p(logits, context), ...); }, steps);
  }
};

/// chain(p1, p2, ...): the processors applied in that order.
template <logits_processor... Processors>
LogitsChain<Processors...> chain(Processors... p) {
  return LogitsChain<Processors...>(std::move(p)...);
}

/// Hugging Face's order: repetition penalty, banned tokens, temperature, top-k, top-p. Every
/// step is a no-op at its default, so one type serves every runtime setting.
using StandardLogits = LogitsChain<RepetitionPenalty, BannedTokens, Temperature, TopK, TopP>;

/// The id of the largest logit (the lowest id among equals). Throws when every logit is -inf.
inline std::int64_t argmax(std::span<const float> logits) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  if (logits.empty() || logits[best] == sampling_detail::minus_inf)
    throw error("attnkit: argmax: no token left to choose (every logit is -inf)");
  return static_cast<std::int64_t>(best);
}

/// A sample from softmax(logits) (-inf logits never come out). u in [0, 1) is made from the top
/// 53 bits of one rng() call and the tokens are walked largest first (ties: lower id first), so
/// the same seed gives the same tokens on every platform (std distributions do not promise it).
/// Throws when every logit is -inf.
inline std::int64_t sample(std::span<const float> logits, std::mt19937_64& rng) {
  const std::vector<index_t> order = sampling_detail::order_by_logit(logits);
  if (order.empty() || logits[static_cast<std::size_t>(order[0])] == sampling_detail::minus_inf)
    throw error("attnkit: sample: no token left to choose (every logit is -inf)");
  const double mx = logits[static_cast<std::size_t>(order[0])];
  std::vector<double> p(order.size());
  double sum = 0;
  std::size_t live = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const float l = logits[static_cast<std::size_t>(order[i])];
    if (l == sampling_detail::minus_inf) break;
    sum += (p[i] = std::exp(double(l) - mx));
    live = i + 1;
  }
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * sum;
  double acc = 0;
  for (std::size_t i = 0; i < live; ++i) {
    acc += p[i];
    if (u < acc) return order[i];
  }
  return order[live - 1];
}

/// Chooses next tokens: the processors, then argmax (greedy) or a seeded sample.
/// \tparam Processors a logits_processor (default: StandardLogits)
template <class Processors = StandardLogits>
struct Sampler {
  static_assert(logits_processor<Processors>,
                "attnkit: Processors of Sampler must model attnkit::model::logits_processor");
  Processors processors{};
  bool greedy = true;      ///< argmax instead of sampling
  std::mt19937_64 rng{0};  ///< the generator of sample()

  /// Restarts the generator.
  void seed(std::uint64_t s) { rng.seed(s); }

  /// The next token for `logits` [V] after the tokens `context`.
  template <class T>
  std::int64_t next(std::span<const T> logits, std::span<const std::int64_t> context = {}) {
    scratch_.assign(logits.begin(), logits.end());
    processors(std::span<float>(scratch_), context);
    return greedy ? argmax(scratch_) : sample(scratch_, rng);
  }

 private:
  std::vector<float> scratch_;
};

}  // namespace attnkit::model
