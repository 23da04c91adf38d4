// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// KVCache<T>: the keys and values of one attention layer during incremental decoding, under a
// cache policy: full, sliding window, StreamingLLM attention sinks, or the Ebbinghaus
// retention cache with its three memory modes (baseline, soft-delete, sparse).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "attnkit/block/rope.hpp"
#include "attnkit/core/aligned.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/half.hpp"
#include "attnkit/core/scratch_stack.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"

namespace attnkit::modules {

// ---- the cache policies ----------------------------------------------------------------------
//
// A cache policy decides which keys each query row sees by what the cache *holds*, not by a
// mask: every policy runs the same attention<Policy> instantiation (the decoder's causal one)
// over the held keys, so choosing a policy at run time (`attnkit generate --cache`) costs no
// extra kernel, and dropped tokens cost no work at all.

/// Keeps every token (the attention of the full causal pass).
struct FullCache {};

/// Keeps the last `window` tokens: the SlidingWindow(window) mask of a full recomputation.
struct WindowCache {
  index_t window = 1;  ///< W >= 1 (a row sees itself and the W - 1 tokens before it)
};

/// StreamingLLM (Xiao et al. 2023): keeps the first `sinks` tokens and the last `window`, the
/// Sinks(sinks, window) mask of a full recomputation. Positions are assigned inside the cache as
/// StreamingLLM does (sink s at s, the window right after them, the query last), so relative
/// RoPE distances never exceed sinks + window - 1 however long the generation runs.
///
/// How (keys are re-rotated, only the sinks): RoPE scores depend only on the difference of the
/// query's and the key's positions. Window keys are rotated once, at their absolute position p,
/// and queries at their absolute position q; the difference q - p is the same as StreamingLLM's
/// in-cache difference because both are shifted by the same count of evicted tokens e. Sink s
/// must appear at distance (q - e) - s, so its key is kept un-rotated beside the cache and
/// re-rotated at position s + e whenever e changes: S rows per step, not the whole cache. The
/// scores equal StreamingLLM's exactly in real arithmetic; in floating point they differ only by
/// the rounding of the rotations.
struct SinkCache {
  index_t sinks = 4;   ///< S >= 0 (StreamingLLM uses 4)
  index_t window = 1;  ///< W >= 1
};

/// What a retention cache does with the retention of its tokens (three modes).
enum class MemoryMode : std::uint8_t {
  baseline,     ///< no forgetting: retention is not tracked, the full cache
  soft_delete,  ///< every key is scaled by its retention R before attention (nothing dropped)
  sparse,       ///< tokens with R < forget_threshold are dropped from the cache (compacted)
};

/// Parameters of the Ebbinghaus retention model. Every cached token (per layer) has a strength
/// S and a last-reinforced step; its retention at step t is R = exp(-Δt / S) with
/// Δt = (t - last) · time_per_step. A decode step whose attention weight on the token, averaged
/// over the query heads, is >= reinforce_threshold reinforces it: S += strength_gain and
/// last = t (Δt resets). Steps count forward calls of the cache (one per generated token; a
/// prefill is one step). The defaults are those of the memollm reference design (S0 = 5, 0.05
/// time units per token, a weight of 0.01 resets the clock, forget below 0.01), with one change:
/// memollm adds the weight itself to S on every step; here S grows by a fixed gain when reinforced.
struct RetentionParams {
  double initial_strength = 5.0;      ///< S of a token entering the cache (> 0)
  double time_per_step = 0.05;        ///< Δt units per step (>= 0)
  double reinforce_threshold = 0.01;  ///< head-mean attention weight that reinforces (in [0, 1])
  double strength_gain = 1.0;         ///< S += strength_gain on reinforcement (>= 0)
  /// sparse: a token with R < forget_threshold is forgotten (dropped); 0 never forgets.
  double forget_threshold = 0.01;
  /// sparse, dynamic threshold: when > 0, replaces forget_threshold by the retention of the
  /// least retained token that still fits a budget of ceil(keep_fraction · tokens seen): the
  /// cache keeps the most retained tokens (ties: the newer), so sparsity tends to
  /// 1 - keep_fraction. In (0, 1]; 0 is off.
  double keep_fraction = 0.0;
};

/// The Ebbinghaus retention cache: a full cache whose tokens fade.
///
/// Only decode steps (calls with one query row) read attention weights to reinforce tokens: the
/// kernel captures P for that row (Hq x cached keys: small; no recomputation). Multi-row calls
/// (prefill) add tokens at full strength without reinforcing. Sparse mode drops a forgotten token
/// for good: it could only come back through attention weight, which a dropped token cannot
/// receive, so dropping it is the same as masking it from then on - and the cache moves the
/// last held token into its slot (O(D) per token) so the cost of a step follows the kept tokens.
/// The order of held tokens is then not chronological; attention does not depend on it (every
/// held token precedes every new row), only its rounding does.
///
/// soft-delete and sparse need batch 1 (the retention state is per token, per layer).
struct RetentionCache {
  MemoryMode mode = MemoryMode::baseline;
  RetentionParams params{};
};

/// A cache policy chosen at run time.
using CachePolicy = std::variant<FullCache, WindowCache, SinkCache, RetentionCache>;

/// "baseline", "soft-delete" or "sparse".
inline std::string memory_mode_name(MemoryMode m) {
  switch (m) {
    case MemoryMode::soft_delete:
      return "soft-delete";
    case MemoryMode::sparse:
      return "sparse";
    default:
      return "baseline";
  }
}

/// The mode named as by memory_mode_name(); throws attnkit::error naming the choices.
inline MemoryMode parse_memory_mode(std::string_view name) {
  if (name == "baseline") return MemoryMode::baseline;
  if (name == "soft-delete") return MemoryMode::soft_delete;
  if (name == "sparse") return MemoryMode::sparse;
  throw error("attnkit: unknown memory mode '" + std::string(name) +
              "' (baseline, soft-delete, sparse)");
}

/// The CLI spelling of a policy: "full", "window=W", "sinks=S,W", "retention:MODE".
inline std::string cache_policy_name(const CachePolicy& p) {
  if (const auto* w = std::get_if<WindowCache>(&p)) return "window=" + std::to_string(w->window);
  if (const auto* s = std::get_if<SinkCache>(&p))
    return "sinks=" + std::to_string(s->sinks) + "," + std::to_string(s->window);
  if (const auto* r = std::get_if<RetentionCache>(&p))
    return "retention:" + memory_mode_name(r->mode);
  return "full";
}

/// Parses "full", "window=W" or "sinks=S,W" (docs/CLI.md `--cache`); throws attnkit::error.
inline CachePolicy parse_cache_policy(std::string_view spec) {
  auto number = [&](std::string_view s) -> index_t {
    index_t v = 0;
    if (s.empty() || s.size() > 12) v = -1;
    for (char c : s) {
      if (c < '0' || c > '9') {
        v = -1;
        break;
      }
      v = v * 10 + (c - '0');
    }
    if (v < 0)
      throw error("attnkit: cache '" + std::string(spec) + "': '" + std::string(s) +
                  "' is not a non-negative integer");
    return v;
  };
  if (spec == "full") return FullCache{};
  if (spec.substr(0, 7) == "window=") {
    const index_t w = number(spec.substr(7));
    if (w < 1) throw error("attnkit: cache '" + std::string(spec) + "': the window must be >= 1");
    return WindowCache{w};
  }
  if (spec.substr(0, 6) == "sinks=") {
    const std::string_view rest = spec.substr(6);
    const std::size_t comma = rest.find(',');
    if (comma == std::string_view::npos)
      throw error("attnkit: cache '" + std::string(spec) + "': expected sinks=S,W");
    const index_t s = number(rest.substr(0, comma)), w = number(rest.substr(comma + 1));
    if (w < 1) throw error("attnkit: cache '" + std::string(spec) + "': the window must be >= 1");
    return SinkCache{s, w};
  }
  throw error("attnkit: unknown cache '" + std::string(spec) + "' (full, window=W, sinks=S,W)");
}

/// What a KVCache stores its keys and values as.
enum class KVDtype : std::uint8_t {
  compute,  ///< the compute type T (float or double)
  bf16,     ///< bfloat16 (T = float only): half the bytes of float, 8 significant bits
  f16,      ///< IEEE binary16 (T = float only): half the bytes, 11 significant bits
};

/// "f32" (the compute type of a float cache), "bf16" or "f16".
inline std::string kv_dtype_name(KVDtype t) {
  return t == KVDtype::bf16 ? "bf16" : t == KVDtype::f16 ? "f16" : "f32";
}

/// Parses "f32", "bf16" or "f16" (docs/CLI.md `--kv-dtype`); throws attnkit::error.
inline KVDtype parse_kv_dtype(std::string_view name) {
  if (name == "f32") return KVDtype::compute;
  if (name == "bf16") return KVDtype::bf16;
  if (name == "f16") return KVDtype::f16;
  throw error("attnkit: unknown KV dtype '" + std::string(name) + "' (f32, bf16, f16)");
}

/// Rows [B, H, capacity, width] of one element type chosen at run time (T, bf16 or f16) in one
/// aligned block: the storage of KVCache. Rows are written from T values (rounded to the
/// storage type) and read as typed views.
template <class T>
class KVSlab {
 public:
  KVSlab() = default;
  KVSlab(KVDtype dtype, index_t nb, index_t h, index_t cap, index_t width)
      : dtype_(dtype),
        es_(dtype == KVDtype::compute ? sizeof(T) : 2),
        nb_(nb),
        h_(h),
        cap_(cap),
        w_(width),
        data_(make_aligned<std::byte>(static_cast<std::size_t>(nb * h * cap * width) * es_)) {}
  KVSlab(const KVSlab& o) : KVSlab(o.dtype_, o.nb_, o.h_, o.cap_, o.w_) {
    if (!o.empty()) std::memcpy(data_.get(), o.data_.get(), bytes(nb_ * h_ * cap_));
  }
  KVSlab& operator=(const KVSlab& o) {
    if (this != &o) *this = KVSlab(o);
    return *this;
  }
  /// A moved-from slab is empty.
  KVSlab(KVSlab&& o) noexcept
      : dtype_(o.dtype_),
        es_(o.es_),
        nb_(std::exchange(o.nb_, 0)),
        h_(std::exchange(o.h_, 0)),
        cap_(std::exchange(o.cap_, 0)),
        w_(std::exchange(o.w_, 0)),
        data_(std::move(o.data_)) {}
  KVSlab& operator=(KVSlab&& o) noexcept {
    dtype_ = o.dtype_;
    es_ = o.es_;
    nb_ = std::exchange(o.nb_, 0);
    h_ = std::exchange(o.h_, 0);
    cap_ = std::exchange(o.cap_, 0);
    w_ = std::exchange(o.w_, 0);
    data_ = std::move(o.data_);
    return *this;
  }
  ~KVSlab() = default;
  bool empty() const noexcept { return cap_ == 0; }
  index_t capacity() const noexcept { return cap_; }
  /// Bytes of n consecutive rows.
  std::size_t bytes(index_t n) const noexcept { return es_ * static_cast<std::size_t>(n * w_); }
  std::byte* row(index_t b, index_t h, index_t slot) noexcept {
    return data_.get() + bytes((b * h_ + h) * cap_ + slot);
  }
  const std::byte* row(index_t b, index_t h, index_t slot) const noexcept {
    return data_.get() + bytes((b * h_ + h) * cap_ + slot);
  }
  /// Row (b, h, slot) = src[0, width), rounded to the storage type.
  void store(index_t b, index_t h, index_t slot, const T* src) noexcept {
    std::byte* dst = row(b, h, slot);
    if (dtype_ == KVDtype::compute) {
      std::memcpy(dst, src, bytes(1));
    } else if constexpr (std::is_same_v<T, float>) {
      auto* out = reinterpret_cast<std::uint16_t*>(dst);
      for (index_t c = 0; c < w_; ++c)
        out[c] = dtype_ == KVDtype::bf16 ? f32_to_bf16(src[c]) : f32_to_f16(src[c]);
    }
  }
  /// dst[0, width) = row (b, h, slot) as T.
  void load(index_t b, index_t h, index_t slot, T* dst) const noexcept {
    const std::byte* src = row(b, h, slot);
    if (dtype_ == KVDtype::compute) {
      std::memcpy(dst, src, bytes(1));
    } else {
      const auto* in = reinterpret_cast<const std::uint16_t*>(src);
      for (index_t c = 0; c < w_; ++c)
        dst[c] = static_cast<T>(dtype_ == KVDtype::bf16 ? bf16_to_f32(in[c]) : f16_to_f32(in[c]));
    }
  }
  /// Row (b, h, slot) = r · row (b, h, slot) of src, a slab of the same shape and storage type,
  /// rounded to the storage type. Rows of T are scaled in place of a copy; 16-bit rows go through
  /// tmp (width elements of T).
  void store_scaled(index_t b, index_t h, index_t slot, const KVSlab& src, T r, T* tmp) noexcept {
    if (dtype_ == KVDtype::compute) {
      const auto* in = reinterpret_cast<const T*>(src.row(b, h, slot));
      auto* out = reinterpret_cast<T*>(row(b, h, slot));
      for (index_t c = 0; c < w_; ++c) out[c] = in[c] * r;
      return;
    }
    src.load(b, h, slot, tmp);
    for (index_t c = 0; c < w_; ++c) tmp[c] *= r;
    store(b, h, slot, tmp);
  }
  /// Slots [begin, end) as a view of S (T for KVDtype::compute, else bf16 or f16).
  template <class S>
  TensorView<const S, 4> view(index_t begin, index_t end) const noexcept {
    const auto* base = reinterpret_cast<const S*>(data_.get());
    return TensorView<const S, 4>(base, Shape<4>{nb_, h_, cap_, w_}).slice(begin, end, 2);
  }

 private:
  KVDtype dtype_ = KVDtype::compute;
  std::size_t es_ = sizeof(T);
  index_t nb_ = 0, h_ = 0, cap_ = 0, w_ = 0;
  aligned_ptr<std::byte> data_;
};

/// Statistics of one layer's cache.
struct CacheStats {
  index_t memory_tokens = 0;  ///< tokens held (what the next attention reads)
  index_t seen = 0;           ///< tokens ever appended
  double mean_retention = 1;  ///< mean R of the held tokens at the last step (1 when untracked)
  double sparsity = 0;  ///< 1 - memory_tokens / seen: the share of tokens whose work is skipped
};

// ---- the cache ---------------------------------------------------------------------------------

/// Keys and values of one attention layer under a CachePolicy, [B, Hkv, capacity, D] storage.
/// MultiHeadAttention::forward(x, positions, y, cache) drives it through step().
/// \tparam T float or double
template <class T>
class KVCache {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit: T of KVCache must be float or double");

 public:
  /// Marks the type as a cache policy object for MultiHeadAttention::forward.
  using kv_cache_tag = void;

  /// \param policy the cache policy (checked: throws attnkit::error for bad parameters)
  /// \param dtype what keys and values are stored as: the compute type, or bf16 / f16 (T =
  /// float only; attention then reads them as such, computing in float)
  explicit KVCache(CachePolicy policy = FullCache{}, KVDtype dtype = KVDtype::compute)
      : policy_(std::move(policy)), dtype_(dtype) {
    if (!std::is_same_v<T, float> && dtype != KVDtype::compute)
      throw error("attnkit: KVCache: bf16 and f16 storage need a float cache (KVCache<float>)");
    if (const auto* w = std::get_if<WindowCache>(&policy_)) {
      if (w->window < 1) throw error("attnkit: KVCache: WindowCache needs window >= 1");
      bounded_ = true;
      window_ = w->window;
    } else if (const auto* s = std::get_if<SinkCache>(&policy_)) {
      if (s->sinks < 0 || s->window < 1)
        throw error("attnkit: KVCache: SinkCache needs sinks >= 0 and window >= 1");
      bounded_ = true;
      sinks_ = s->sinks;
      window_ = s->window;
    } else if (const auto* r = std::get_if<RetentionCache>(&policy_)) {
      const RetentionParams& p = r->params;
      auto unit = [](double v) { return v >= 0 && v <= 1; };
      if (!(p.initial_strength > 0) || !std::isfinite(p.initial_strength) ||
          !(p.time_per_step >= 0) || !std::isfinite(p.time_per_step) || !(p.strength_gain >= 0) ||
          !std::isfinite(p.strength_gain) || !unit(p.reinforce_threshold) ||
          !unit(p.forget_threshold) || !unit(p.keep_fraction))
        throw error(
            "attnkit: KVCache: RetentionParams need initial_strength > 0, time_per_step >= 0, "
            "strength_gain >= 0 and reinforce_threshold, forget_threshold, keep_fraction in "
            "[0, 1]");
      mode_ = r->mode;
      params_ = p;
      if (p.forget_threshold > 0) neg_log_forget_ = -std::log(p.forget_threshold);
    }
  }

  const CachePolicy& policy() const noexcept { return policy_; }
  /// What keys and values are stored as.
  KVDtype dtype() const noexcept { return dtype_; }
  /// The memory mode (baseline for caches other than RetentionCache).
  MemoryMode mode() const noexcept { return mode_; }
  /// Tokens held: the keys the next attention call reads (besides the new rows).
  index_t length() const noexcept { return end_ - begin_; }
  /// Tokens appended so far.
  index_t seen() const noexcept { return seen_; }
  /// Steps (step() calls) so far: the retention clock.
  index_t steps() const noexcept { return steps_; }
  /// Tokens dropped so far (window and sink caches: the shift of in-cache positions).
  index_t evicted() const noexcept { return evicted_; }
  /// Whether slot distances are token distances (window, sinks: in-cache distances as in
  /// StreamingLLM), so a positional score mod such as ALiBi may read them. Sparse mode moves
  /// tokens into the holes of forgotten ones: RoPE on the keys is fine, ALiBi is not.
  bool preserves_distances() const noexcept { return mode_ != MemoryMode::sparse; }

  /// The held keys [B, Hkv, length, D] (rotated; soft-delete: before scaling by retention) and
  /// values, in slot order, as stored: S is T for KVDtype::compute, else bf16 or f16 (throws
  /// attnkit::error for another S).
  template <class S = T>
  TensorView<const S, 4> keys() const {
    check_view_type<S>();
    return k_.template view<S>(begin_, end_);
  }
  template <class S = T>
  TensorView<const S, 4> values() const {
    check_view_type<S>();
    return v_.template view<S>(begin_, end_);
  }
  /// Absolute position (as given to step()) of the token in held slot j.
  index_t position(index_t j) const { return pos_[static_cast<std::size_t>(begin_ + j)]; }
  /// Retention cache (soft-delete, sparse): strength S of held slot j.
  double strength(index_t j) const { return strength_[static_cast<std::size_t>(begin_ + j)]; }
  /// Retention cache (soft-delete, sparse): the step that last reinforced (or added) slot j.
  index_t last_reinforced(index_t j) const { return last_[static_cast<std::size_t>(begin_ + j)]; }
  /// Retention R = exp(-Δt / S) of held slot j at step t (default: the last step); 1 when
  /// retention is not tracked.
  double retention(index_t j, index_t t = -1) const {
    if (!tracked()) return 1.0;
    if (t < 0) t = std::max<index_t>(steps_ - 1, 0);
    return retention_at(static_cast<std::size_t>(begin_ + j), t);
  }

  /// Statistics of the cache now (retention at the last step).
  CacheStats stats() const {
    CacheStats s;
    s.memory_tokens = length();
    s.seen = seen_;
    s.sparsity = seen_ > 0 ? 1.0 - double(length()) / double(seen_) : 0.0;
    if (tracked() && length() > 0) {
      double sum = 0;
      for (index_t j = 0; j < length(); ++j) sum += retention(j);
      s.mean_retention = sum / double(length());
    }
    return s;
  }

  /// Room for `tokens` slots: the storage is made (at the first step) or grown (now) to at least
  /// that, so a full cache does not regrow before it holds that many tokens. (Window and sink
  /// caches still compact, which copies, every capacity - held steps.)
  void reserve(index_t tokens) {
    if (tokens < 0) throw error("attnkit: KVCache::reserve: negative token count");
    reserve_ = std::max(reserve_, tokens);
    if (cap_ > 0 && reserve_ > cap_) relocate(reserve_);
  }
  /// Slots of the storage (0 before the first step).
  index_t capacity() const noexcept { return cap_; }

  /// Forgets everything (keeps the policy and the storage).
  void clear() noexcept { begin_ = end_ = seen_ = steps_ = evicted_ = 0; }

  /// One forward call of a layer: takes the new rows' keys k [B, Hkv, N, D] (not rotated) and
  /// values v [B, Hkv, N, Dv] at `positions` [N], rotates the keys with `rope` (may be null),
  /// evicts as the policy says and calls `attend(r0, r1, keys, values, probs)` for consecutive
  /// row ranges covering [0, N): attention of those query rows over the given keys/values
  /// (bottom-right aligned: the last r1 - r0 keys are those rows' own), writing the weights
  /// into probs [B, Hq, r1 - r0, Nk] when probs is not empty (retention decode steps ask).
  /// Window and sink caches run the rows that would evict one at a time; the rest in one call.
  /// Throws shape_error when the shapes disagree with each other or with earlier steps.
  /// \param query_heads Hq (a multiple of Hkv), for the weights' shape
  template <class Attend>
  void step(TensorView<const T, 4> k, TensorView<const T, 4> v, std::span<const index_t> positions,
            const block::RoPE* rope, index_t query_heads, Attend&& attend) {
    const index_t nb = k.extent(0), hkv = k.extent(1), n = k.extent(2), d = k.extent(3);
    const index_t dv = v.extent(3);
    if (v.extent(0) != nb || v.extent(1) != hkv || v.extent(2) != n)
      throw_shape_mismatch("KVCache", "v", v.shape(), Shape<4>{nb, hkv, n, dv});
    if (static_cast<index_t>(positions.size()) != n)
      throw shape_error("attnkit: KVCache: " + std::to_string(positions.size()) +
                        " positions for " + std::to_string(n) + " rows");
    if (hkv < 1 || query_heads < 1 || query_heads % hkv != 0)
      throw shape_error("attnkit: KVCache: " + std::to_string(query_heads) +
                        " query heads are not a multiple of " + std::to_string(hkv) + " kv heads");
    if (!k_.empty() && (nb_ != nb || hkv_ != hkv || d_ != d || dv_ != dv))
      throw shape_error("attnkit: KVCache: the cache holds keys " +
                        shape_string(Shape<4>{nb_, hkv_, cap_, d_}) + " and values " +
                        shape_string(Shape<4>{nb_, hkv_, cap_, dv_}) + ", the step brings " +
                        shape_string(k.shape()) + " and " + shape_string(v.shape()));
    if (tracked() && nb != 1)
      throw shape_error(
          "attnkit: KVCache: the retention modes soft-delete and sparse need batch "
          "1, got keys " +
          shape_string(k.shape()));
    if (n == 0) return;
    nb_ = nb;
    hkv_ = hkv;
    d_ = d;
    dv_ = dv;
    if (bounded_) {
      step_bounded(k, v, positions, rope, attend);
    } else if (tracked()) {
      step_retention(k, v, positions, rope, query_heads, attend);
    } else {
      append(k, v, positions, rope, 0, n);
      call_attend(attend, index_t{0}, n, k_, begin_, end_, TensorView<T, 4>{});
    }
    ++steps_;
  }

 private:
  CachePolicy policy_;
  KVDtype dtype_ = KVDtype::compute;
  bool bounded_ = false;
  index_t sinks_ = 0, window_ = 0;
  MemoryMode mode_ = MemoryMode::baseline;
  RetentionParams params_{};

  index_t nb_ = 0, hkv_ = 0, d_ = 0, dv_ = 0;
  KVSlab<T> k_, v_;              // [B, Hkv, cap, D], [B, Hkv, cap, Dv] of dtype_
  Tensor<T, 4> stage_;           // the new keys of a step as T, rotated before they are stored
  std::vector<T> row_;           // one row as T
  index_t cap_ = 0;              // slots of the storage
  index_t reserve_ = 0;          // slots reserve() asked for
  index_t begin_ = 0, end_ = 0;  // held slots [begin_, end_)
  index_t seen_ = 0, steps_ = 0, evicted_ = 0;
  std::vector<index_t> pos_;  // [cap] absolute position per slot
  // Sink caches: the first S tokens, keys not rotated, and their positions.
  Tensor<T, 4> sink_k_, sink_v_;  // [B, Hkv, S, D], [B, Hkv, S, Dv]
  std::vector<index_t> sink_pos_;
  // Retention (soft-delete, sparse): per slot.
  std::vector<double> strength_;
  std::vector<index_t> last_;
  std::vector<double> forget_after_;  // sparse: Δsteps beyond which R < forget_threshold
  KVSlab<T> scaled_k_;                // soft-delete: R-scaled keys [1, Hkv, cap, D]
  Tensor<T, 4> probs_;                // decode weights [1, Hq, 1, cap]
  std::vector<double> weight_;        // a block of a decode step's head-summed weights
  double neg_log_forget_ = 0.0;       // -ln forget_threshold (forget_after, once per reinforcement)
  static constexpr index_t few_drops = 16;   // up to this many drops: one selecting pass
  static constexpr index_t scan_block = 64;  // slots a branch-free count passes over at once
  std::vector<index_t> order_;               // dynamic threshold scratch
  std::vector<double> decay_;                // dynamic threshold scratch
  std::vector<index_t> dropped_;             // slots forgotten this step, ascending

  bool tracked() const noexcept { return mode_ != MemoryMode::baseline; }

  /// Whether any of v[j0, j1) is at least cut: a branch-free count, so that a scan block
  /// without one costs a few vector instructions.
  static bool any_at_least(const std::vector<double>& v, index_t j0, index_t j1,
                           double cut) noexcept {
    index_t hits = 0;
    for (index_t i = j0; i < j1; ++i) hits += v[static_cast<std::size_t>(i)] >= cut;
    return hits != 0;
  }

  double retention_at(std::size_t slot, index_t t) const {
    const double dt = double(t - last_[slot]) * params_.time_per_step;
    return std::exp(-dt / strength_[slot]);
  }

  /// Steps without reinforcement after which R < forget_threshold (infinite when it never is).
  /// Computed as strength · (-ln threshold / time_per_step): it only bounds the exact test
  /// (forget() compares Δsteps + 1 with it before computing R), so its rounding does not matter.
  double forget_after(double strength) const {
    if (!can_forget()) return std::numeric_limits<double>::infinity();
    return strength * forget_steps_per_strength();
  }

  /// forget_after per unit of strength: -ln forget_threshold / time_per_step (when can_forget()).
  double forget_steps_per_strength() const noexcept {
    return neg_log_forget_ / params_.time_per_step;
  }

  /// Whether tokens can be forgotten by the fixed threshold at all.
  bool can_forget() const noexcept {
    return params_.forget_threshold > 0 && params_.time_per_step > 0;
  }

  template <class S>
  void check_view_type() const {
    const bool ok = dtype_ == KVDtype::compute ? std::is_same_v<S, T>
                    : dtype_ == KVDtype::bf16  ? std::is_same_v<S, bf16>
                                               : std::is_same_v<S, f16>;
    if (!ok)
      throw error("attnkit: KVCache: the cache stores " + kv_dtype_name(dtype_) +
                  " keys and values; view them as that type");
  }

  /// Calls attend(r0, r1, keys, values, probs) with the held keys (slots [kb, ke) of `keys`)
  /// and values as views of the stored type.
  template <class Attend>
  void call_attend(Attend& attend, index_t r0, index_t r1, const KVSlab<T>& keys, index_t kb,
                   index_t ke, TensorView<T, 4> probs) const {
    if constexpr (std::is_same_v<T, float>) {
      if (dtype_ == KVDtype::bf16)
        return attend(r0, r1, keys.template view<bf16>(kb, ke),
                      v_.template view<bf16>(begin_, end_), probs);
      if (dtype_ == KVDtype::f16)
        return attend(r0, r1, keys.template view<f16>(kb, ke), v_.template view<f16>(begin_, end_),
                      probs);
    }
    attend(r0, r1, keys.template view<T>(kb, ke), v_.template view<T>(begin_, end_), probs);
  }

  /// stage_ as [B, Hkv, m, D] (grown when needed, no allocation otherwise).
  TensorView<T, 4> stage(index_t m) {
    if (stage_.size() < nb_ * hkv_ * m * d_)
      stage_ = Tensor<T, 4>({nb_, hkv_, std::max<index_t>(m, 16), d_});
    return TensorView<T, 4>(stage_.data(), Shape<4>{nb_, hkv_, m, d_});
  }

  /// Moves held slots [begin_, end_) to [0, length) of a storage of `cap` slots.
  void relocate(index_t cap) {
    const index_t len = length();
    const bool same = cap == cap_ && !k_.empty();
    if (same && begin_ == 0) return;
    KVSlab<T> nk = same ? std::move(k_) : KVSlab<T>(dtype_, nb_, hkv_, cap, d_);
    KVSlab<T> nv = same ? std::move(v_) : KVSlab<T>(dtype_, nb_, hkv_, cap, dv_);
    for (index_t b = 0; b < nb_; ++b)
      for (index_t h = 0; h < hkv_; ++h) {
        if (len == 0) break;
        if (same) {
          std::memmove(nk.row(b, h, 0), nk.row(b, h, begin_), nk.bytes(len));
          std::memmove(nv.row(b, h, 0), nv.row(b, h, begin_), nv.bytes(len));
        } else {
          std::memcpy(nk.row(b, h, 0), k_.row(b, h, begin_), nk.bytes(len));
          std::memcpy(nv.row(b, h, 0), v_.row(b, h, begin_), nv.bytes(len));
        }
      }
    auto move_meta = [&](auto& vec, auto fill) {
      vec.erase(vec.begin(), vec.begin() + begin_);
      vec.resize(static_cast<std::size_t>(cap), fill);
    };
    move_meta(pos_, index_t{0});
    if (tracked()) {
      move_meta(strength_, 0.0);
      move_meta(last_, index_t{0});
      move_meta(forget_after_, 0.0);
    }
    k_ = std::move(nk);
    v_ = std::move(nv);
    cap_ = cap;
    begin_ = 0;
    end_ = len;
  }

  /// Room for m more slots at the end: compacts when that suffices, else grows by doubling.
  /// Window and sink caches grow to at least twice what they hold, so their compactions (every
  /// capacity - held steps) cost amortized O(D) per step.
  void make_room(index_t m) {
    if (end_ + m <= cap_) return;
    const index_t need = length() + m, want = bounded_ ? 2 * need : need;
    if (begin_ > 0 && want <= cap_) {
      relocate(cap_);
      return;
    }
    index_t cap = std::max<index_t>({cap_, 16, reserve_});
    while (cap < want) cap *= 2;
    relocate(cap);
  }

  /// Appends rows [r0, r1) of k, v at the end, keys rotated at their positions.
  void append(TensorView<const T, 4> k, TensorView<const T, 4> v,
              std::span<const index_t> positions, const block::RoPE* rope, index_t r0, index_t r1) {
    const index_t m = r1 - r0;
    make_room(m);
    // The keys are rotated as T in stage_, then stored (rounded to the storage type).
    const TensorView<T, 4> st = stage(m);
    row_.resize(static_cast<std::size_t>(std::max(d_, dv_)));
    for (index_t b = 0; b < nb_; ++b)
      for (index_t h = 0; h < hkv_; ++h)
        for (index_t r = 0; r < m; ++r) {
          for (index_t c = 0; c < d_; ++c) st(b, h, r, c) = k(b, h, r0 + r, c);
          for (index_t c = 0; c < dv_; ++c) row_[static_cast<std::size_t>(c)] = v(b, h, r0 + r, c);
          v_.store(b, h, end_ + r, row_.data());
        }
    // The first S tokens ever seen are the sinks: keep them un-rotated too.
    if (sinks_ > 0 && seen_ < sinks_) {
      if (sink_k_.size() == 0) {
        sink_k_ = Tensor<T, 4>({nb_, hkv_, sinks_, d_});
        sink_v_ = Tensor<T, 4>({nb_, hkv_, sinks_, dv_});
        sink_pos_.assign(static_cast<std::size_t>(sinks_), 0);
      }
      for (index_t r = 0; r < m && seen_ + r < sinks_; ++r) {
        const index_t s = seen_ + r;
        sink_pos_[static_cast<std::size_t>(s)] = positions[static_cast<std::size_t>(r0 + r)];
        for (index_t b = 0; b < nb_; ++b)
          for (index_t h = 0; h < hkv_; ++h) {
            for (index_t c = 0; c < d_; ++c) sink_k_(b, h, s, c) = k(b, h, r0 + r, c);
            for (index_t c = 0; c < dv_; ++c) sink_v_(b, h, s, c) = v(b, h, r0 + r, c);
          }
      }
    }
    if (rope != nullptr) rope->apply<T>(st, positions.subspan(r0, m));
    for (index_t b = 0; b < nb_; ++b)
      for (index_t h = 0; h < hkv_; ++h)
        for (index_t r = 0; r < m; ++r) k_.store(b, h, end_ + r, &st(b, h, r, 0));
    for (index_t r = 0; r < m; ++r)
      pos_[static_cast<std::size_t>(end_ + r)] = positions[static_cast<std::size_t>(r0 + r)];
    end_ += m;
    seen_ += m;
  }

  /// Writes the sinks into slots [begin_, begin_ + S), rotated at their position + evicted.
  void write_sinks(const block::RoPE* rope) {
    const index_t s = std::min(sinks_, seen_);
    const TensorView<T, 4> st = stage(s);
    for (index_t b = 0; b < nb_; ++b)
      for (index_t h = 0; h < hkv_; ++h)
        for (index_t j = 0; j < s; ++j) {
          std::memcpy(&st(b, h, j, 0), &sink_k_(b, h, j, 0), sizeof(T) * std::size_t(d_));
          v_.store(b, h, begin_ + j, &sink_v_(b, h, j, 0));
        }
    ScratchFrame frame;  // no allocation per step (core/scratch_stack.hpp)
    const std::span<index_t> at = frame.array<index_t>(s);
    for (index_t j = 0; j < s; ++j) {
      at[static_cast<std::size_t>(j)] = sink_pos_[static_cast<std::size_t>(j)] + evicted_;
      pos_[static_cast<std::size_t>(begin_ + j)] = sink_pos_[static_cast<std::size_t>(j)];
    }
    if (rope != nullptr && s > 0) rope->apply<T>(st, at);
    for (index_t b = 0; b < nb_; ++b)
      for (index_t h = 0; h < hkv_; ++h)
        for (index_t j = 0; j < s; ++j) k_.store(b, h, begin_ + j, &st(b, h, j, 0));
  }

  template <class Attend>
  void step_bounded(TensorView<const T, 4> k, TensorView<const T, 4> v,
                    std::span<const index_t> positions, const block::RoPE* rope, Attend& attend) {
    const index_t n = k.extent(2), cap = sinks_ + window_;
    index_t r = 0;
    while (r < n) {
      if (length() < cap) {  // rows that fit without evicting: one call, causal among them
        const index_t m = std::min(n - r, cap - length());
        append(k, v, positions, rope, r, r + m);
        call_attend(attend, r, r + m, k_, begin_, end_, TensorView<T, 4>{});
        r += m;
        continue;
      }
      // Full: the oldest window token (slot begin_ + S) leaves; the sinks move up one slot,
      // re-rotated for the new shift.
      ++begin_;
      ++evicted_;
      if (sinks_ > 0) write_sinks(rope);
      append(k, v, positions, rope, r, r + 1);
      call_attend(attend, r, r + 1, k_, begin_, end_, TensorView<T, 4>{});
      ++r;
    }
  }

  /// Grows the per-slot retention state with the storage.
  void sync_meta() {
    const auto cap = static_cast<std::size_t>(cap_);
    if (strength_.size() != cap) {
      strength_.resize(cap, 0.0);
      last_.resize(cap, 0);
      forget_after_.resize(cap, 0.0);
    }
  }

  /// Sparse: drops the tokens forgotten at step t (fixed or dynamic threshold), compacting by
  /// moving the last held slot into each hole. `incoming` rows are about to be added.
  void forget(index_t t, index_t incoming) {
    const index_t len = length();
    dropped_.clear();
    if (params_.keep_fraction > 0) {
      const double budget = std::ceil(params_.keep_fraction * double(seen_ + incoming));
      const index_t keep = std::max<index_t>(0, static_cast<index_t>(budget) - incoming);
      if (len > keep) {
        // The c = len - keep least retained: largest Δt / S first, then the older position (a
        // strict total order: positions differ, so the set is unique).
        const index_t c = len - keep;
        decay_.resize(static_cast<std::size_t>(len));
        for (index_t j = 0; j < len; ++j) {
          const auto s = static_cast<std::size_t>(j);
          decay_[s] = double(t - last_[s]) / strength_[s];  // -ln R / time_per_step
        }
        auto less_retained = [&](index_t a, index_t b) {
          const auto sa = static_cast<std::size_t>(a), sb = static_cast<std::size_t>(b);
          if (decay_[sa] != decay_[sb]) return decay_[sa] > decay_[sb];
          return pos_[sa] < pos_[sb];
        };
        if (c <= few_drops) {
          // A decode step after the first drops one token or none: one pass keeping the c least
          // retained so far, ordered (a selection over the whole cache took a fifth of a step).
          // Once c are held, a block of slots none of which decays as fast as the most retained
          // held one is passed over by a branch-free count (the pass ran at a few cycles a slot).
          index_t j = 0;
          for (; j < len && index_t(dropped_.size()) < c; ++j)
            dropped_.insert(std::upper_bound(dropped_.begin(), dropped_.end(), j, less_retained),
                            j);
          while (j < len) {
            const index_t end = std::min(len, j + scan_block);
            if (any_at_least(decay_, j, end, decay_[static_cast<std::size_t>(dropped_.back())]))
              for (index_t i = j; i < end; ++i) {
                if (!less_retained(i, dropped_.back())) continue;  // i replaces the most retained
                dropped_.pop_back();
                dropped_.insert(
                    std::upper_bound(dropped_.begin(), dropped_.end(), i, less_retained), i);
              }
            j = end;
          }
        } else {
          order_.resize(static_cast<std::size_t>(len));
          for (index_t j = 0; j < len; ++j) order_[static_cast<std::size_t>(j)] = j;
          const auto nth = order_.begin() + c;
          std::nth_element(order_.begin(), nth - 1, order_.end(), less_retained);
          dropped_.assign(order_.begin(), nth);
        }
        std::sort(dropped_.begin(), dropped_.end());
      }
    } else {
      for (index_t j = 0; j < len; ++j) {
        const auto s = static_cast<std::size_t>(j);
        // Cheap test first (Δsteps against the precomputed bound), the formula near the bound.
        if (double(t - last_[s]) + 1.0 >= forget_after_[s] &&
            retention_at(s, t) < params_.forget_threshold)
          dropped_.push_back(j);
      }
    }
    // Highest slot first: the slot moved into a hole is then always a kept one.
    for (auto it = dropped_.rbegin(); it != dropped_.rend(); ++it) {
      const index_t j = *it, last = end_ - 1;
      if (j != last) {
        for (index_t b = 0; b < nb_; ++b)
          for (index_t h = 0; h < hkv_; ++h) {
            std::memcpy(k_.row(b, h, j), k_.row(b, h, last), k_.bytes(1));
            std::memcpy(v_.row(b, h, j), v_.row(b, h, last), v_.bytes(1));
          }
        const auto a = static_cast<std::size_t>(j), z = static_cast<std::size_t>(last);
        pos_[a] = pos_[z];
        strength_[a] = strength_[z];
        last_[a] = last_[z];
        forget_after_[a] = forget_after_[z];
      }
      --end_;
    }
    evicted_ += static_cast<index_t>(dropped_.size());
  }

  template <class Attend>
  void step_retention(TensorView<const T, 4> k, TensorView<const T, 4> v,
                      std::span<const index_t> positions, const block::RoPE* rope,
                      index_t query_heads, Attend& attend) {
    const index_t n = k.extent(2), t = steps_;
    if (mode_ == MemoryMode::sparse) forget(t, n);
    const index_t old = end_;
    append(k, v, positions, rope, 0, n);
    sync_meta();
    for (index_t j = old; j < end_; ++j) {
      const auto s = static_cast<std::size_t>(j);
      strength_[s] = params_.initial_strength;
      last_[s] = t;
      forget_after_[s] = forget_after(params_.initial_strength);
    }
    const index_t len = length();
    const KVSlab<T>* keys_read = &k_;
    if (mode_ == MemoryMode::soft_delete) {
      if (scaled_k_.empty() || scaled_k_.capacity() != cap_)
        scaled_k_ = KVSlab<T>(dtype_, 1, hkv_, cap_, d_);
      row_.resize(static_cast<std::size_t>(std::max(d_, dv_)));
      for (index_t j = 0; j < len; ++j) {
        const T r = static_cast<T>(retention_at(static_cast<std::size_t>(j), t));
        for (index_t h = 0; h < hkv_; ++h) scaled_k_.store_scaled(0, h, j, k_, r, row_.data());
      }
      keys_read = &scaled_k_;
    }
    if (n != 1) {
      call_attend(attend, index_t{0}, n, *keys_read, 0, len, TensorView<T, 4>{});
      return;
    }
    if (probs_.size() == 0 || probs_.extent(1) != query_heads || probs_.extent(3) < len)
      probs_ = Tensor<T, 4>({1, query_heads, 1, std::max(cap_, len)});
    const TensorView<T, 4> probs = probs_.view().slice(0, len, 3);
    call_attend(attend, index_t{0}, index_t{1}, *keys_read, 0, len, probs);
    // Reinforce: head-mean weight >= threshold -> S += gain, Δt resets. A block of slots at a
    // time: the weights summed over the heads (in head order), then every slot of the block
    // updated by selects, not branches (which slots cross the threshold is data: one branch per
    // slot mispredicts).
    const double thr = params_.reinforce_threshold * double(query_heads);
    const double gain = params_.strength_gain;
    const bool forgets = can_forget();
    const double bound_per_strength = forgets ? forget_steps_per_strength() : 0.0;
    weight_.resize(static_cast<std::size_t>(scan_block));
    double* w = weight_.data();
    double* strength = strength_.data();
    index_t* last = last_.data();
    double* bound = forget_after_.data();
    for (index_t j0 = 0; j0 < len; j0 += scan_block) {
      const index_t nb = std::min(scan_block, len - j0);
      for (index_t j = 0; j < nb; ++j) w[j] = 0.0;
      for (index_t h = 0; h < query_heads; ++h) {
        const T* p = &probs_(0, h, 0, j0);
        for (index_t j = 0; j < nb; ++j) w[j] += double(p[j]);
      }
      double* sj = strength + j0;
      index_t* lj = last + j0;
      double* fj = bound + j0;
      for (index_t j = 0; j < nb; ++j) {
        const bool hit = w[j] >= thr;
        const double s1 = sj[j] + gain;
        sj[j] = hit ? s1 : sj[j];
        lj[j] = hit ? t : lj[j];
        if (forgets) fj[j] = hit ? s1 * bound_per_strength : fj[j];
      }
    }
  }
};

}  // namespace attnkit::modules
