// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Decoder<Policy>: a LLaMA-style decoder-only transformer (embedding, pre-norm blocks of
// attention + SwiGLU MLP with residuals, final RMSNorm, LM head or tied embeddings) and its
// loader for Hugging Face style model folders (config.json + model.safetensors).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "attnkit/modules/multi_head_attention.hpp"
#include "attnkit/block/feed_forward.hpp"
#include "attnkit/block/linear.hpp"
#include "attnkit/block/norm.hpp"
#include "attnkit/block/rope.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/io/safetensors.hpp"
#include "attnkit/model/config.hpp"
#include "attnkit/modules/transformer_block.hpp"
#include "attnkit/modules/kv_cache.hpp"

namespace attnkit::model {

/// One layer of the LLaMA recipe: a pre-norm modules::TransformerBlock with RMSNorm and a
/// SwiGLU MLP, h += attn(rms1(h)); h += mlp(rms2(h)). Its members: `attn` (the q/k/v/o (+ g)
/// projections), `ffn` (gate/up [I, H], down [H, I]), `norm` (RMSNorm, the config's eps),
/// `norm1_weight` (input_layernorm [H]) and `norm2_weight` (post_attention_layernorm [H]).
/// \tparam Policy the attention policy
/// \tparam T float or double
template <class Policy, class T>
using DecoderLayer =
    modules::TransformerBlock<Policy, block::RMSNorm, block::PreNorm, block::SwiGLU<T>, T>;

/// Per-sequence state of incremental decoding: one KV cache per layer (all under the same cache
/// policy: full by default, or a window, attention sinks, an Ebbinghaus retention mode; see
/// modules/kv_cache.hpp) and the next position.
template <class T>
struct DecoderState {
  /// The policy of the layers' caches (made on first use).
  modules::CachePolicy cache = modules::FullCache{};
  std::vector<modules::KVCache<T>> layers;
  index_t position = 0;  ///< positions consumed so far (the next token's RoPE position)

  DecoderState() = default;
  /// \param policy the cache policy of every layer
  explicit DecoderState(modules::CachePolicy policy) : cache(std::move(policy)) {}

  /// Statistics of each layer's cache.
  std::vector<modules::CacheStats> stats() const {
    std::vector<modules::CacheStats> s;
    for (const modules::KVCache<T>& l : layers) s.push_back(l.stats());
    return s;
  }
};

/// Observers of one Decoder::forward pass (attnkit/inspect/ is built on them). Empty members
/// observe nothing; a pass without hooks runs exactly as before.
/// \tparam T float or double
template <class T>
struct DecoderHooks {
  /// The attention capture of layer l (see AttentionCapture), or nullptr for none.
  std::function<const modules::AttentionCapture<T>*(index_t layer)> attention;
  /// Called after layer l with its output hidden state (the residual stream) [n, hidden].
  std::function<void(index_t layer, TensorView<const T, 2> hidden)> hidden;
};

/// A LLaMA-style decoder. Weights are views: into the memory-mapped safetensors file for F32
/// weights and T = float (zero-copy), else into tensors converted on load; the decoder keeps
/// both alive (copies share them).
///
/// forward(ids) runs the prefill pass of one sequence and returns the logits [N, V] of every
/// position; forward(ids, state) appends ids to a KV-cached sequence and returns their logits.
/// \tparam Policy an attnkit::policy::AttentionPolicy (activation, mask — Causal for a
///   decoder —, score mod, gate; see model/variants.hpp for the named variants). A score mod
///   that encodes positions (policy::ALiBi; see policy::encodes_positions) replaces RoPE.
/// \tparam T float or double
template <class Policy, class T = float>
class Decoder {
 public:
  using policy_type = Policy;
  using value_type = T;

  DecoderConfig config;
  TensorView<const T, 2> embed_tokens;  ///< [V, H]
  std::vector<DecoderLayer<Policy, T>> layers;
  TensorView<const T, 1> norm;     ///< [H], the final RMSNorm
  TensorView<const T, 2> lm_head;  ///< [V, H] (embed_tokens when tied)

  /// Loads DIR/config.json and DIR/model.safetensors (the key names of docs/CLI.md, F32/F16/BF16).
  /// Throws attnkit::error (file_error, shape_error) naming the file and the key for a malformed
  /// config, a missing tensor or a tensor of the wrong shape or dtype.
  /// \param dir the model folder
  /// \param policy the attention policy every layer uses (runtime values)
  /// \param mode memory-map (default) or read the safetensors file
  static Decoder load(const std::string& dir, const Policy& policy = Policy{},
                      io::LoadMode mode = io::LoadMode::map) {
    Decoder m;
    m.config = DecoderConfig::load(dir + "/config.json");
    auto file = std::make_shared<io::SafetensorsFile>(
        io::SafetensorsFile::open(dir + "/model.safetensors", mode));
    m.keep_.push_back(file);
    const DecoderConfig& c = m.config;
    const index_t h = c.hidden_size, i = c.intermediate_size, d = c.head_dim;
    const index_t hq = c.num_attention_heads, hkv = c.num_key_value_heads;
    m.embed_tokens = m.template get<2>(*file, "model.embed_tokens.weight", {c.vocab_size, h});
    for (index_t l = 0; l < c.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      DecoderLayer<Policy, T> layer;
      layer.norm = block::RMSNorm(c.rms_norm_eps);
      layer.norm1_weight = m.template get<1>(*file, p + "input_layernorm.weight", {h});
      layer.norm2_weight = m.template get<1>(*file, p + "post_attention_layernorm.weight", {h});
      modules::MultiHeadAttention<Policy, T>& a = layer.attn;
      a.heads = hq;
      a.kv_heads = hkv;
      a.head_dim = d;
      a.q_proj.weight = m.template get<2>(*file, p + "self_attn.q_proj.weight", {hq * d, h});
      a.k_proj.weight = m.template get<2>(*file, p + "self_attn.k_proj.weight", {hkv * d, h});
      a.v_proj.weight = m.template get<2>(*file, p + "self_attn.v_proj.weight", {hkv * d, h});
      a.o_proj.weight = m.template get<2>(*file, p + "self_attn.o_proj.weight", {h, hq * d});
      const std::string g = p + "self_attn.g_proj.weight";
      if (file->contains(g)) {
        const io::TensorInfo& ti = file->info(g);
        const bool headwise = ti.shape == std::vector<index_t>{hq, h};
        const bool elementwise = ti.shape == std::vector<index_t>{hq * d, h};
        if (!headwise && !elementwise)
          throw shape_error("attnkit: " + file->path() + ": tensor '" + g + "' has shape " +
                            shape_string(ti.shape) + ", expected [" + std::to_string(hq) + ", " +
                            std::to_string(h) + "] (headwise gate) or [" + std::to_string(hq * d) +
                            ", " + std::to_string(h) + "] (elementwise gate)");
        a.g_proj = m.template get<2>(*file, g, {ti.shape[0], h});
      }
      if constexpr (!policy::encodes_positions<typename Policy::score_mod_type>)
        a.rope.emplace(d, c.rope_theta, block::RopeStyle::rotate_half);
      a.policy = policy;
      try {
        a.check();
      } catch (const shape_error&) {
        throw;
      } catch (const error& e) {
        throw error("attnkit: " + file->path() + ": layer " + std::to_string(l) + ": " +
                    std::string(e.what()).substr(9));
      }
      layer.ffn.gate = m.template get<2>(*file, p + "mlp.gate_proj.weight", {i, h});
      layer.ffn.up = m.template get<2>(*file, p + "mlp.up_proj.weight", {i, h});
      layer.ffn.down = m.template get<2>(*file, p + "mlp.down_proj.weight", {h, i});
      m.layers.push_back(std::move(layer));
    }
    m.norm = m.template get<1>(*file, "model.norm.weight", {h});
    if (c.tie_word_embeddings) {
      m.lm_head = m.embed_tokens;
    } else {
      m.lm_head = m.template get<2>(*file, "lm_head.weight", {c.vocab_size, h});
    }
    return m;
  }

  /// Whether every weight is a view into the memory-mapped file (F32 weights, T = float).
  bool zero_copy() const noexcept { return converted_ == 0 && mapped_; }

  /// Logits [N, V] of every position of the prompt `ids` (the prefill pass, positions 0..N-1).
  /// Throws error for an empty prompt or an id outside [0, V).
  Tensor<T, 2> forward(std::span<const std::int64_t> ids) const {
    DecoderState<T>* none = nullptr;
    return run(ids, none);
  }

  /// Appends `ids` to the sequence of `state` (KV cache) and returns their logits [n, V].
  Tensor<T, 2> forward(std::span<const std::int64_t> ids, DecoderState<T>& state) const {
    DecoderState<T>* s = &state;
    return run(ids, s);
  }

  /// The prefill pass of forward(ids) with observers (attention captures, hidden states).
  Tensor<T, 2> forward(std::span<const std::int64_t> ids, const DecoderHooks<T>& hooks) const {
    DecoderState<T>* none = nullptr;
    return run(ids, none, &hooks);
  }

  /// forward(ids, state) with observers: each layer's capture sees the weights of the new rows
  /// over every key its cache holds (cached decoding step by step, under any cache policy).
  Tensor<T, 2> forward(std::span<const std::int64_t> ids, DecoderState<T>& state,
                       const DecoderHooks<T>& hooks) const {
    DecoderState<T>* s = &state;
    return run(ids, s, &hooks);
  }

 private:
  std::vector<std::shared_ptr<const void>> keep_;  // the file and converted tensors
  index_t converted_ = 0;
  bool mapped_ = true;

  /// A weight of exactly `want` shape, zero-copy when possible.
  template <std::size_t R>
  TensorView<const T, R> get(const io::SafetensorsFile& file, const std::string& name,
                             const Shape<R>& want) {
    const io::TensorInfo& ti = file.info(name);  // file_error naming the file and tensor
    if (ti.shape != std::vector<index_t>(want.begin(), want.end()))
      throw shape_error("attnkit: " + file.path() + ": tensor '" + name + "' has shape " +
                        shape_string(ti.shape) + ", expected " + shape_string(want));
    if (ti.dtype != io::DType::f32 && ti.dtype != io::DType::f16 && ti.dtype != io::DType::bf16 &&
        ti.dtype != io::DType::f64)
      throw io::file_error("attnkit: " + file.path() + ": tensor '" + name + "' has dtype " +
                           std::string(io::safetensors_dtype_name(ti.dtype)) +
                           ", expected F32, F16 or BF16");
    mapped_ = mapped_ && file.mapped();
    if constexpr (std::is_same_v<T, float>) {
      if (ti.dtype == io::DType::f32 && file.mapped() &&
          reinterpret_cast<std::uintptr_t>(file.raw(name).data()) % alignof(float) == 0)
        return file.template view<float, R>(name);
    }
    auto t = std::make_shared<Tensor<T, R>>(file.template load<T, R>(name));
    ++converted_;
    keep_.push_back(t);
    return t->cview();
  }

  Tensor<T, 2> run(std::span<const std::int64_t> ids, DecoderState<T>* state,
                   const DecoderHooks<T>* hooks = nullptr) const {
    const DecoderConfig& c = config;
    const index_t n = static_cast<index_t>(ids.size()), h = c.hidden_size;
    if (n == 0) throw error("attnkit: Decoder::forward: empty prompt");
    for (std::int64_t id : ids)
      if (id < 0 || id >= c.vocab_size)
        throw error("attnkit: Decoder::forward: token id " + std::to_string(id) +
                    " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
    const index_t p0 = state != nullptr ? state->position : 0;
    if (state != nullptr && state->layers.size() != layers.size())
      state->layers.assign(layers.size(), modules::KVCache<T>(state->cache));
    std::vector<index_t> pos(static_cast<std::size_t>(n));
    for (index_t r = 0; r < n; ++r) pos[static_cast<std::size_t>(r)] = p0 + r;
    Tensor<T, 3> x({1, n, h});
    for (index_t r = 0; r < n; ++r)
      for (index_t k = 0; k < h; ++k)
        x(0, r, k) = embed_tokens(ids[static_cast<std::size_t>(r)], k);
    const TensorView<T, 2> x2(x.data(), {n, h});
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const modules::AttentionCapture<T>* capture =
          hooks != nullptr && hooks->attention ? hooks->attention(static_cast<index_t>(l))
                                               : nullptr;
      if (state != nullptr) {
        layers[l].forward(x.view(), pos, state->layers[l], capture);
      } else {
        layers[l].forward(x.view(), pos, capture);
      }
      if (hooks != nullptr && hooks->hidden) hooks->hidden(static_cast<index_t>(l), x2);
    }
    Tensor<T, 2> xn({n, h});
    const TensorView<T, 2> xn2 = xn.view();
    const block::RMSNorm rms(c.rms_norm_eps);
    block::normalize_rows<block::RMSNorm, T>(rms, x2, norm, xn2);
    Tensor<T, 2> logits({n, c.vocab_size});
    block::linear<T>(xn2, lm_head, logits.view());
    if (state != nullptr) state->position = p0 + n;
    return logits;
  }

};

}  // namespace attnkit::model
