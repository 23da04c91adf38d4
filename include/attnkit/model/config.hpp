// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// DecoderConfig: the config.json keys a Decoder needs (Hugging Face's keys of the llama, mistral,
// mixtral, qwen2 and qwen3 model types, and attnkit's layer-recipe keys), checked on load.
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "attnkit/block/feed_forward.hpp"
#include "attnkit/block/rope.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/io/json.hpp"

namespace attnkit::model {

/// The norm of every layer and of the final norm (config.json's `attnkit_norm`).
enum class NormKind : std::uint8_t { rms_norm, layer_norm };
/// The feed-forward module of every layer (config.json's `attnkit_mlp`).
enum class MlpKind : std::uint8_t { swiglu, gelu, moe };
/// The position signal (config.json's `attnkit_positions`).
enum class PositionKind : std::uint8_t {
  rope,   ///< rotary embeddings on q and k (LLaMA)
  alibi,  ///< the policy's ALiBi score mod (its attention policy must carry one)
  none,   ///< no position signal beyond the causal mask
};

/// The config.json spelling of a NormKind, MlpKind or PositionKind.
inline const char* kind_name(NormKind k) noexcept {
  return k == NormKind::layer_norm ? "layer_norm" : "rms_norm";
}
inline const char* kind_name(MlpKind k) noexcept {
  return k == MlpKind::gelu ? "gelu" : k == MlpKind::moe ? "moe" : "swiglu";
}
inline const char* kind_name(PositionKind k) noexcept {
  return k == PositionKind::alibi ? "alibi" : k == PositionKind::none ? "none" : "rope";
}

/// The architecture of a decoder (config.json of a Hugging Face style model folder): the keys of
/// its `model_type` (llama, mistral, mixtral, qwen2, qwen3), and the layer recipe (norm, its
/// placement, the MLP, the position signal; docs/CLI.md, "Model folders"). Keys that would change
/// the computation in a way the decoder does not implement are errors (mlp_bias, an unknown
/// rope_scaling type); a sliding window changes nothing up to its length, so it sets
/// `exact_positions` and a longer sequence is an error then.
struct DecoderConfig {
  std::string model_type = "llama";  ///< llama (also when absent), mistral, mixtral, qwen2, qwen3
  index_t hidden_size = 0;           ///< H
  index_t intermediate_size = 0;     ///< I of the SwiGLU MLP
  index_t num_attention_heads = 0;   ///< Hq
  index_t num_key_value_heads = 0;   ///< Hkv (defaults to Hq when absent)
  index_t num_hidden_layers = 0;     ///< L
  index_t vocab_size = 0;            ///< V
  index_t head_dim = 0;              ///< D (defaults to H / Hq when absent)
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  std::string attnkit_activation;      ///< the CLI's default --variant ("" when absent)
  NormKind norm = NormKind::rms_norm;  ///< attnkit_norm
  double layer_norm_eps = 1e-5;        ///< the LayerNorm epsilon (with NormKind::layer_norm)
  /// The epsilon of the chosen norm: rms_norm_eps or layer_norm_eps.
  double eps() const noexcept {
    return norm == NormKind::layer_norm ? layer_norm_eps : rms_norm_eps;
  }
  bool post_norm = false;                         ///< attnkit_norm_placement is "post"
  MlpKind mlp = MlpKind::swiglu;                  ///< attnkit_mlp
  block::GeluKind gelu = block::GeluKind::exact;  ///< from hidden_act, for MlpKind::gelu
  index_t num_local_experts = 0;                  ///< E, for MlpKind::moe
  index_t num_experts_per_tok = 0;                ///< k, for MlpKind::moe
  bool norm_topk_prob = true;                     ///< MoE: renormalize the top-k router weights
  PositionKind positions = PositionKind::rope;    ///< attnkit_positions
  bool positions_given = false;                   ///< whether config.json names the positions
  /// q_proj, k_proj and v_proj have biases (qwen2 always; llama and qwen3: attention_bias).
  bool qkv_bias = false;
  bool o_bias = false;   ///< o_proj has a bias (llama and qwen3: attention_bias)
  bool qk_norm = false;  ///< per-head RMSNorm of q and k before RoPE (qwen3: q_norm, k_norm)
  block::RopeScaling rope_scaling{};    ///< rope_scaling: none, linear, llama3 or dynamic
  index_t max_position_embeddings = 0;  ///< 0 when absent
  /// Positions the model covers exactly (0: no limit): a sliding window starts to act past it,
  /// which the decoder does not implement, so a longer sequence is an error naming
  /// `exact_reason`.
  index_t exact_positions = 0;
  std::string exact_reason;
  /// The end-of-sequence token ids: generation_config.json's `eos_token_id` when the folder has
  /// one (Decoder::load reads it), else config.json's; an integer or a list, each in [0, V).
  std::vector<std::int64_t> eos_token_ids;

  /// Reads `eos_token_id` (null, an integer or a list of integers) of `doc` into eos_token_ids
  /// when present; throws attnkit::error naming `source` for another value or an id outside
  /// [0, vocab_size).
  void read_eos(const json::Value& doc, const std::string& source) {
    if (!doc.is_object() || !doc.contains("eos_token_id") || doc.at("eos_token_id").is_null())
      return;
    const json::Value& v = doc.at("eos_token_id");
    std::vector<std::int64_t> ids;
    auto one = [&](const json::Value& x) {
      if (!x.is_number() || !x.is_integer() || x.as_int() < 0 || x.as_int() >= vocab_size)
        throw error("attnkit: " + source + ": key \"eos_token_id\" must hold token ids in [0, " +
                    std::to_string(vocab_size) + "), got " + x.dump());
      ids.push_back(x.as_int());
    };
    if (v.is_array()) {
      for (std::size_t i = 0; i < v.size(); ++i) one(v.at(i));
    } else {
      one(v);
    }
    eos_token_ids = std::move(ids);
  }

  /// Reads the keys of a parsed config; throws attnkit::error naming `source` and the key.
  static DecoderConfig from_json(const json::Value& doc, const std::string& source) {
    auto fail = [&](const std::string& what) -> void {
      throw error("attnkit: " + source + ": " + what);
    };
    DecoderConfig c;
    try {
      if (!doc.is_object()) fail("expected a JSON object, got " + doc.describe());
      auto positive = [&](const char* key, std::int64_t v) {
        if (v < 1 || v > (std::int64_t{1} << 40))
          fail(std::string("key \"") + key + "\" must be a positive integer, got " +
               std::to_string(v));
        return static_cast<index_t>(v);
      };
      c.hidden_size = positive("hidden_size", doc.get_int("hidden_size"));
      c.intermediate_size = positive("intermediate_size", doc.get_int("intermediate_size"));
      c.num_attention_heads = positive("num_attention_heads", doc.get_int("num_attention_heads"));
      c.num_key_value_heads = positive("num_key_value_heads",
                                       doc.get_int("num_key_value_heads", c.num_attention_heads));
      c.num_hidden_layers = positive("num_hidden_layers", doc.get_int("num_hidden_layers"));
      c.vocab_size = positive("vocab_size", doc.get_int("vocab_size"));
      c.rms_norm_eps = doc.get_double("rms_norm_eps", 1e-6);
      c.rope_theta = doc.get_double("rope_theta", 10000.0);
      c.tie_word_embeddings = doc.get_bool("tie_word_embeddings", false);
      c.attnkit_activation = doc.get_string("attnkit_activation", "");
      auto present = [&](const char* key) { return doc.contains(key) && !doc.at(key).is_null(); };
      auto choice = [&](const char* key, const std::string& fallback,
                        std::initializer_list<const char*> allowed) {
        const std::string v = doc.get_string(key, fallback);
        std::string list;
        for (const char* a : allowed) {
          if (v == a) return v;
          list += std::string(list.empty() ? "" : ", ") + a;
        }
        fail(std::string("key \"") + key + "\" must be one of " + list + ", got \"" + v + "\"");
        return v;
      };
      c.norm = choice("attnkit_norm", "rms_norm", {"rms_norm", "layer_norm"}) == "layer_norm"
                   ? NormKind::layer_norm
                   : NormKind::rms_norm;
      c.layer_norm_eps = doc.get_double("layer_norm_eps", 1e-5);
      c.post_norm = choice("attnkit_norm_placement", "pre", {"pre", "post"}) == "post";
      c.model_type =
          choice("model_type", "llama", {"llama", "mistral", "mixtral", "qwen2", "qwen3"});
      const std::string mlp = choice("attnkit_mlp", c.model_type == "mixtral" ? "moe" : "swiglu",
                                     {"swiglu", "gelu", "moe"});
      c.mlp = mlp == "gelu" ? MlpKind::gelu : mlp == "moe" ? MlpKind::moe : MlpKind::swiglu;
      if (c.mlp == MlpKind::gelu) {
        const std::string act =
            choice("hidden_act", "gelu", {"gelu", "gelu_new", "gelu_pytorch_tanh"});
        c.gelu = act == "gelu" ? block::GeluKind::exact : block::GeluKind::tanh;
      } else {
        choice("hidden_act", "silu", {"silu"});
      }
      if (c.mlp == MlpKind::moe) {
        c.num_local_experts = positive("num_local_experts", doc.get_int("num_local_experts"));
        c.num_experts_per_tok = positive("num_experts_per_tok", doc.get_int("num_experts_per_tok"));
        if (c.num_experts_per_tok > c.num_local_experts)
          fail("num_experts_per_tok " + std::to_string(c.num_experts_per_tok) +
               " exceeds num_local_experts " + std::to_string(c.num_local_experts));
        c.norm_topk_prob = doc.get_bool("norm_topk_prob", true);
      }
      c.positions_given = present("attnkit_positions");
      const std::string pos = choice("attnkit_positions", "rope", {"rope", "alibi", "none"});
      c.positions = pos == "alibi"  ? PositionKind::alibi
                    : pos == "none" ? PositionKind::none
                                    : PositionKind::rope;
      // The model type: what its Hugging Face class computes beyond the LLaMA layer.
      const std::string& type = c.model_type;
      if (type == "qwen2") {
        c.qkv_bias = true;  // Qwen2Attention: q, k, v with biases, o without
      } else if (type == "llama" || type == "qwen3") {
        c.qkv_bias = c.o_bias = doc.get_bool("attention_bias", false);
      }
      c.qk_norm = type == "qwen3";
      if (doc.get_bool("mlp_bias", false))
        fail("key \"mlp_bias\" is true; MLP projections with biases are not implemented");
      if (present("max_position_embeddings"))
        c.max_position_embeddings =
            positive("max_position_embeddings", doc.get_int("max_position_embeddings"));
      auto limit = [&](index_t n, const std::string& why) {
        if (c.exact_positions == 0 || n < c.exact_positions) {
          c.exact_positions = n;
          c.exact_reason = why;
        }
      };
      // A sliding window (mistral, mixtral: whenever set; qwen2, qwen3: with use_sliding_window;
      // llama: unless use_sliding_window is false) masks nothing within its length.
      const bool window_default = type == "mistral" || type == "mixtral" || type == "llama";
      if (present("sliding_window") && doc.get_bool("use_sliding_window", window_default)) {
        const index_t w = positive("sliding_window", doc.get_int("sliding_window"));
        limit(w, "the sliding window of " + std::to_string(w) +
                     " positions (config.json \"sliding_window\"), which this decoder does not "
                     "implement, masks keys beyond it");
      }
      if (present("rope_scaling")) {
        const json::Value& rs = doc.at("rope_scaling");
        if (!rs.is_object()) fail("key \"rope_scaling\" must be an object or null");
        const std::string kind =
            rs.contains("rope_type") ? rs.get_string("rope_type") : rs.get_string("type", "");
        auto number = [&](const char* key) {
          if (!rs.contains(key))
            fail(std::string("rope_scaling \"") + kind + "\" needs \"" + key + "\"");
          const double v = rs.get_double(key);
          if (!(v > 0) || !std::isfinite(v))
            fail(std::string("rope_scaling \"") + key + "\" must be > 0, got " + std::to_string(v));
          return v;
        };
        block::RopeScaling& sc = c.rope_scaling;
        if (kind == "default") {
          sc.kind = block::RopeScaling::Kind::none;
        } else if (kind == "linear") {
          sc.kind = block::RopeScaling::Kind::linear;
          sc.factor = number("factor");
        } else if (kind == "llama3") {
          sc.kind = block::RopeScaling::Kind::llama3;
          sc.factor = number("factor");
          sc.low_freq_factor = number("low_freq_factor");
          sc.high_freq_factor = number("high_freq_factor");
          sc.original_max_position_embeddings = number("original_max_position_embeddings");
          if (!(sc.high_freq_factor > sc.low_freq_factor))
            fail("rope_scaling \"high_freq_factor\" must exceed \"low_freq_factor\"");
        } else if (kind == "dynamic") {
          // Dynamic NTK scaling grows the base for calls that reach past
          // max_position_embeddings.
          sc.kind = block::RopeScaling::Kind::dynamic;
          sc.factor = number("factor");
          if (c.max_position_embeddings == 0)
            fail("rope_scaling \"dynamic\" needs \"max_position_embeddings\"");
          sc.max_position_embeddings = static_cast<double>(c.max_position_embeddings);
        } else {
          fail("rope_scaling type \"" + kind +
               "\" is not implemented (default, linear, llama3 and dynamic are)");
        }
      }
      if (doc.contains("head_dim") && !doc.at("head_dim").is_null()) {
        c.head_dim = positive("head_dim", doc.get_int("head_dim"));
      } else {
        if (c.hidden_size % c.num_attention_heads != 0)
          fail("hidden_size " + std::to_string(c.hidden_size) + " is not a multiple of " +
               "num_attention_heads " + std::to_string(c.num_attention_heads) + " (give head_dim)");
        c.head_dim = c.hidden_size / c.num_attention_heads;
      }
    } catch (const json::access_error& e) {
      std::string m = e.what();
      if (m.rfind("attnkit: ", 0) == 0) m = m.substr(9);
      fail(m);
    }
    if (c.num_attention_heads % c.num_key_value_heads != 0)
      fail("num_attention_heads " + std::to_string(c.num_attention_heads) +
           " is not a multiple of num_key_value_heads " + std::to_string(c.num_key_value_heads));
    const bool layer = c.norm == NormKind::layer_norm;
    if (!(c.eps() >= 0) || c.eps() > 1)
      fail(std::string("key \"") + (layer ? "layer_norm_eps" : "rms_norm_eps") +
           "\" must be in [0, 1], got " + std::to_string(c.eps()));
    if (!(c.rope_theta > 0)) fail("key \"rope_theta\" must be > 0");
    if (c.positions_given && c.positions == PositionKind::rope && c.head_dim % 2 != 0)
      fail("head_dim " + std::to_string(c.head_dim) + " is odd (RoPE rotates pairs)");
    c.read_eos(doc, source);
    return c;
  }

  /// Reads and checks a config.json file; throws attnkit::error naming the file.
  static DecoderConfig load(const std::string& path) {
    return from_json(json::parse_file(path), path);
  }
};

}  // namespace attnkit::model
