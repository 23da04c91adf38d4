// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Attention boosting: a score mod adding a bias on chosen key positions (policy::KeyBias), and
// its measured effect on the keyword mass of every captured head.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "attnkit/attention/attention.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/inspect/capture.hpp"
#include "attnkit/inspect/stats.hpp"
#include "attnkit/model/decoder.hpp"
#include "attnkit/policy/score_mod.hpp"

namespace attnkit::inspect {

/// The keyword mass (see keyword_mass) of one (layer, head) without and with the boost.
struct BoostEffect {
  index_t layer = 0;
  index_t head = 0;
  double before = 0.0;  ///< with a zero bias
  double after = 0.0;   ///< with `bias` added to the scores of the keyword keys
};

namespace detail {

template <class Policy>
inline constexpr bool has_key_bias =
    std::is_same_v<typename Policy::score_mod_type, policy::KeyBias>;

template <class T>
std::vector<BoostEffect> effects(const std::vector<HeadCapture<T>>& before,
                                 const std::vector<HeadCapture<T>>& after,
                                 std::span<const index_t> keys) {
  std::vector<BoostEffect> r;
  for (std::size_t i = 0; i < before.size() && i < after.size(); ++i)
    r.push_back(BoostEffect{before[i].layer, before[i].head, keyword_mass(before[i], keys),
                            keyword_mass(after[i], keys)});
  return r;
}

}  // namespace detail

/// Runs one attention call twice, with a zero KeyBias and with `bias` added to the scores of
/// the key positions `keys` (attention boosting), and returns the keyword mass of each selected
/// head before and after.
/// \tparam Policy an AttentionPolicy whose score mod is policy::KeyBias (its bias is replaced)
/// \tparam T float or double
template <class Policy, class T>
std::vector<BoostEffect> boost_effect(const Policy& policy,
                                      std::type_identity_t<TensorView<const T, 4>> q,
                                      std::type_identity_t<TensorView<const T, 4>> k,
                                      std::type_identity_t<TensorView<const T, 4>> v,
                                      std::span<const index_t> keys, float bias, Selection sel = {},
                                      const AttentionOptions& options = {}) {
  static_assert(detail::has_key_bias<Policy>,
                "attnkit: Policy of boost_effect must have policy::KeyBias as its score mod "
                "(AttentionPolicy<Activation, Mask, policy::KeyBias>)");
  sel.softmax_reference = false;
  const index_t nk = k.extent(2);
  Policy p0 = policy, p1 = policy;
  p0.score_mod = policy::KeyBias::boost(nk, {}, 0.0f);
  p1.score_mod = policy::KeyBias::boost(nk, std::vector<index_t>(keys.begin(), keys.end()), bias);
  const auto before = capture_attention<Policy, T>(p0, q, k, v, sel, options);
  const auto after = capture_attention<Policy, T>(p1, q, k, v, sel, options);
  return detail::effects(before, after, keys);
}

/// Runs the prefill pass of `model` on `ids` twice, every layer's KeyBias zero and then `bias`
/// on the key positions `keys` (token positions), and returns the keyword mass of each selected
/// (layer, head) before and after.
/// \tparam Policy a decoder policy whose score mod is policy::KeyBias (its bias is replaced)
/// \tparam T float or double
template <class Policy, class T, class Layer>
std::vector<BoostEffect> boost_effect(model::Decoder<Policy, T, Layer> model,
                                      std::span<const std::int64_t> ids,
                                      std::span<const index_t> keys, float bias,
                                      Selection sel = {}) {
  static_assert(detail::has_key_bias<Policy>,
                "attnkit: the decoder of boost_effect must have policy::KeyBias as its score mod "
                "(AttentionPolicy<Activation, Causal, policy::KeyBias>)");
  sel.softmax_reference = false;
  const index_t n = static_cast<index_t>(ids.size());
  auto set = [&](const policy::KeyBias& kb) {
    for (auto& layer : model.layers) layer.attn.policy.score_mod = kb;
  };
  set(policy::KeyBias::boost(n, {}, 0.0f));
  const auto before = capture_prefill(model, ids, sel);
  set(policy::KeyBias::boost(n, std::vector<index_t>(keys.begin(), keys.end()), bias));
  const auto after = capture_prefill(model, ids, sel);
  return detail::effects(before.heads, after.heads, keys);
}

}  // namespace attnkit::inspect
