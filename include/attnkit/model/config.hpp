// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// DecoderConfig: the Hugging Face LLaMA config.json keys a Decoder needs, checked on load.
#pragma once

#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>

#include "attnkit/core/error.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/io/json.hpp"

namespace attnkit::model {

/// The architecture of a LLaMA-style decoder (config.json of a Hugging Face model folder).
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
  std::string attnkit_activation;  ///< the CLI's default --variant ("" when absent)

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
    if (!(c.rms_norm_eps >= 0) || c.rms_norm_eps > 1)
      fail("key \"rms_norm_eps\" must be in [0, 1], got " + std::to_string(c.rms_norm_eps));
    if (!(c.rope_theta > 0)) fail("key \"rope_theta\" must be > 0");
    if (c.head_dim % 2 != 0) fail("head_dim " + std::to_string(c.head_dim) + " is odd (RoPE)");
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
