// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// generate(): prefill then one token per step through the decoder's caches, with a sampler, and
// the statistics of the run and of each layer (tokens/s, memory kept, retention, sparsity).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "attnkit/core/tensor.hpp"
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
  std::vector<modules::CacheStats> layers;  ///< per layer, at the end

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

  /// The one-line JSON of docs/CLI.md (`attnkit generate`), plus "cache" and a per-layer
  /// "layers" list.
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
         ", \"cache\": \"" + cache + "\", \"layers\": [";
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

/// Callbacks of generate(); empty members are not called.
/// \tparam T the decoder's element type
template <class T>
struct GenerateHooks {
  /// The prefill's logits [N, V] (e.g. for `--dump-logits`).
  std::function<void(const Tensor<T, 2>& logits)> prefill;
  /// Each new token, as soon as it is chosen (e.g. to stream text).
  std::function<void(std::int64_t id)> token;
};

/// Prefills `prompt` into `state` (its cache policy decides what the layers keep), then chooses
/// `max_new_tokens` tokens with `sampler` (whose processors see the prompt and the tokens so far
/// as context), running one forward step per token after the first. Timings use a steady clock.
/// \tparam Policy, T, Layer the decoder's \tparam Processors the sampler's
template <class Policy, class T, class Layer, class Processors>
GenerationResult generate(const Decoder<Policy, T, Layer>& model,
                          std::span<const std::int64_t> prompt,
                          index_t max_new_tokens, Sampler<Processors>& sampler,
                          DecoderState<T>& state, const GenerateHooks<T>& hooks = {}) {
  using clock = std::chrono::steady_clock;
  GenerationResult r;
  r.prompt_tokens = static_cast<index_t>(prompt.size());
  const auto* ret = std::get_if<modules::RetentionCache>(&state.cache);
  r.mode = modules::memory_mode_name(ret != nullptr ? ret->mode : modules::MemoryMode::baseline);
  r.cache = ret != nullptr ? "full" : modules::cache_policy_name(state.cache);
  std::vector<std::int64_t> context(prompt.begin(), prompt.end());
  const auto t0 = clock::now();
  Tensor<T, 2> logits = model.forward(prompt, state);
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
    if (s + 1 < max_new_tokens) {
      const std::int64_t one[1] = {id};
      logits = model.forward(std::span<const std::int64_t>(one, 1), state);
      ++r.decode_steps;
    }
  }
  const auto t2 = clock::now();
  r.prefill_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
  r.decode_s = std::chrono::duration<double>(t2 - t1).count();
  r.layers = state.stats();
  return r;
}

}  // namespace attnkit::model
