// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attention(policy, q, k, v, out, options): the fused attention kernel for any AttentionPolicy
// over [B, H, N, D] views (MHA, GQA, MQA), with optional capture of the weights P.
#pragma once

#include <cmath>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "attnkit/attention/detail/capture.hpp"
#include "attnkit/attention/detail/decode.hpp"
#include "attnkit/attention/detail/fused_kernel.hpp"
#include "attnkit/attention/detail/head_softmax.hpp"
#include "attnkit/attention/detail/prefill.hpp"
#include "attnkit/attention/dropout.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/half.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/policy/attention_policy.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit {

/// When attention() uses the decode path (keys split across threads, flash-decoding; under head
/// softmax the keys are split into chunks whose outputs add up).
enum class DecodeMode {
  /// when Hq/Hkv · Nq <= 64 (head softmax: Nq <= 32) and Nk >= 2048, or, at any Nk, when
  /// Hq/Hkv > 1 and Hq/Hkv · Nq <= 16 (not head softmax); shapes only, never the thread count
  automatic,
  never,   ///< always the prefill path
  always,  ///< whenever possible
};

/// The keys a call sees as a range of a longer sequence (context parallelism, chunked caches):
/// k and v hold keys [first, first + Nk) of `total` keys. Masks, score mods, dropout and the
/// binding of the policy (for instance sigmoid-bias's b = -ln Nk) see the absolute key index and
/// `total`; query row i sits at position i + total - Nq (see QueryRange). Sink logits join the
/// range that holds key 0 only (of a sequence without keys, the empty range at 0), so the ranges of
/// a partition merge to the full result (merge_partials).
struct KeyRange {
  index_t first = 0;  ///< absolute index of the first key of k and v
  index_t total = 0;  ///< keys in the whole sequence (>= first + Nk)
};

/// The query rows a call computes as a range of a longer call (context parallelism): q holds
/// rows [first, first + Nq) of `total` query rows, and out (and the state) those rows only. Masks,
/// score mods, the gate, dropout and the binding of the policy see the rows of the whole call:
/// row i of q sits at position first + i + keys - total, with keys the whole sequence's key
/// count (KeyRange::total, else Nk). Any key range merges with the same query range.
struct QueryRange {
  index_t first = 0;  ///< index of the first row of q in the whole call
  index_t total = 0;  ///< query rows of the whole call (>= first + Nq)
};

/// Runtime options of one attention() call.
struct AttentionOptions {
  /// Scores are s = scale · q·k; default 1/sqrt(D).
  std::optional<double> scale;
  /// Path selection (results differ between paths only by rounding).
  DecodeMode decode = DecodeMode::automatic;
  /// Dropout on P for training-time experiments (off by default; see AttentionDropout).
  AttentionDropout dropout{};
  /// The keys of k and v as a range of a longer sequence (none: they are the whole sequence).
  std::optional<KeyRange> keys;
  /// The rows of q as a range of a longer call (none: q holds every query row).
  std::optional<QueryRange> queries;
};

namespace attention_detail {

/// Checks the shapes of q [B, Hq, Nq, D], k [B, Hkv, Nk, D] and v [B, Hkv, Nk, Dv] against each
/// other (Hq a multiple of Hkv); `where` names the calling function in the message.
template <class T, class KV>
void check_qkv(const char* where, TensorView<const T, 4> q, TensorView<const KV, 4> k,
               TensorView<const KV, 4> v) {
  const index_t nb = q.extent(0), hq = q.extent(1), d = q.extent(3);
  const index_t hkv = k.extent(1), nk = k.extent(2), dv = v.extent(3);
  if (k.extent(0) != nb || k.extent(3) != d)
    throw_shape_mismatch(where, "k", k.shape(), Shape<4>{nb, hkv, nk, d});
  if (hkv < 1 || hq % hkv != 0)
    throw shape_error("attnkit: " + std::string(where) + ": q has " + std::to_string(hq) +
                      " heads, not a multiple of the " + std::to_string(hkv) + " heads of k (q " +
                      shape_string(q.shape()) + ", k " + shape_string(k.shape()) + ")");
  if (v.extent(0) != nb || v.extent(1) != hkv || v.extent(2) != nk)
    throw_shape_mismatch(where, "v", v.shape(), Shape<4>{nb, hkv, nk, dv});
}

/// The key and query ranges of one call (the whole call's when the options give none).
struct CallRanges {
  index_t key0;   ///< absolute index of key 0 of k
  index_t total;  ///< keys of the whole sequence
  index_t row0;   ///< row of the whole call of query row 0
  index_t rows;   ///< query rows of the whole call
};

/// Checks the options of a call with nq rows of q and nk keys (the key and query ranges, the
/// scale, the dropout) and returns its ranges; `where` names the calling function.
inline CallRanges check_options(const char* where, const AttentionOptions& opts, index_t nq,
                                index_t nk) {
  // The message prefix is built only on an error: a call must not allocate.
  auto w = [where] { return "attnkit: " + std::string(where) + ": "; };
  CallRanges r{0, nk, 0, nq};
  if (opts.keys) {
    r.key0 = opts.keys->first;
    r.total = opts.keys->total;
    if (r.key0 < 0 || r.total < 0 || r.key0 > r.total - nk)
      throw shape_error(w() + "the key range [" + std::to_string(r.key0) + ", " +
                        std::to_string(r.key0) + " + " + std::to_string(nk) +
                        ") of k does not lie in the " + std::to_string(r.total) +
                        " keys of the sequence (KeyRange first, total)");
  }
  if (opts.queries) {
    r.row0 = opts.queries->first;
    r.rows = opts.queries->total;
    if (r.row0 < 0 || r.rows < 0 || r.row0 > r.rows - nq)
      throw shape_error(w() + "the query rows [" + std::to_string(r.row0) + ", " +
                        std::to_string(r.row0) + " + " + std::to_string(nq) +
                        ") of q do not lie in the " + std::to_string(r.rows) +
                        " query rows of the call (QueryRange first, total)");
  }
  if (opts.scale && !std::isfinite(*opts.scale)) throw error(w() + "the scale must be finite");
  opts.dropout.check();
  return r;
}

template <class T, class Policy, class KV = T>
void run(const Policy& policy, TensorView<const T, 4> q, TensorView<const KV, 4> k,
         TensorView<const KV, 4> v, TensorView<T, 4> out, TensorView<T, 4> probs, bool capture,
         TensorView<T, 3> state, bool with_state, const AttentionOptions& opts) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit: attention supports float and double tensors");
  static_assert(std::is_same_v<KV, T> || (std::is_same_v<T, float> && is_half_type<KV>),
                "attnkit: K and V are of the type of Q, or bf16 / f16 with float Q");
  static_assert(policy::is_attention_policy<Policy>,
                "attnkit: the policy argument of attention must be an "
                "attnkit::policy::AttentionPolicy<Activation, Mask, ScoreMod, Gate>");
  check_qkv("attention", q, k, v);
  const index_t nb = q.extent(0), hq = q.extent(1), nq = q.extent(2), d = q.extent(3);
  const index_t hkv = k.extent(1), nk = k.extent(2), dv = v.extent(3);
  if (out.shape() != Shape<4>{nb, hq, nq, dv})
    throw_shape_mismatch("attention", "out", out.shape(), Shape<4>{nb, hq, nq, dv});
  if (capture && probs.shape() != Shape<4>{nb, hq, nq, nk})
    throw_shape_mismatch("attention", "probs", probs.shape(), Shape<4>{nb, hq, nq, nk});
  if (with_state && state.shape() != Shape<3>{nb, hq, nq})
    throw_shape_mismatch("attention_partial", "state", state.shape(), Shape<3>{nb, hq, nq});
  const CallRanges ranges = check_options("attention", opts, nq, nk);
  const index_t key0 = ranges.key0, total = ranges.total, row0 = ranges.row0, rows = ranges.rows;

  // The policy sees the whole call; the kernel's loops run over the rows of q and the keys of k
  // and v.
  const Policy bound = policy.bind(policy::Geometry{nb, hq, hkv, rows, total, d, dv});
  const policy::Geometry geom{nb, hq, hkv, nq, nk, d, dv};
  using Activation = typename Policy::activation_type;
  constexpr auto norm = Activation::normalization;
  if (nk == 0 || out.size() == 0) {
    fill(out, T(0));
    if (with_state)
      for (index_t b = 0; b < nb; ++b)
        for (index_t h = 0; h < hq; ++h)
          for (index_t i = 0; i < nq; ++i) {
            T z = norm == policy::Normalization::over_keys_exp ? -std::numeric_limits<T>::infinity()
                                                               : T(0);
            if constexpr (policy::has_sink_logits<Activation>)
              if (key0 == 0 && total == 0) z = static_cast<T>(bound.activation.sink_logit(h));
            state(b, h, i) = z;
          }
    return;
  }

  Operands<T, KV> x{};
  x.q = q.data();
  x.qs = q.strides();
  x.k = k.data();
  x.ks = k.strides();
  x.v = v.data();
  x.vs = v.strides();
  x.out = out.data();
  x.os = out.strides();
  x.probs = capture ? probs.data() : nullptr;
  x.ps = probs.strides();
  x.state = with_state ? state.data() : nullptr;
  x.ss = state.strides();
  x.key0 = key0;
  x.qoff = row0 + total - rows;
  x.row0 = row0;
  x.g = geom;
  x.group = hq / hkv;
  x.scale = static_cast<T>(opts.scale ? *opts.scale : (d > 0 ? 1.0 / std::sqrt(double(d)) : 1.0));
  x.dropout = opts.dropout;

  constexpr bool heads = norm == policy::Normalization::over_heads;
  const bool long_keys = opts.decode == DecodeMode::always || nk >= 4 * decode_chunk;
  // The rows of a grouped-query step (G > 1, G·Nq <= 16) share one lane group at any key count:
  // the prefill path gives each query head its own group and reads every K and V row G times
  // (2-2.5x slower at 64-1024 keys, 32/8 and 14/2 heads, one or two threads).
  const bool grouped_step = x.group > 1 && x.group * nq <= 16;
  const bool decode = !heads && opts.decode != DecodeMode::never && x.group * nq <= query_tile &&
                      (long_keys || grouped_step);
  // Head softmax: one unit per (b, 32 query rows) would leave threads idle, so few query rows
  // over many keys also split the keys.
  [[maybe_unused]] const bool split_heads =
      heads && opts.decode != DecodeMode::never && nq <= head_softmax_query_tile && long_keys;
  simd::dispatch([&](auto arch) {
    using Arch = decltype(arch);
    constexpr index_t W = static_cast<index_t>(xsimd::batch<T, Arch>::size);
    x.dvp = (dv + W - 1) / W * W;
    x.v_direct = v.stride(3) == 1 && dv % W == 0;
    const FusedKernel<Arch, T, Policy, KV> kernel{bound, x};
    if constexpr (heads) {
      kernel.run_head_softmax(split_heads);
    } else {
      if (decode) {
        kernel.run_decode();
      } else {
        kernel.run_prefill();
      }
    }
  });
}

}  // namespace attention_detail

/// Fused attention: out[b, h, i, :] = Σ_j P[b, h, i, j] · v[b, h / (Hq / Hkv), j, :] with P as
/// docs/CLI.md defines it for the policy's activation, mask, score mod and gate.
/// Shapes: q [B, Hq, Nq, D], k [B, Hkv, Nk, D], v [B, Hkv, Nk, Dv], out [B, Hq, Nq, Dv], Hq a
/// multiple of Hkv; any strides. Throws shape_error naming the argument and both shapes.
/// Results are identical bit for bit for any thread count.
/// \tparam Policy an attnkit::policy::AttentionPolicy
/// \tparam T float or double
template <class Policy, class T>
void attention(const Policy& policy, std::type_identity_t<TensorView<const T, 4>> q,
               std::type_identity_t<TensorView<const T, 4>> k,
               std::type_identity_t<TensorView<const T, 4>> v, TensorView<T, 4> out,
               const AttentionOptions& options = {}) {
  attention_detail::run<T>(policy, q, k, v, out, TensorView<T, 4>{}, false, TensorView<T, 3>{},
                           false, options);
}

/// Like attention() above and also writes the weights P into `probs` [B, Hq, Nq, Nk] (N² memory,
/// the caller's; the values are the kernel's own P, normalized).
template <class Policy, class T>
void attention(const Policy& policy, std::type_identity_t<TensorView<const T, 4>> q,
               std::type_identity_t<TensorView<const T, 4>> k,
               std::type_identity_t<TensorView<const T, 4>> v, TensorView<T, 4> out,
               std::type_identity_t<TensorView<T, 4>> probs, const AttentionOptions& options = {}) {
  attention_detail::run<T>(policy, q, k, v, out, probs, true, TensorView<T, 3>{}, false, options);
}

/// attention<Policy>(q, k, v, out): a default-constructed policy (no runtime values).
template <class Policy, class T>
requires policy::is_attention_policy<Policy>
void attention(std::type_identity_t<TensorView<const T, 4>> q,
               std::type_identity_t<TensorView<const T, 4>> k,
               std::type_identity_t<TensorView<const T, 4>> v, TensorView<T, 4> out,
               const AttentionOptions& options = {}) {
  attention_detail::run<T>(Policy{}, q, k, v, out, TensorView<T, 4>{}, false, TensorView<T, 3>{},
                           false, options);
}

/// Like attention() and also writes, per query row, the state that merge_partials needs to
/// combine results over disjoint key ranges (`options.keys` places k and v in the sequence):
///   over_keys_exp (softmax, softcap, normalized-sigmoid): the log-sum-exp of the row,
///     ln(exp(z_h) + Σ_visible exp(map(s_ij))) with the sink logit z_h when the policy has one
///     and the range holds key 0 (KeyRange); -inf for a row with neither visible key nor sink;
///   over_keys_sum: the sum of the row's weights;
///   none and over_heads: 0 (the results of key ranges simply add up).
/// \param state [B, Hq, Nq]
template <class Policy, class T>
void attention_partial(const Policy& policy, std::type_identity_t<TensorView<const T, 4>> q,
                       std::type_identity_t<TensorView<const T, 4>> k,
                       std::type_identity_t<TensorView<const T, 4>> v, TensorView<T, 4> out,
                       std::type_identity_t<TensorView<T, 3>> state,
                       const AttentionOptions& options = {}) {
  attention_detail::run<T>(policy, q, k, v, out, TensorView<T, 4>{}, false, state, true, options);
}

/// attention() over 16-bit K and V (bf16 or f16, any strides) with float Q and out: the same
/// policies, paths and results as float K and V holding the same values, computed in float (K
/// and V widened in registers on the decode path, in the per-tile packing otherwise).
template <class Policy, class KV>
requires is_half_type<KV>
void attention(const Policy& policy, TensorView<const float, 4> q, TensorView<const KV, 4> k,
               TensorView<const KV, 4> v, TensorView<float, 4> out,
               const AttentionOptions& options = {}) {
  attention_detail::run<float>(policy, q, k, v, out, TensorView<float, 4>{}, false,
                               TensorView<float, 3>{}, false, options);
}

/// attention() over 16-bit K and V with the weights P written into `probs` [B, Hq, Nq, Nk].
template <class Policy, class KV>
requires is_half_type<KV>
void attention(const Policy& policy, TensorView<const float, 4> q, TensorView<const KV, 4> k,
               TensorView<const KV, 4> v, TensorView<float, 4> out, TensorView<float, 4> probs,
               const AttentionOptions& options = {}) {
  attention_detail::run<float>(policy, q, k, v, out, probs, true, TensorView<float, 3>{}, false,
                               options);
}

/// attention_partial() over 16-bit K and V.
template <class Policy, class KV>
requires is_half_type<KV>
void attention_partial(const Policy& policy, TensorView<const float, 4> q,
                       TensorView<const KV, 4> k, TensorView<const KV, 4> v,
                       TensorView<float, 4> out, TensorView<float, 3> state,
                       const AttentionOptions& options = {}) {
  attention_detail::run<float>(policy, q, k, v, out, TensorView<float, 4>{}, false, state, true,
                               options);
}

/// Gives the calling thread's attention scratch room, now, for calls of compute type T with up
/// to `nq` query rows per head over up to `max_keys` keys (B, Hq, Hkv and Dv as in attention()).
/// The buffers the decode path shares across its key chunks grow with the key count, so a
/// generation loop whose cache grows toward max_keys would otherwise reallocate them now and
/// then (Decoder::forward calls this for the tokens DecoderState::reserve asked for). A
/// thread's work-unit workspace does not depend on the key count and is made by its first call;
/// under a P capture its per-tile maxima do grow with the keys.
template <class T>
void reserve_attention(index_t batch, index_t heads_q, index_t heads_kv, index_t nq, index_t dv,
                       index_t max_keys) {
  using namespace attention_detail;
  if (batch < 0 || heads_q < 0 || nq < 0 || dv < 0 || max_keys < 0 || heads_kv <= 0 ||
      heads_q % heads_kv != 0)
    throw error("attnkit: reserve_attention: B " + std::to_string(batch) + ", Hq " +
                std::to_string(heads_q) + ", Hkv " + std::to_string(heads_kv) + ", Nq " +
                std::to_string(nq) + ", Dv " + std::to_string(dv) + ", keys " +
                std::to_string(max_keys) + " (counts are >= 0, Hkv > 0 and Hq a multiple of Hkv)");
  const index_t nsplit = (max_keys + decode_chunk - 1) / decode_chunk;
  const index_t dvp = (dv + 15) / 16 * 16;  // at least Dv rounded up to any SIMD width
  const index_t rows = heads_q / heads_kv * nq;
  // The split-KV partials (with room for a capture's tile maxima) and head softmax's chunks.
  const index_t decode = batch * heads_kv * ((max_keys + decode_split - 1) / decode_split) *
                         DecodePartials<T>::stride(rows, dvp, decode_split / key_tile);
  const index_t hrows = std::min(head_softmax_query_tile, nq);
  const index_t heads = batch * ((nq + head_softmax_query_tile - 1) / head_softmax_query_tile) *
                        nsplit * heads_q * hrows * dvp;
  thread_scratch(ScratchSlot::call)
      .reserve(static_cast<std::size_t>(std::max(decode, heads)) * sizeof(T));
}

/// One result of attention_partial: out [B, Hq, Nq, Dv] and state [B, Hq, Nq].
template <class T>
struct AttentionPartial {
  TensorView<const T, 4> out;
  TensorView<const T, 3> state;
};

/// Combines the results of attention_partial over disjoint key ranges of one sequence into the
/// result over their union, and its state (optional: an empty view skips it), so merges nest.
/// With the parts of a partition of the keys this is the full attention, up to rounding: the
/// parts are weighted by exp(state - max state) (over_keys_exp) or by their state (over_keys_sum)
/// and normalized, or added (none, over_heads). The gate, applied to each part, must scale the
/// row by factors that do not depend on the attention values (every built-in gate does). The
/// parts are combined in their order (the same bits for any thread count); `out` may be the out
/// view of one of the parts.
template <class Policy, class T>
void merge_partials(const Policy&, std::type_identity_t<std::span<const AttentionPartial<T>>> parts,
                    TensorView<T, 4> out, std::type_identity_t<TensorView<T, 3>> state = {}) {
  static_assert(policy::is_attention_policy<Policy>,
                "attnkit: merge_partials takes the attnkit::policy::AttentionPolicy of the parts");
  constexpr auto norm = Policy::activation_type::normalization;
  using N = policy::Normalization;
  if (parts.empty()) throw error("attnkit: merge_partials: no parts to merge");
  const Shape<4> os = out.shape();
  const Shape<3> ss{os[0], os[1], os[2]};
  for (std::size_t p = 0; p < parts.size(); ++p) {
    const std::string name = "parts[" + std::to_string(p) + "]";
    if (parts[p].out.shape() != os)
      throw_shape_mismatch("merge_partials", name + ".out", parts[p].out.shape(), os);
    if (parts[p].state.shape() != ss)
      throw_shape_mismatch("merge_partials", name + ".state", parts[p].state.shape(), ss);
  }
  const bool with_state = state.data() != nullptr;
  if (with_state && state.shape() != ss)
    throw_shape_mismatch("merge_partials", "state", state.shape(), ss);
  std::vector<T> acc(static_cast<std::size_t>(os[3]));
  std::vector<T> w(parts.size());
  for (index_t b = 0; b < os[0]; ++b)
    for (index_t h = 0; h < os[1]; ++h)
      for (index_t i = 0; i < os[2]; ++i) {
        T total = 0, top = -std::numeric_limits<T>::infinity();
        for (std::size_t p = 0; p < parts.size(); ++p) {
          const T z = parts[p].state(b, h, i);
          if constexpr (norm == N::over_keys_exp) {
            if (std::isnan(z) || z == std::numeric_limits<T>::infinity())
              throw error("attnkit: merge_partials: parts[" + std::to_string(p) + "].state holds " +
                          std::to_string(z) + " (a log-sum-exp is finite or -inf)");
            top = std::max(top, z);
          } else if constexpr (norm == N::over_keys_sum) {
            if (!(z >= T(0)) || !std::isfinite(z))
              throw error("attnkit: merge_partials: parts[" + std::to_string(p) + "].state holds " +
                          std::to_string(z) + " (a sum of weights is >= 0)");
          }
        }
        for (std::size_t p = 0; p < parts.size(); ++p) {
          const T z = parts[p].state(b, h, i);
          if constexpr (norm == N::over_keys_exp) {
            w[p] = z == -std::numeric_limits<T>::infinity() ? T(0) : std::exp(z - top);
          } else if constexpr (norm == N::over_keys_sum) {
            w[p] = z;
          } else {
            w[p] = T(1);
          }
          total += w[p];
        }
        const bool normalized = norm == N::over_keys_exp || norm == N::over_keys_sum;
        const T inv = !normalized ? T(1) : total > T(0) ? T(1) / total : T(0);
        std::fill(acc.begin(), acc.end(), T(0));
        for (std::size_t p = 0; p < parts.size(); ++p)
          if (w[p] != T(0))
            for (index_t c = 0; c < os[3]; ++c)
              acc[static_cast<std::size_t>(c)] += w[p] * parts[p].out(b, h, i, c);
        for (index_t c = 0; c < os[3]; ++c)
          out(b, h, i, c) = acc[static_cast<std::size_t>(c)] * inv;
        if (with_state) {
          if constexpr (norm == N::over_keys_exp) {
            state(b, h, i) = total > T(0) ? top + std::log(total) : top;
          } else if constexpr (norm == N::over_keys_sum) {
            state(b, h, i) = total;
          } else {
            state(b, h, i) = T(0);
          }
        }
      }
}

}  // namespace attnkit
