// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// generate(): prefill then one token per step through the decoder's caches, with a sampler, and
// the statistics of the run and of each layer (tokens/s, memory kept, retention, sparsity).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "attnkit/core/shape.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/model/decoder.hpp"
#include "attnkit/model/sampling.hpp"
#include "attnkit/modules/kv_cache.hpp"

namespace attnkit::model {

/// What one generate() call produced and measured.
struct GenerationResult {
  std::vector<std::int64_t> ids;  ///< the generated tokens only
  index_t prompt_tokens = 0;
  double prefill_ms = 0;     ///< the prompt's forward pass
  double decode_s = 0;       ///< the forward passes after the prefill
  index_t decode_steps = 0;  ///< forward passes after the prefill (new tokens - 1)
  std::string mode;          ///< the memory mode (baseline for the plain caches)
  std::string cache;         ///< the cache policy ("full", "window=W", "sinks=S,W", ...)
  std::string kv_dtype;      ///< what the caches store: "f32" (the compute type), "bf16", "f16"
  std::vector<modules::CacheStats> layers;  ///< per layer, at the end
  /// Why generation stopped: "eos" (a stop token was chosen; it is the last of ids) or
  /// "length" (max_new_tokens).
  std::string stop = "length";

  /// Decode steps per second (0 without any).
  double tokens_per_s() const {
    return decode_steps > 0 && decode_s > 0 ? decode_steps / decode_s : 0;
  }
  /// Tokens held at the end, mean over layers.
  double memory_tokens() const {
    return mean([](const modules::CacheStats& s) { return double(s.memory_tokens); });
  }
  /// Mean retention of the held tokens, mean over layers (1 when retention is not tracked).
  double mean_retention() const {
    return mean([](const modules::CacheStats& s) { return s.mean_retention; });
  }
  /// 1 - held / seen, mean over layers.
  double sparsity() const {
    return mean([](const modules::CacheStats& s) { return s.sparsity; });
  }

  /// The one-line JSON of docs/CLI.md (`attnkit generate`), plus "cache", "kv_dtype" and a
  /// per-layer "layers" list.
  std::string json() const {
    auto num = [](double v) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", v);
      return std::string(buf);
    };
    std::string s = "{\"ids\": [";
    for (std::size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
    s += "], \"prompt_tokens\": " + std::to_string(prompt_tokens) +
         ", \"new_tokens\": " + std::to_string(ids.size()) +
         ", \"prefill_ms\": " + num(prefill_ms) + ", \"tokens_per_s\": " + num(tokens_per_s()) +
         ", \"mode\": \"" + mode + "\", \"memory_tokens\": " + num(memory_tokens()) +
         ", \"mean_retention\": " + num(mean_retention()) + ", \"sparsity\": " + num(sparsity()) +
         ", \"cache\": \"" + cache + "\", \"kv_dtype\": \"" + kv_dtype + "\", \"stop\": \"" + stop +
         "\", \"layers\": [";
    for (std::size_t l = 0; l < layers.size(); ++l)
      s += std::string(l ? ", " : "") + "{\"layer\": " + std::to_string(l) +
           ", \"memory_tokens\": " + std::to_string(layers[l].memory_tokens) +
           ", \"mean_retention\": " + num(layers[l].mean_retention) +
           ", \"sparsity\": " + num(layers[l].sparsity) + "}";
    return s + "]}";
  }

 private:
  template <class F>
  double mean(F f) const {
    if (layers.empty()) return 0;
    double sum = 0;
    for (const modules::CacheStats& s : layers) sum += f(s);
    return sum / double(layers.size());
  }
};

/// The attention weights of a generate() run, per forward call and layer (a
/// `return_attention_weights` for generation), kept within a memory budget the caller sets.
/// \tparam T the decoder's element type
template <class T>
struct AttentionTrace {
  /// The weights of one layer's attention in one forward call.
  struct Record {
    index_t step = 0;       ///< 0: the prefill; s >= 1: the s-th decode step
    index_t layer = 0;      ///< the layer
    index_t first_row = 0;  ///< the sequence position of the first row
    /// P [Hq, rows, keys]: the call's rows (the prompt's N at step 0, the new token after) over
    /// the keys the layer's cache held, in the cache's order (a window or sink cache holds
    /// fewer than the sequence; a sparse retention cache its kept tokens).
    Tensor<T, 3> weights;
  };

  std::size_t budget_bytes = std::size_t{64} << 20;  ///< the most `records` may hold
  std::vector<index_t> layers;                       ///< the layers to record (empty: all)
  bool prefill = true;  ///< record the prefill's [Hq, N, N] weights (the largest) too

  std::vector<Record> records;  ///< in call order, then layer order
  std::size_t bytes = 0;        ///< the bytes `records` hold (<= budget_bytes)
  /// Records not kept: the first that would have passed the budget and every one after it
  /// (the kernel then runs its usual path, without capture, for them).
  index_t dropped = 0;

  /// Whether every wanted record was kept.
  bool complete() const noexcept { return dropped == 0; }
};

/// Callbacks of generate(); empty members are not called.
/// \tparam T the decoder's element type
template <class T>
struct GenerateHooks {
  /// The prefill's logits [N, V] (e.g. for `--dump-logits`).
  std::function<void(const Tensor<T, 2>& logits)> prefill;
  /// Each new token, as soon as it is chosen (e.g. to stream text).
  std::function<void(std::int64_t id)> token;
  /// When set, filled with the attention weights of every step (see AttentionTrace).
  AttentionTrace<T>* attention = nullptr;
};

namespace detail {

/// The decoder hooks that fill an AttentionTrace: the kernel writes each wanted call's weights
/// straight into a new record while the budget allows.
template <class T>
class TraceRecorder {
 public:
  TraceRecorder(AttentionTrace<T>& trace, index_t layers)
      : trace_(trace),
        caps_(static_cast<std::size_t>(layers)),
        rows_(static_cast<std::size_t>(layers), 0) {
    for (index_t l = 0; l < layers; ++l)
      caps_[static_cast<std::size_t>(l)].probs = [this, l](const Shape<4>& s) {
        return buffer(l, s);
      };
    hooks_.attention = [this](index_t l) { return &caps_[static_cast<std::size_t>(l)]; };
  }

  /// The hooks of the forward call of `step` whose first row is at `position`.
  const DecoderHooks<T>& begin(index_t step, index_t position) {
    step_ = step;
    position_ = position;
    std::fill(rows_.begin(), rows_.end(), index_t{0});
    return hooks_;
  }

 private:
  TensorView<T, 4> buffer(index_t l, const Shape<4>& s) {
    AttentionTrace<T>& t = trace_;
    const index_t first = position_ + rows_[static_cast<std::size_t>(l)];
    rows_[static_cast<std::size_t>(l)] += s[2];
    const bool wanted =
        (step_ > 0 || t.prefill) &&
        (t.layers.empty() || std::find(t.layers.begin(), t.layers.end(), l) != t.layers.end());
    if (!wanted) return {};
    const std::size_t need = static_cast<std::size_t>(s[1] * s[2] * s[3]) * sizeof(T);
    if (t.dropped > 0 || need > t.budget_bytes - t.bytes) {
      ++t.dropped;
      return {};
    }
    t.records.push_back({step_, l, first, Tensor<T, 3>({s[1], s[2], s[3]})});
    t.bytes += need;
    return TensorView<T, 4>(t.records.back().weights.data(), s);
  }

  AttentionTrace<T>& trace_;
  std::vector<modules::AttentionCapture<T>> caps_;
  std::vector<index_t> rows_;  // rows of the current call seen so far, per layer
  DecoderHooks<T> hooks_;
  index_t step_ = 0, position_ = 0;
};

}  // namespace detail

/// Prefills `prompt` into `state` (its cache policy decides what the layers keep), then chooses
/// `max_new_tokens` tokens with `sampler` (whose processors see the prompt and the tokens so far
/// as context), running one forward step per token after the first. Timings use a steady clock.
/// With `hooks.attention` set, the attention weights of every call are recorded into it (batch
/// 1: the records are [Hq, rows, keys]) within its budget. Generation stops early after a token
/// of `stop_ids` (for instance the model's config.eos_token_ids), which ends `ids`.
/// \tparam Policy, T, Layer the decoder's \tparam Processors the sampler's
template <class Policy, class T, class Layer, class Processors>
GenerationResult generate(const Decoder<Policy, T, Layer>& model,
                          std::span<const std::int64_t> prompt, index_t max_new_tokens,
                          Sampler<Processors>& sampler, DecoderState<T>& state,
                          const GenerateHooks<T>& hooks = {},
                          std::span<const std::int64_t> stop_ids = {}) {
  using clock = std::chrono::steady_clock;
  GenerationResult r;
  r.prompt_tokens = static_cast<index_t>(prompt.size());
  const auto* ret = std::get_if<modules::RetentionCache>(&state.cache);
  r.mode = modules::memory_mode_name(ret != nullptr ? ret->mode : modules::MemoryMode::baseline);
  r.cache = ret != nullptr ? "full" : modules::cache_policy_name(state.cache);
  r.kv_dtype = state.kv_dtype == modules::KVDtype::compute && !std::is_same_v<T, float>
                   ? "f64"
                   : modules::kv_dtype_name(state.kv_dtype);
  std::vector<std::int64_t> context(prompt.begin(), prompt.end());
  std::optional<detail::TraceRecorder<T>> trace;
  if (hooks.attention != nullptr)
    trace.emplace(*hooks.attention, static_cast<index_t>(model.layers.size()));
  auto step = [&](std::span<const std::int64_t> ids, index_t s) {
    return trace ? model.forward(ids, state, trace->begin(s, state.position))
                 : model.forward(ids, state);
  };
  const auto t0 = clock::now();
  Tensor<T, 2> logits = step(prompt, 0);
  const auto t1 = clock::now();
  if (hooks.prefill) hooks.prefill(logits);
  for (index_t s = 0; s < max_new_tokens; ++s) {
    const index_t v = logits.extent(1);
    const std::int64_t id = sampler.next(
        std::span<const T>(&logits(logits.extent(0) - 1, 0), static_cast<std::size_t>(v)),
        std::span<const std::int64_t>(context));
    r.ids.push_back(id);
    context.push_back(id);
    if (hooks.token) hooks.token(id);
    if (std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end()) {
      r.stop = "eos";
      break;
    }
    if (s + 1 < max_new_tokens) {
      const std::int64_t one[1] = {id};
      ++r.decode_steps;
      logits = step(std::span<const std::int64_t>(one, 1), r.decode_steps);
    }
  }
  const auto t2 = clock::now();
  r.prefill_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  r.decode_s = std::chrono::duration<double>(t2 - t1).count();
  r.layers = state.stats();
  return r;
}

}  // namespace attnkit::model
