// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Capture of the attention weights P of chosen layers, heads and query rows through the fused
// kernel's own capture (never a second implementation), with the softmax weights on the same
// q and k for comparison, and the visible set of the mask.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attnkit/attention/attention.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/model/decoder.hpp"
#include "attnkit/modules/multi_head_attention.hpp"
#include "attnkit/policy/attention_policy.hpp"

namespace attnkit::inspect {

/// What to capture. An empty list means all.
///
/// Memory: the kernel's capture writes P for every head and query row of one attention call,
/// [B, Hq, Nq, Nk], into a buffer that is reused from layer to layer (and, for a non-softmax
/// variant, the softmax reference as much again); only the selected heads and rows are kept. So
/// the peak is one call's P (twice), never one per layer, and `max_buffer_bytes` bounds it.
struct Selection {
  std::vector<index_t> layers;  ///< decoder layers (a single attention call ignores this)
  std::vector<index_t> heads;   ///< query heads
  std::vector<index_t> rows;    ///< query rows of the call (in a prefill: the token positions)
  index_t batch = 0;            ///< the batch entry to keep
  /// Also compute softmax P on the same q, k, mask and score mod (for max |ΔP| vs softmax).
  bool softmax_reference = true;
  /// Upper bound on the transient capture buffers of one attention call (bytes).
  std::size_t max_buffer_bytes = std::size_t{1} << 30;
};

/// The captured weights of one (layer, head): the selected query rows against every key.
/// \tparam T float or double
template <class T>
struct HeadCapture {
  index_t layer = 0;                ///< decoder layer (0 for a single attention call)
  index_t head = 0;                 ///< query head
  index_t query_offset = 0;         ///< absolute position of query row 0: Nk - Nq
  std::vector<index_t> rows;        ///< the captured query rows, ascending
  Tensor<T, 2> probs;               ///< [R, Nk]: the kernel's P
  Tensor<T, 2> softmax;             ///< [R, Nk]: softmax P on the same inputs (empty if not asked)
  Tensor<std::uint8_t, 2> visible;  ///< [R, Nk]: 1 where the mask lets the row see the key

  /// Number of keys Nk.
  index_t keys() const noexcept { return probs.extent(1); }
  /// Absolute position (token position in a prefill) of captured row r.
  index_t position(index_t r) const { return rows.at(static_cast<std::size_t>(r)) + query_offset; }
};

/// The result of capture_prefill: the logits of the pass and the captured heads, layer-major.
/// \tparam T float or double
template <class T>
struct PrefillCapture {
  Tensor<T, 2> logits;                ///< [N, V]
  std::vector<HeadCapture<T>> heads;  ///< ordered by layer, then head
};

namespace detail {

/// The sorted, de-duplicated selection, or [0, n) when `chosen` is empty; throws error naming
/// `what` for an index outside [0, n).
inline std::vector<index_t> resolve(const std::vector<index_t>& chosen, index_t n,
                                    const char* what) {
  std::vector<index_t> r;
  if (chosen.empty()) {
    for (index_t i = 0; i < n; ++i) r.push_back(i);
    return r;
  }
  for (index_t i : chosen) {
    if (i < 0 || i >= n)
      throw error("attnkit: inspect: " + std::string(what) + " " + std::to_string(i) +
                  " is outside [0, " + std::to_string(n) + ")");
    r.push_back(i);
  }
  std::sort(r.begin(), r.end());
  r.erase(std::unique(r.begin(), r.end()), r.end());
  return r;
}

/// Throws error when `copies` buffers of `shape` exceed the selection's byte bound.
template <class T>
void check_buffer(const Shape<4>& shape, int copies, const Selection& sel) {
  const double bytes = static_cast<double>(numel(shape)) * sizeof(T) * copies;
  if (bytes > static_cast<double>(sel.max_buffer_bytes))
    throw error("attnkit: inspect: capturing an attention call with weights " +
                shape_string(shape) + " needs " + std::to_string(bytes / (1 << 20)) +
                " MiB, more than Selection::max_buffer_bytes (" +
                std::to_string(static_cast<double>(sel.max_buffer_bytes) / (1 << 20)) +
                " MiB); use a shorter prompt or raise the bound");
}

/// Whether the activation of Policy is plain softmax (P is then its own softmax reference).
template <class Policy>
inline constexpr bool is_softmax =
    std::is_same_v<typename Policy::activation_type, policy::Softmax>;

/// Copies the selected heads and rows of one call's P (and of the softmax reference, computed
/// here by the fused kernel with the same mask and score mod) into `out`.
template <class Policy, class T>
void collect(const Policy& pol, const AttentionOptions& opts, index_t layer,
             TensorView<const T, 4> q, TensorView<const T, 4> k, TensorView<const T, 4> v,
             TensorView<const T, 4> probs, const Selection& sel, std::vector<HeadCapture<T>>& out) {
  const index_t nb = probs.extent(0), hq = probs.extent(1), nq = probs.extent(2);
  const index_t nk = probs.extent(3);
  if (sel.batch < 0 || sel.batch >= nb)
    throw error("attnkit: inspect: batch entry " + std::to_string(sel.batch) + " is outside [0, " +
                std::to_string(nb) + ")");
  const std::vector<index_t> heads = resolve(sel.heads, hq, "head");
  const std::vector<index_t> rows = resolve(sel.rows, nq, "query row");
  const policy::Geometry geom{nb, hq, k.extent(1), nq, nk, q.extent(3), v.extent(3)};
  const auto mask = pol.mask.bind(geom);
  Tensor<T, 4> ref;
  if constexpr (!is_softmax<Policy>) {
    if (sel.softmax_reference) {
      using Ref = policy::AttentionPolicy<policy::Softmax, typename Policy::mask_type,
                                          typename Policy::score_mod_type>;
      check_buffer<T>(probs.shape(), 2, sel);
      ref = Tensor<T, 4>(probs.shape());
      Tensor<T, 4> o({nb, hq, nq, v.extent(3)});
      attention<Ref, T>(Ref(policy::Softmax{}, pol.mask, pol.score_mod), q, k, v, o.view(),
                        ref.view(), opts);
    }
  }
  const index_t b = sel.batch, off = nk - nq, nr = static_cast<index_t>(rows.size());
  for (index_t h : heads) {
    HeadCapture<T> c;
    c.layer = layer;
    c.head = h;
    c.query_offset = off;
    c.rows = rows;
    c.probs = Tensor<T, 2>({nr, nk});
    c.visible = Tensor<std::uint8_t, 2>({nr, nk});
    if (sel.softmax_reference) c.softmax = Tensor<T, 2>({nr, nk});
    for (index_t r = 0; r < nr; ++r) {
      const index_t i = rows[static_cast<std::size_t>(r)];
      for (index_t j = 0; j < nk; ++j) {
        c.probs(r, j) = probs(b, h, i, j);
        c.visible(r, j) = mask.visible(b, h, i + off, j) ? 1 : 0;
        if (sel.softmax_reference)
          c.softmax(r, j) = is_softmax<Policy> ? probs(b, h, i, j) : ref(b, h, i, j);
      }
    }
    out.push_back(std::move(c));
  }
}

}  // namespace detail

/// Runs one attention call (the fused kernel with its P capture) and returns the selected heads
/// and query rows of P, the softmax reference on the same inputs and the mask's visible set.
/// Shapes as attention(); `out` [B, Hq, Nq, Dv] receives the output when given.
/// \tparam Policy an attnkit::policy::AttentionPolicy
/// \tparam T float or double
template <class Policy, class T>
std::vector<HeadCapture<T>> capture_attention(const Policy& policy,
                                              std::type_identity_t<TensorView<const T, 4>> q,
                                              std::type_identity_t<TensorView<const T, 4>> k,
                                              std::type_identity_t<TensorView<const T, 4>> v,
                                              const Selection& sel = {},
                                              const AttentionOptions& options = {},
                                              std::type_identity_t<TensorView<T, 4>> out = {}) {
  const Shape<4> ps{q.extent(0), q.extent(1), q.extent(2), k.extent(2)};
  detail::check_buffer<T>(ps, 1, sel);
  Tensor<T, 4> probs(ps);
  Tensor<T, 4> o;
  if (out.data() == nullptr) {
    o = Tensor<T, 4>({q.extent(0), q.extent(1), q.extent(2), v.extent(3)});
    out = o.view();
  }
  attention<Policy, T>(policy, q, k, v, out, probs.view(), options);
  std::vector<HeadCapture<T>> result;
  detail::collect<Policy, T>(policy, options, 0, q, k, v, probs.cview(), sel, result);
  return result;
}

/// Runs the prefill pass of `model` on `ids` and captures the selected layers, heads and rows
/// (query rows are token positions) through each layer's kernel capture; the other layers run
/// without capture. `hidden`, when given, sees every layer's output hidden state [N, hidden]
/// (e.g. a MassiveActivationDetector), in the same pass.
/// \tparam Policy the decoder's attention policy
/// \tparam T float or double
template <class Policy, class T, class Layer>
PrefillCapture<T> capture_prefill(
    const model::Decoder<Policy, T, Layer>& model, std::span<const std::int64_t> ids,
    const Selection& sel = {},
    const std::type_identity_t<std::function<void(index_t, TensorView<const T, 2>)>>& hidden = {}) {
  const index_t n = static_cast<index_t>(ids.size());
  const std::vector<index_t> layers =
      detail::resolve(sel.layers, static_cast<index_t>(model.layers.size()), "layer");
  detail::resolve(sel.heads, model.config.num_attention_heads, "head");
  detail::resolve(sel.rows, n, "query row");
  PrefillCapture<T> result;
  Tensor<T, 4> buffer;
  index_t current = -1;
  modules::AttentionCapture<T> capture;
  capture.probs = [&](const Shape<4>& shape) {
    detail::check_buffer<T>(shape, 1, sel);
    if (buffer.shape() != shape) buffer = Tensor<T, 4>(shape);
    return buffer.view();
  };
  capture.observe = [&](TensorView<const T, 4> q, TensorView<const T, 4> k,
                        TensorView<const T, 4> v, TensorView<const T, 4> probs) {
    const auto& attn = model.layers[static_cast<std::size_t>(current)].attn;
    detail::collect<Policy, T>(attn.policy, attn.options, current, q, k, v, probs, sel,
                               result.heads);
  };
  model::DecoderHooks<T> hooks;
  hooks.attention = [&](index_t l) -> const modules::AttentionCapture<T>* {
    if (!std::binary_search(layers.begin(), layers.end(), l)) return nullptr;
    current = l;
    return &capture;
  };
  hooks.hidden = hidden;
  result.logits = model.forward(ids, hooks);
  return result;
}

}  // namespace attnkit::inspect
