// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Decoder<Policy>: a decoder-only transformer (embedding, TransformerBlocks of attention and an
// MLP with residuals, final norm, LM head or tied embeddings) and its loader for Hugging Face
// style model folders (config.json + model.safetensors), whose config chooses the layer recipe:
// RMSNorm or LayerNorm, pre or post placement, SwiGLU, GELU MLP or MoE, RoPE, ALiBi or none.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "attnkit/attention/attention.hpp"
#include "attnkit/block/feed_forward.hpp"
#include "attnkit/block/linear.hpp"
#include "attnkit/block/norm.hpp"
#include "attnkit/block/rope.hpp"
#include "attnkit/block/selectable_feed_forward.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/scratch_stack.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/io/json.hpp"
#include "attnkit/io/safetensors.hpp"
#include "attnkit/model/checkpoint.hpp"
#include "attnkit/model/config.hpp"
#include "attnkit/modules/kv_cache.hpp"
#include "attnkit/modules/multi_head_attention.hpp"
#include "attnkit/modules/transformer_block.hpp"

namespace attnkit::model {

/// One decoder layer as a model folder describes it: a modules::TransformerBlock whose norm
/// (RMSNorm or LayerNorm), placement (pre or post) and feed-forward module (SwiGLU, GELU MLP or
/// top-k MoE) are chosen at run time from config.json (DecoderConfig). Its members: `attn` (the
/// q/k/v/o (+ g) projections, RoPE unless the positions are ALiBi or none), `ffn`, `norm`,
/// `placement`, `norm1_weight`/`norm1_bias` (input_layernorm) and `norm2_weight`/`norm2_bias`
/// (post_attention_layernorm; the biases only with LayerNorm).
/// \tparam Policy the attention policy
/// \tparam T float or double
template <class Policy, class T>
using DecoderLayer =
    modules::TransformerBlock<Policy, block::SelectableNorm, block::SelectablePlacement,
                              block::SelectableFeedForward<T>, T>;

/// The LLaMA layer fixed at compile time: pre-norm RMSNorm and SwiGLU,
/// h += attn(rms1(h)); h += mlp(rms2(h)). Decoder<Policy, T, LlamaLayer<Policy, T>> loads only
/// folders whose config.json asks for that recipe (the default keys), and throws for others.
template <class Policy, class T>
using LlamaLayer =
    modules::TransformerBlock<Policy, block::RMSNorm, block::PreNorm, block::SwiGLU<T>, T>;

namespace detail {

/// The norm type `Norm` of a layer, set from the config: SelectableNorm takes any; RMSNorm and
/// LayerNorm only their own kind (else error naming `where`).
template <class Norm>
Norm config_norm(const DecoderConfig& c, const std::string& where) {
  const block::SelectableNorm chosen = c.norm == NormKind::layer_norm
                                           ? block::SelectableNorm(block::LayerNorm(c.eps()))
                                           : block::SelectableNorm(block::RMSNorm(c.eps()));
  if constexpr (std::is_same_v<Norm, block::SelectableNorm>) {
    return chosen;
  } else {
    static_assert(std::is_same_v<Norm, block::RMSNorm> || std::is_same_v<Norm, block::LayerNorm>,
                  "attnkit: Decoder::load sets a layer norm of type RMSNorm, LayerNorm or "
                  "SelectableNorm");
    if (const Norm* n = std::get_if<Norm>(&chosen.norm)) return *n;
    throw error("attnkit: " + where + ": \"attnkit_norm\" is \"" + kind_name(c.norm) +
                "\", but this Decoder's layer type fixes " +
                (std::is_same_v<Norm, block::RMSNorm> ? "rms_norm" : "layer_norm") +
                " (model::DecoderLayer follows the config)");
  }
}

/// The placement of a layer, set from the config (a fixed tag must agree with it).
template <class Placement>
Placement config_placement(const DecoderConfig& c, const std::string& where) {
  if constexpr (std::is_same_v<Placement, block::SelectablePlacement>) {
    return Placement{c.post_norm};
  } else {
    static_assert(std::is_same_v<Placement, block::PreNorm> ||
                  std::is_same_v<Placement, block::PostNorm>);
    const bool post = std::is_same_v<Placement, block::PostNorm>;
    if (post != c.post_norm)
      throw error("attnkit: " + where + ": \"attnkit_norm_placement\" is \"" +
                  (c.post_norm ? "post" : "pre") + "\", but this Decoder's layer type fixes " +
                  (post ? "post" : "pre") + " (model::DecoderLayer follows the config)");
    return Placement{};
  }
}

/// The feed-forward module of a layer from the loaded one (a fixed type must agree with it).
template <class FFN, class T>
FFN config_ffn(block::SelectableFeedForward<T> chosen, const DecoderConfig& c,
               const std::string& where) {
  if constexpr (std::is_same_v<FFN, block::SelectableFeedForward<T>>) {
    return chosen;
  } else {
    static_assert(std::is_same_v<FFN, block::SwiGLU<T>> || std::is_same_v<FFN, block::GeluMLP<T>> ||
                      std::is_same_v<FFN, block::MixtureOfExperts<T>>,
                  "attnkit: Decoder::load sets a feed-forward module of type SwiGLU, GeluMLP, "
                  "MixtureOfExperts or SelectableFeedForward");
    if (FFN* f = std::get_if<FFN>(&chosen.module)) return std::move(*f);
    const char* fixed = std::is_same_v<FFN, block::SwiGLU<T>>    ? "swiglu"
                        : std::is_same_v<FFN, block::GeluMLP<T>> ? "gelu"
                                                                 : "moe";
    throw error("attnkit: " + where + ": \"attnkit_mlp\" is \"" + kind_name(c.mlp) +
                "\", but this Decoder's layer type fixes " + fixed +
                " (model::DecoderLayer follows the config)");
  }
}

}  // namespace detail

/// Per-sequence state of incremental decoding: one KV cache per layer (all under the same cache
/// policy: full by default, or a window, attention sinks, an Ebbinghaus retention mode; see
/// modules/kv_cache.hpp) and the next position.
template <class T>
struct DecoderState {
  /// The policy of the layers' caches (made on first use).
  modules::CachePolicy cache = modules::FullCache{};
  /// What the caches store keys and values as (bf16 / f16: T = float only).
  modules::KVDtype kv_dtype = modules::KVDtype::compute;
  std::vector<modules::KVCache<T>> layers;
  index_t position = 0;  ///< positions consumed so far (the next token's RoPE position)
  index_t reserved = 0;  ///< tokens each layer's cache has room for from its first step

  /// Room for `tokens` tokens in every layer's cache from the start (made or grown now when the
  /// caches exist), so a full cache never regrows before then: decoding then allocates nothing
  /// per step (Decoder::forward into a logits view).
  void reserve(index_t tokens) {
    if (tokens < 0) throw error("attnkit: DecoderState::reserve: negative token count");
    reserved = std::max(reserved, tokens);
    for (modules::KVCache<T>& l : layers) l.reserve(reserved);
  }

  DecoderState() = default;
  /// \param policy the cache policy of every layer \param dtype what the caches store
  explicit DecoderState(modules::CachePolicy policy,
                        modules::KVDtype dtype = modules::KVDtype::compute)
      : cache(std::move(policy)), kv_dtype(dtype) {}

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

/// A decoder-only transformer: token embedding, a stack of TransformerBlocks, a final norm and
/// the LM head (or the tied embeddings). Weights are views: into the memory-mapped safetensors
/// file for F32 weights and T = float (zero-copy), else into tensors converted on load; the
/// decoder keeps both alive (copies share them).
///
/// forward(ids) runs the prefill pass of one sequence and returns the logits [N, V] of every
/// position; forward(ids, state) appends ids to a KV-cached sequence and returns their logits.
/// \tparam Policy an attnkit::policy::AttentionPolicy (activation, mask — Causal for a
///   decoder —, score mod, gate; see model/variants.hpp for the named variants). A score mod
///   that encodes positions (policy::ALiBi; see policy::encodes_positions) replaces RoPE.
/// \tparam T float or double
/// \tparam Layer the layer type: DecoderLayer (default; the recipe follows config.json) or a
///   modules::TransformerBlock over the same Policy and T with fixed norm, placement and
///   feed-forward types (e.g. LlamaLayer), which load() checks against config.json
template <class Policy, class T = float, class Layer = DecoderLayer<Policy, T>>
class Decoder {
  static_assert(std::is_same_v<decltype(Layer::attn), modules::MultiHeadAttention<Policy, T>>,
                "attnkit: Layer of Decoder must be a modules::TransformerBlock over the "
                "decoder's Policy and T");

 public:
  using policy_type = Policy;
  using value_type = T;
  using layer_type = Layer;

  DecoderConfig config;
  block::Weight<T> embed_tokens;  ///< [V, H] (T, bf16 or f16: used in place)
  std::vector<Layer> layers;
  TensorView<const T, 1> norm;       ///< [H], the final norm's weight (the config's kind, eps)
  TensorView<const T, 1> norm_bias;  ///< [H] or empty, the final LayerNorm's bias
  block::Weight<T> lm_head;          ///< [V, H] (embed_tokens when tied)

  /// Loads DIR/config.json and DIR/model.safetensors (the keys and tensor names of docs/CLI.md,
  /// "Model folders"; F32, F16, BF16 or F64). The layer recipe (norm, placement, MLP, positions)
  /// follows the config; a fixed Layer type must agree with it. Throws attnkit::error
  /// (file_error, shape_error) naming the file and the key for a malformed config, a missing
  /// tensor, a tensor of the wrong shape or dtype, or a tensor the described model does not use.
  /// \param dir the model folder
  /// \param policy the attention policy every layer uses (runtime values)
  /// \param mode memory-map (default) or read the safetensors file
  static Decoder load(const std::string& dir, const Policy& policy = Policy{},
                      io::LoadMode mode = io::LoadMode::map) {
    Decoder m;
    const std::string config_path = dir + "/config.json";
    m.config = DecoderConfig::load(config_path);
    DecoderConfig& c = m.config;
    // generation_config.json, when present, names the end-of-sequence tokens generation uses.
    const std::string gen_path = dir + "/generation_config.json";
    if (std::filesystem::exists(gen_path)) c.read_eos(json::parse_file(gen_path), gen_path);
    constexpr bool alibi = policy::encodes_positions<typename Policy::score_mod_type>;
    if (!c.positions_given) c.positions = alibi ? PositionKind::alibi : PositionKind::rope;
    if (alibi && c.positions != PositionKind::alibi)
      throw error("attnkit: " + config_path + ": \"attnkit_positions\" is \"" +
                  kind_name(c.positions) +
                  "\", but the attention policy's score mod encodes positions (ALiBi)");
    if (!alibi && c.positions == PositionKind::alibi)
      throw error("attnkit: " + config_path +
                  ": \"attnkit_positions\" is \"alibi\", but the attention policy has no "
                  "positional score mod (use one with policy::ALiBi)");
    if (c.positions == PositionKind::rope && c.head_dim % 2 != 0)
      throw error("attnkit: " + config_path + ": head_dim " + std::to_string(c.head_dim) +
                  " is odd (RoPE rotates pairs)");
    const Checkpoint ck = Checkpoint::open(dir, mode);
    for (const auto& f : ck.files()) m.keep_.push_back(f);
    const Checkpoint* file = &ck;
    const index_t h = c.hidden_size, d = c.head_dim;
    const index_t hq = c.num_attention_heads, hkv = c.num_key_value_heads;
    const bool layer_norm = c.norm == NormKind::layer_norm;
    m.embed_tokens = m.weight(*file, "model.embed_tokens.weight", {c.vocab_size, h});
    for (index_t l = 0; l < c.num_hidden_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      Layer layer;
      layer.norm = detail::config_norm<decltype(layer.norm)>(c, config_path);
      layer.placement = detail::config_placement<decltype(layer.placement)>(c, config_path);
      layer.norm1_weight = m.template get<1>(*file, p + "input_layernorm.weight", {h});
      layer.norm2_weight = m.template get<1>(*file, p + "post_attention_layernorm.weight", {h});
      if (layer_norm) {
        layer.norm1_bias = m.template optional<1>(*file, p + "input_layernorm.bias", {h});
        layer.norm2_bias = m.template optional<1>(*file, p + "post_attention_layernorm.bias", {h});
      }
      modules::MultiHeadAttention<Policy, T>& a = layer.attn;
      a.heads = hq;
      a.kv_heads = hkv;
      a.head_dim = d;
      a.q_proj.weight = m.weight(*file, p + "self_attn.q_proj.weight", {hq * d, h});
      a.k_proj.weight = m.weight(*file, p + "self_attn.k_proj.weight", {hkv * d, h});
      a.v_proj.weight = m.weight(*file, p + "self_attn.v_proj.weight", {hkv * d, h});
      a.o_proj.weight = m.weight(*file, p + "self_attn.o_proj.weight", {h, hq * d});
      if (c.qkv_bias) {
        a.q_proj.bias = m.template get<1>(*file, p + "self_attn.q_proj.bias", {hq * d});
        a.k_proj.bias = m.template get<1>(*file, p + "self_attn.k_proj.bias", {hkv * d});
        a.v_proj.bias = m.template get<1>(*file, p + "self_attn.v_proj.bias", {hkv * d});
      }
      if (c.o_bias) a.o_proj.bias = m.template get<1>(*file, p + "self_attn.o_proj.bias", {h});
      if (c.qk_norm) {
        a.q_norm = m.template get<1>(*file, p + "self_attn.q_norm.weight", {d});
        a.k_norm = m.template get<1>(*file, p + "self_attn.k_norm.weight", {d});
        a.qk_norm_eps = c.rms_norm_eps;
      }
      const std::string g = p + "self_attn.g_proj.weight";
      if (file->contains(g)) {
        const io::TensorInfo& ti = file->file_of(g).info(g);
        const bool headwise = ti.shape == std::vector<index_t>{hq, h};
        const bool elementwise = ti.shape == std::vector<index_t>{hq * d, h};
        if (!headwise && !elementwise)
          throw shape_error("attnkit: " + file->file_of(g).path() + ": tensor '" + g +
                            "' has shape " + shape_string(ti.shape) + ", expected [" +
                            std::to_string(hq) + ", " + std::to_string(h) +
                            "] (headwise gate) or [" + std::to_string(hq * d) + ", " +
                            std::to_string(h) + "] (elementwise gate)");
        a.g_proj = m.weight(*file, g, {ti.shape[0], h});
      }
      if (c.positions == PositionKind::rope)
        a.rope.emplace(d, c.rope_theta, block::RopeStyle::rotate_half, c.rope_scaling);
      a.policy = policy;
      try {
        a.check();
      } catch (const shape_error&) {
        throw;
      } catch (const error& e) {
        throw error("attnkit: " + file->source() + ": layer " + std::to_string(l) + ": " +
                    std::string(e.what()).substr(9));
      }
      layer.ffn = detail::config_ffn<decltype(layer.ffn), T>(m.load_ffn(*file, p), c, config_path);
      m.layers.push_back(std::move(layer));
    }
    m.norm = m.template get<1>(*file, "model.norm.weight", {h});
    if (layer_norm) m.norm_bias = m.template optional<1>(*file, "model.norm.bias", {h});
    if (c.tie_word_embeddings) {
      m.lm_head = m.embed_tokens;
      // A tied checkpoint may also store the head; it must then equal the embeddings.
      if (file->contains("lm_head.weight")) {
        const io::SafetensorsFile& hf = file->file_of("lm_head.weight");
        const io::SafetensorsFile& ef = file->file_of("model.embed_tokens.weight");
        const auto head = hf.raw("lm_head.weight"), emb = ef.raw("model.embed_tokens.weight");
        if (hf.info("lm_head.weight").dtype != ef.info("model.embed_tokens.weight").dtype ||
            !std::equal(head.begin(), head.end(), emb.begin(), emb.end()))
          throw io::file_error("attnkit: " + hf.path() +
                               ": tensor 'lm_head.weight' differs from 'model.embed_tokens.weight' "
                               "though config.json says tie_word_embeddings");
        m.used_.insert("lm_head.weight");
      }
    } else {
      m.lm_head = m.weight(*file, "lm_head.weight", {c.vocab_size, h});
    }
    // Every tensor must belong to the model the config describes: a tensor left over (a bias, a
    // norm of another recipe) would otherwise be ignored and the model silently computed wrong.
    for (const auto& f : ck.files())
      for (const std::string& name : f->names()) {
        if (m.used_.count(name) != 0 || name.ends_with(".rotary_emb.inv_freq")) continue;
        throw io::file_error("attnkit: " + f->path() + ": tensor '" + name +
                             "' is not part of the model config.json describes (model_type " +
                             c.model_type + ", norm " + kind_name(c.norm) + ", mlp " +
                             kind_name(c.mlp) + ", positions " + kind_name(c.positions) +
                             "); refusing to ignore it");
      }
    m.used_.clear();
    return m;
  }

  /// Whether every weight matrix (embeddings, projections, MLP, head) is used in place from the
  /// memory-mapped file, in its stored dtype: F32 with T = float, F16 and BF16 with either T.
  /// Vectors (norm weights, biases) are converted to T; they are a tiny share of the bytes.
  bool zero_copy() const noexcept { return converted_ == 0 && mapped_; }

  /// Bytes of the weight matrices in their stored dtype: every projection and MLP matrix and
  /// the LM head, which one decoded token reads once each (for a mixture of experts this counts
  /// every expert, of which a token reads only its top k). The embedding rows are not counted.
  std::size_t matrix_bytes() const noexcept {
    std::size_t b = lm_head.bytes();
    for (const Layer& l : layers) {
      const auto& a = l.attn;
      b += a.q_proj.weight.bytes() + a.k_proj.weight.bytes() + a.v_proj.weight.bytes() +
           a.o_proj.weight.bytes() + a.g_proj.bytes() + l.ffn.weight_bytes();
    }
    return b;
  }

  /// Logits [N, V] of every position of the prompt `ids` (the prefill pass, positions 0..N-1).
  /// Throws error for an empty prompt or an id outside [0, V).
  Tensor<T, 2> forward(std::span<const std::int64_t> ids) const {
    return run_new(ids, nullptr, nullptr);
  }

  /// Appends `ids` to the sequence of `state` (KV cache) and returns their logits [n, V].
  Tensor<T, 2> forward(std::span<const std::int64_t> ids, DecoderState<T>& state) const {
    return run_new(ids, &state, nullptr);
  }

  /// forward(ids, state) writing the logits into `logits` [n, V] (throws shape_error for another
  /// shape). The step's temporaries come from the thread's scratch stack (core/scratch_stack.hpp)
  /// and the attention workspaces persist, so a decode step allocates nothing once the thread
  /// has run one of its shape and the caches have room (DecoderState::reserve).
  void forward(std::span<const std::int64_t> ids, DecoderState<T>& state,
               TensorView<T, 2> logits) const {
    run(ids, &state, nullptr, logits);
  }

  /// The prefill pass of forward(ids) with observers (attention captures, hidden states).
  Tensor<T, 2> forward(std::span<const std::int64_t> ids, const DecoderHooks<T>& hooks) const {
    return run_new(ids, nullptr, &hooks);
  }

  /// forward(ids, state) with observers: each layer's capture sees the weights of the new rows
  /// over every key its cache holds (cached decoding step by step, under any cache policy).
  Tensor<T, 2> forward(std::span<const std::int64_t> ids, DecoderState<T>& state,
                       const DecoderHooks<T>& hooks) const {
    return run_new(ids, &state, &hooks);
  }

 private:
  std::vector<std::shared_ptr<const void>> keep_;  // the file and converted tensors
  index_t converted_ = 0;
  bool mapped_ = true;
  std::set<std::string> used_;  // the tensors load() has read (empty after it)

  /// get() when the file holds the tensor, else an empty view.
  template <std::size_t R>
  TensorView<const T, R> optional(const Checkpoint& ck, const std::string& name,
                                  const Shape<R>& want) {
    return ck.contains(name) ? get<R>(ck, name, want) : TensorView<const T, R>{};
  }

  /// The feed-forward module of the layer whose tensors start with prefix p, as config says.
  block::SelectableFeedForward<T> load_ffn(const Checkpoint& file, const std::string& p) {
    const DecoderConfig& c = config;
    const index_t h = c.hidden_size, i = c.intermediate_size;
    auto swiglu = [&](const std::string& gate, const std::string& up, const std::string& down) {
      block::SwiGLU<T> f;
      f.gate = weight(file, gate, {i, h});
      f.up = weight(file, up, {i, h});
      f.down = weight(file, down, {h, i});
      return f;
    };
    switch (c.mlp) {
      case MlpKind::gelu: {
        block::GeluMLP<T> f;
        f.fc1 = weight(file, p + "mlp.fc1.weight", {i, h});
        f.fc1_bias = optional<1>(file, p + "mlp.fc1.bias", {i});
        f.fc2 = weight(file, p + "mlp.fc2.weight", {h, i});
        f.fc2_bias = optional<1>(file, p + "mlp.fc2.bias", {h});
        f.kind = c.gelu;
        return f;
      }
      case MlpKind::moe: {
        block::MixtureOfExperts<T> f;
        const std::string q = p + "block_sparse_moe.";
        f.router = weight(file, q + "gate.weight", {c.num_local_experts, h});
        for (index_t e = 0; e < c.num_local_experts; ++e) {
          const std::string x = q + "experts." + std::to_string(e) + ".";
          f.experts.push_back(swiglu(x + "w1.weight", x + "w3.weight", x + "w2.weight"));
        }
        f.top_k = c.num_experts_per_tok;
        f.renormalize = c.norm_topk_prob;
        f.check();
        return f;
      }
      default:
        return swiglu(p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight",
                      p + "mlp.down_proj.weight");
    }
  }

  /// Checks that `name` exists with exactly the `want` shape and a float dtype; marks it used.
  template <std::size_t R>
  const io::TensorInfo& check_tensor(const Checkpoint& ck, const std::string& name,
                                     const Shape<R>& want) {
    const io::SafetensorsFile& file = ck.file_of(name);  // file_error naming the tensor
    const io::TensorInfo& ti = file.info(name);
    used_.insert(name);
    if (ti.shape != std::vector<index_t>(want.begin(), want.end()))
      throw shape_error("attnkit: " + file.path() + ": tensor '" + name + "' has shape " +
                        shape_string(ti.shape) + ", expected " + shape_string(want));
    if (ti.dtype != io::DType::f32 && ti.dtype != io::DType::f16 && ti.dtype != io::DType::bf16 &&
        ti.dtype != io::DType::f64)
      throw io::file_error("attnkit: " + file.path() + ": tensor '" + name + "' has dtype " +
                           std::string(io::safetensors_dtype_name(ti.dtype)) +
                           ", expected F32, F16 or BF16");
    return ti;
  }

  /// A vector (norm weight, bias) of exactly `want` shape as T: a view of an F32 tensor of a
  /// mapped file when T = float, else a converted copy.
  template <std::size_t R>
  TensorView<const T, R> get(const Checkpoint& ck, const std::string& name, const Shape<R>& want) {
    const io::TensorInfo& ti = check_tensor<R>(ck, name, want);
    const io::SafetensorsFile& file = ck.file_of(name);
    if (ti.dtype == io::dtype_of<T>() && file.mapped() &&
        reinterpret_cast<std::uintptr_t>(file.raw(name).data()) % alignof(T) == 0)
      return file.template view<T, R>(name);
    auto t = std::make_shared<Tensor<T, R>>(file.template load<T, R>(name));
    keep_.push_back(t);
    return t->cview();
  }

  /// A weight matrix of exactly `want` shape, in place in the mapped file in its own dtype (T,
  /// BF16 or F16); converted to T only when the file is read rather than mapped, the tensor is
  /// misaligned, or its dtype is neither T nor a 16-bit float (F64 for float, F32 for double).
  block::Weight<T> weight(const Checkpoint& ck, const std::string& name, const Shape<2>& want) {
    const io::TensorInfo& ti = check_tensor<2>(ck, name, want);
    const io::SafetensorsFile& file = ck.file_of(name);
    mapped_ = mapped_ && file.mapped();
    const auto addr = reinterpret_cast<std::uintptr_t>(file.raw(name).data());
    if (file.mapped()) {
      if (ti.dtype == io::dtype_of<T>() && addr % alignof(T) == 0)
        return file.template view<T, 2>(name);
      if (ti.dtype == io::DType::bf16 && addr % 2 == 0) return file.template view<bf16, 2>(name);
      if (ti.dtype == io::DType::f16 && addr % 2 == 0) return file.template view<f16, 2>(name);
    }
    auto t = std::make_shared<Tensor<T, 2>>(file.template load<T, 2>(name));
    ++converted_;
    keep_.push_back(t);
    return t->cview();
  }

  /// run() into new logits [n, V].
  Tensor<T, 2> run_new(std::span<const std::int64_t> ids, DecoderState<T>* state,
                       const DecoderHooks<T>* hooks) const {
    if (ids.empty()) throw error("attnkit: Decoder::forward: empty prompt");
    Tensor<T, 2> logits({static_cast<index_t>(ids.size()), config.vocab_size});
    run(ids, state, hooks, logits.view());
    return logits;
  }

  void run(std::span<const std::int64_t> ids, DecoderState<T>* state, const DecoderHooks<T>* hooks,
           TensorView<T, 2> logits) const {
    const DecoderConfig& c = config;
    const index_t n = static_cast<index_t>(ids.size()), h = c.hidden_size;
    if (n == 0) throw error("attnkit: Decoder::forward: empty prompt");
    if (logits.shape() != Shape<2>{n, c.vocab_size})
      throw_shape_mismatch("Decoder::forward", "logits", logits.shape(), Shape<2>{n, c.vocab_size});
    if (!logits.is_contiguous())
      throw shape_error("attnkit: Decoder::forward: logits must be contiguous");
    for (std::int64_t id : ids)
      if (id < 0 || id >= c.vocab_size)
        throw error("attnkit: Decoder::forward: token id " + std::to_string(id) +
                    " is outside the vocabulary [0, " + std::to_string(c.vocab_size) + ")");
    const index_t p0 = state != nullptr ? state->position : 0;
    if (c.exact_positions > 0 && p0 + n > c.exact_positions)
      throw error("attnkit: Decoder::forward: the sequence would reach " + std::to_string(p0 + n) +
                  " positions, past the " + std::to_string(c.exact_positions) +
                  " this model computes exactly: " + c.exact_reason);
    if (state != nullptr && state->layers.size() != layers.size()) {
      state->layers.assign(layers.size(), modules::KVCache<T>(state->cache, state->kv_dtype));
      for (modules::KVCache<T>& l : state->layers) l.reserve(state->reserved);
    }
    // The attention's decode buffers too: steps up to the reserved length allocate nothing.
    if (state != nullptr && state->reserved > 0 && c.num_key_value_heads > 0 &&
        c.num_attention_heads % c.num_key_value_heads == 0)
      reserve_attention<T>(1, c.num_attention_heads, c.num_key_value_heads, 1, c.head_dim,
                           state->reserved);
    ScratchFrame frame;  // no allocation per call (core/scratch_stack.hpp)
    const std::span<index_t> pos = frame.array<index_t>(n);
    for (index_t r = 0; r < n; ++r) pos[static_cast<std::size_t>(r)] = p0 + r;
    const TensorView<T, 3> x = frame.tensor<T>(Shape<3>{1, n, h});
    for (index_t r = 0; r < n; ++r) embed_tokens.row(ids[static_cast<std::size_t>(r)], &x(0, r, 0));
    const TensorView<T, 2> x2(x.data(), {n, h});
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const modules::AttentionCapture<T>* capture = hooks != nullptr && hooks->attention
                                                        ? hooks->attention(static_cast<index_t>(l))
                                                        : nullptr;
      if (state != nullptr) {
        layers[l].forward(x, pos, state->layers[l], capture);
      } else {
        layers[l].forward(x, pos, capture);
      }
      if (hooks != nullptr && hooks->hidden) hooks->hidden(static_cast<index_t>(l), x2);
    }
    const TensorView<T, 2> xn2 = frame.tensor<T>(Shape<2>{n, h});
    const block::SelectableNorm final_norm = detail::config_norm<block::SelectableNorm>(c, "");
    block::normalize_rows<block::SelectableNorm, T>(final_norm, x2, norm, norm_bias, xn2);
    block::linear<T>(xn2, lm_head, logits);
    if (state != nullptr) state->position = p0 + n;
  }
};

}  // namespace attnkit::model
