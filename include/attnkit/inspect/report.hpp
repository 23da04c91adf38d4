// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The statistics document of `attnkit inspect` (docs/CLI.md) as JSON: per-head statistics, massive
// activations and the parameters they were computed with.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "attnkit/inspect/massive_activations.hpp"
#include "attnkit/inspect/stats.hpp"
#include "attnkit/io/json.hpp"

namespace attnkit::inspect {

namespace detail {
/// A JSON number, or null for NaN and infinities (JSON has no such numbers).
inline json::Value number_or_null(double x) {
  return std::isfinite(x) ? json::Value::number(x) : json::Value();
}
inline json::Value integer(index_t i) { return json::Value::integer(static_cast<std::int64_t>(i)); }
}  // namespace detail

/// {"layer", "head", "row_sum": {"min", "max", "mean"}, "min", "max", "entropy", "sink_mass",
/// "sparsity", "max_abs_dp_vs_softmax" (null without a reference), "rows"}.
inline json::Value to_json(const HeadStats& s) {
  using json::Value;
  Value rs = Value::object({{"min", detail::number_or_null(s.row_sum.min)},
                            {"max", detail::number_or_null(s.row_sum.max)},
                            {"mean", detail::number_or_null(s.row_sum.mean)}});
  return Value::object({{"layer", detail::integer(s.layer)},
                        {"head", detail::integer(s.head)},
                        {"row_sum", std::move(rs)},
                        {"min", detail::number_or_null(s.min)},
                        {"max", detail::number_or_null(s.max)},
                        {"entropy", detail::number_or_null(s.entropy)},
                        {"sink_mass", detail::number_or_null(s.sink_mass)},
                        {"sparsity", detail::number_or_null(s.sparsity)},
                        {"max_abs_dp_vs_softmax", detail::number_or_null(s.max_abs_dp_vs_softmax)},
                        {"rows", detail::integer(s.rows)}});
}

/// {"layer", "token", "channel", "value", "ratio_to_median"}.
inline json::Value to_json(const MassiveActivation& m) {
  using json::Value;
  return Value::object({{"layer", detail::integer(m.layer)},
                        {"token", detail::integer(m.token)},
                        {"channel", detail::integer(m.channel)},
                        {"value", detail::number_or_null(m.value)},
                        {"ratio_to_median", detail::number_or_null(m.ratio_to_median)}});
}

/// The statistics document of docs/CLI.md: {"variant", "tokens", "heads": [...],
/// "massive_activations": [...]} plus the parameters ("sink_keys", "sparsity_threshold",
/// "massive_min_ratio").
inline json::Value stats_document(const std::string& variant, index_t tokens,
                                  std::span<const HeadStats> heads,
                                  std::span<const MassiveActivation> massive,
                                  const StatsOptions& stats = {},
                                  const MassiveOptions& detector = {}) {
  using json::Value;
  Value hs = Value::array();
  for (const HeadStats& s : heads) hs.push_back(to_json(s));
  Value ms = Value::array();
  for (const MassiveActivation& m : massive) ms.push_back(to_json(m));
  return Value::object({{"variant", Value::string(variant)},
                        {"tokens", detail::integer(tokens)},
                        {"heads", std::move(hs)},
                        {"massive_activations", std::move(ms)},
                        {"sink_keys", detail::integer(stats.sink_keys)},
                        {"sparsity_threshold", detail::number_or_null(stats.sparsity_threshold)},
                        {"massive_min_ratio", detail::number_or_null(detector.min_ratio)}});
}

}  // namespace attnkit::inspect
