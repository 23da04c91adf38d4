// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// DecoderConfig: the config.json keys a Decoder needs (Hugging Face's LLaMA keys, Mixtral's MoE
// keys and attnkit's layer-recipe keys), checked on load.
#pragma once

#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <string>

#include "attnkit/block/feed_forward.hpp"
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

/// The architecture of a decoder (config.json of a Hugging Face style model folder): the LLaMA
/// keys, and the layer recipe (norm, its placement, the MLP, the position signal; docs/CLI.md,
/// "Model folders"). Keys that would change the computation in a way the decoder does not
/// implement (rope_scaling, attention_bias, mlp_bias, an active sliding_window) are errors.
struct DecoderConfig {
  index_t hidden_size = 0;          ///< H
  index_t intermediate_size = 0;    ///< I of the SwiGLU MLP
  index_t num_attention_heads = 0;  ///< Hq
  index_t num_key_value_heads = 0;  ///< Hkv (defaults to Hq when absent)
  index_t num_hidden_layers = 0;    ///< L
  index_t vocab_size = 0;           ///< V
  index_t head_dim = 0;             ///< D (defaults to H / Hq when absent)
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
      const std::string mlp = choice("attnkit_mlp", "swiglu", {"swiglu", "gelu", "moe"});
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
      // Keys whose meaning the decoder does not implement: refuse rather than compute another
      // model.
      if (present("rope_scaling"))
        fail(
            "key \"rope_scaling\" is set; scaled RoPE is not implemented (remove the key only "
            "if the model was trained without it)");
      for (const char* key : {"attention_bias", "mlp_bias"})
        if (doc.get_bool(key, false))
          fail(std::string("key \"") + key +
               "\" is true; projections with biases are not "
               "implemented");
      if (present("sliding_window") && doc.get_bool("use_sliding_window", true))
        fail(
            "key \"sliding_window\" is set; a sliding-window mask is not implemented for model "
            "folders (set \"use_sliding_window\": false if the model does not use it)");
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
    return c;
  }

  /// Reads and checks a config.json file; throws attnkit::error naming the file.
  static DecoderConfig load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error("attnkit: " + path + ": cannot open (no such file?)");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return from_json(json::parse(text, path), path);
  }
};

}  // namespace attnkit::model
