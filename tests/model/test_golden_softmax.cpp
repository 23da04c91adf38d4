// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Golden models of tests/golden/data: softmax (F32, zero-copy), gated (headwise, elementwise) and
// softmax across heads, and the model families (llama, mistral, qwen2, qwen3) against PyTorch's
// logits and greedy continuations.
#include <algorithm>
#include <span>

#include "golden_util.hpp"

namespace mdl = attnkit::model;
using attnkit::index_t;

TEST_CASE("golden: SoftmaxLlama (softmax, F32)", "[model][golden]") {
  golden::check_variant<mdl::SoftmaxLlama>("softmax");
  const auto m = mdl::SoftmaxLlama::load(golden::folder("softmax"));
  CHECK(m.zero_copy());
}

TEST_CASE("golden: GatedSoftmaxLlama (headwise and elementwise gates, F16)", "[model][golden]") {
  golden::check_variant<mdl::GatedSoftmaxLlama>("gated-headwise");
  golden::check_variant<mdl::GatedSoftmaxLlama>("gated-elementwise");
  // F16 matrices are used in place (the gate projection too), not widened to float.
  const auto m = mdl::GatedSoftmaxLlama::load(golden::folder("gated-headwise"));
  CHECK(m.zero_copy());
  CHECK(m.lm_head.type() == attnkit::block::WeightType::f16);
  CHECK(m.layers[0].attn.g_proj.type() == attnkit::block::WeightType::f16);
}

TEST_CASE("golden: HeadSoftmaxLlama (softmax across heads)", "[model][golden]") {
  golden::check_variant<mdl::HeadSoftmaxLlama>("head-softmax");
}

TEST_CASE("Decoder: weight capture during cached decoding equals the prefill's rows",
          "[model][capture][cache]") {
  const auto m = mdl::GatedSoftmaxLlama::load(golden::folder("gated-headwise"));
  const std::vector<std::int64_t> ids = {3, 17, 5, 60, 2, 41, 9};
  const index_t n = static_cast<index_t>(ids.size()), hq = m.config.num_attention_heads;
  const index_t layers = m.config.num_hidden_layers;
  // Prefill with hooks: P [1, Hq, N, N] of every layer.
  std::vector<attnkit::Tensor<float, 4>> full(static_cast<std::size_t>(layers));
  std::vector<attnkit::modules::AttentionCapture<float>> caps(static_cast<std::size_t>(layers));
  for (index_t l = 0; l < layers; ++l)
    caps[static_cast<std::size_t>(l)].probs = [&full, l](const attnkit::Shape<4>& s) {
      full[static_cast<std::size_t>(l)] = attnkit::Tensor<float, 4>(s);
      return full[static_cast<std::size_t>(l)].view();
    };
  mdl::DecoderHooks<float> hooks;
  hooks.attention = [&](index_t l) { return &caps[static_cast<std::size_t>(l)]; };
  const attnkit::Tensor<float, 2> logits = m.forward(ids, hooks);
  REQUIRE(full[0].extent(2) == n);
  // Token by token through a KV cache, the same hooks: each step's row over the held keys.
  mdl::DecoderState<float> state;
  std::vector<attnkit::Tensor<float, 4>> full_rows = std::move(full);
  full.assign(static_cast<std::size_t>(layers), {});
  double err = 0, lerr = 0;
  for (index_t t = 0; t < n; ++t) {
    const attnkit::Tensor<float, 2> step =
        m.forward(std::span<const std::int64_t>(ids.data() + t, 1), state, hooks);
    for (index_t c = 0; c < logits.extent(1); ++c)
      lerr = std::max(lerr, double(std::abs(step(0, c) - logits(t, c))));
    for (index_t l = 0; l < layers; ++l) {
      const auto& p = full[static_cast<std::size_t>(l)];
      REQUIRE(p.extent(2) == 1);
      REQUIRE(p.extent(3) == t + 1);
      for (index_t h = 0; h < hq; ++h)
        for (index_t j = 0; j <= t; ++j)
          err = std::max(err, double(std::abs(p(0, h, 0, j) -
                                              full_rows[static_cast<std::size_t>(l)](0, h, t, j))));
    }
  }
  CHECK(lerr <= 1e-4);
  CHECK(err <= 1e-5);
}

TEST_CASE("golden: model families from Hugging Face configs (F32, F16, BF16 weights)",
          "[model][golden][families]") {
  // llama with LLaMA 3.1's rope_scaling; llama with attention_bias and linear scaling; llama
  // with dynamic scaling past max_position_embeddings (prefill below it, decode above); mistral
  // within its sliding window; qwen2 (q/k/v biases, tied, sharded for BF16); qwen3 (q/k norms,
  // head_dim 32 with hidden 64 and 4 heads, tied).
  for (const char* family : {"family-llama3", "family-llama-linear", "family-llama-dynamic",
                             "family-mistral", "family-qwen2", "family-qwen3"})
    for (const char* dtype : {"-f32", "-f16", "-bf16"}) {
      const std::string name = std::string(family) + dtype;
      INFO(name);
      golden::check_variant<mdl::SoftmaxLlama>(name);
    }
  const auto m = mdl::SoftmaxLlama::load(golden::folder("family-qwen3-bf16"));
  CHECK(m.config.model_type == "qwen3");
  CHECK(m.config.qk_norm);
  CHECK(m.config.head_dim == 32);
  // BF16 matrices stay BF16 in the mapping: matrix_bytes is every stored matrix once (tied: the
  // embeddings are the head), the sharded qwen2 folder likewise.
  for (const char* name : {"family-qwen3-bf16", "family-qwen2-bf16"}) {
    INFO(name);
    const auto q = mdl::SoftmaxLlama::load(golden::folder(name));
    CHECK(q.zero_copy());
    CHECK(q.embed_tokens.type() == attnkit::block::WeightType::bf16);
    CHECK(q.layers[0].attn.q_proj.weight.type() == attnkit::block::WeightType::bf16);
    std::size_t stored = 0;
    const mdl::Checkpoint ck = mdl::Checkpoint::open(golden::folder(name));
    for (const auto& f : ck.files())
      for (const std::string& t : f->names())
        if (f->info(t).shape.size() == 2) stored += f->raw(t).size();
    CHECK(q.matrix_bytes() == stored);
  }
  const auto l3 = mdl::SoftmaxLlama::load(golden::folder("family-llama3-f32"));
  CHECK(l3.config.rope_scaling.kind == attnkit::block::RopeScaling::Kind::llama3);
  CHECK(l3.zero_copy());
}
