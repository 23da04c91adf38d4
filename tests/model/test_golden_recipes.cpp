// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Layer recipes against their PyTorch goldens (tests/golden/make_golden.py, recipe-*): LayerNorm
// with post placement and the GELU MLP, a Mixtral-style MoE, ALiBi with the tanh GELU and six
// heads, no positions with post-norm RMSNorm; each loaded with the run-time layer
// (DecoderLayer, chosen by config.json) and with a layer type fixed at compile time, with and
// without the KV cache. A fixed layer type that disagrees with config.json is an error.
#include <string>

#include "golden_util.hpp"

namespace mdl = attnkit::model;
namespace pol = attnkit::policy;
namespace blk = attnkit::block;

namespace {

template <class Activation, class ScoreMod = pol::NoScoreMod>
using Pol = pol::AttentionPolicy<Activation, pol::Causal, ScoreMod>;

template <class Policy, class Norm, class Placement, class FFN>
using Fixed = mdl::Decoder<Policy, float,
                           attnkit::modules::TransformerBlock<Policy, Norm, Placement, FFN, float>>;

}  // namespace

TEST_CASE("golden recipe: LayerNorm, post-norm, GELU MLP (exact), RoPE, F32", "[model][golden]") {
  using P = Pol<pol::Softmax>;
  golden::check_variant<mdl::Decoder<P>>("recipe-layernorm-post-gelu");
  golden::check_variant<Fixed<P, blk::LayerNorm, blk::PostNorm, blk::GeluMLP<float>>>(
      "recipe-layernorm-post-gelu");
  const auto m = mdl::Decoder<P>::load(golden::folder("recipe-layernorm-post-gelu"));
  CHECK(m.config.norm == mdl::NormKind::layer_norm);
  CHECK(m.config.post_norm);
  CHECK(std::string(m.layers[0].ffn.name()) == "gelu");
  CHECK(m.layers[0].norm1_bias.size() == 64);
  CHECK(m.norm_bias.size() == 64);
  // The LLaMA layer type refuses the folder, naming the key.
  CHECK_THROWS_WITH((mdl::Decoder<P, float, mdl::LlamaLayer<P, float>>::load(
                        golden::folder("recipe-layernorm-post-gelu"))),
                    Catch::Contains("config.json") &&
                        Catch::Contains("\"attnkit_norm\" is \"layer_norm\"") &&
                        Catch::Contains("fixes rms_norm"));
  CHECK_THROWS_WITH(
      (Fixed<P, blk::LayerNorm, blk::PreNorm, blk::GeluMLP<float>>::load(
          golden::folder("recipe-layernorm-post-gelu"))),
      Catch::Contains("\"attnkit_norm_placement\" is \"post\"") && Catch::Contains("fixes pre"));
  CHECK_THROWS_WITH(
      (Fixed<P, blk::LayerNorm, blk::PostNorm, blk::SwiGLU<float>>::load(
          golden::folder("recipe-layernorm-post-gelu"))),
      Catch::Contains("\"attnkit_mlp\" is \"gelu\"") && Catch::Contains("fixes swiglu"));
}

TEST_CASE("golden recipe: top-2 of 4 experts (Mixtral MoE), sigmoid-bias, F16", "[model][golden]") {
  using P = Pol<pol::SigmoidBias>;
  golden::check_variant<mdl::SigmoidBiasLlama>("recipe-moe");
  golden::check_variant<Fixed<P, blk::RMSNorm, blk::PreNorm, blk::MixtureOfExperts<float>>>(
      "recipe-moe");
  const auto m = mdl::SigmoidBiasLlama::load(golden::folder("recipe-moe"));
  CHECK(std::string(m.layers[1].ffn.name()) == "moe");
  CHECK(m.config.num_local_experts == 4);
  CHECK(m.config.num_experts_per_tok == 2);
}

TEST_CASE("golden recipe: ALiBi (6 heads), LayerNorm, tanh GELU, BF16", "[model][golden]") {
  using P = Pol<pol::Softmax, pol::ALiBi>;
  golden::check_variant<mdl::Decoder<P>>("recipe-alibi-gelu-tanh");
  const auto m = mdl::Decoder<P>::load(golden::folder("recipe-alibi-gelu-tanh"));
  CHECK_FALSE(m.layers[0].attn.rope.has_value());
  CHECK(m.config.positions == mdl::PositionKind::alibi);
  // The folder's positions and the policy must agree, both ways.
  CHECK_THROWS_WITH(mdl::SoftmaxLlama::load(golden::folder("recipe-alibi-gelu-tanh")),
                    Catch::Contains("\"attnkit_positions\" is \"alibi\"") &&
                        Catch::Contains("no positional score mod"));
  CHECK_THROWS_WITH(
      mdl::Decoder<P>::load(golden::folder("recipe-layernorm-post-gelu")),
      Catch::Contains("\"attnkit_positions\" is \"rope\"") && Catch::Contains("encodes positions"));
}

TEST_CASE("golden recipe: no positions, post-norm RMSNorm, normalized sigmoid, F16",
          "[model][golden]") {
  golden::check_variant<mdl::NormalizedSigmoidLlama>("recipe-nopos-post-rms");
  const auto m = mdl::NormalizedSigmoidLlama::load(golden::folder("recipe-nopos-post-rms"));
  CHECK_FALSE(m.layers[0].attn.rope.has_value());
  CHECK(m.layers[0].placement.post);
}
