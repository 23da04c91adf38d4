// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// generate() with an AttentionTrace: the weights of every step, per layer and head, equal the
// rows of one prefill capture of the whole sequence; the layer selection, the prefill switch and
// the memory budget (records kept in order until the first that does not fit); a window cache's
// records span the keys it holds.
#include <span>
#include <vector>

#include "attnkit/model/generate.hpp"

#include "golden_util.hpp"

namespace mdl = attnkit::model;
using attnkit::index_t;
using attnkit::Tensor;

namespace {

const std::vector<std::int64_t> prompt = {3, 17, 5, 60, 2, 41, 9, 33, 70};
constexpr index_t new_tokens = 6;

/// Greedy generation with a trace; returns the generated ids.
std::vector<std::int64_t> run(const mdl::SoftmaxLlama& m, mdl::AttentionTrace<float>& trace,
                              mdl::DecoderState<float> state = {}) {
  mdl::Sampler<> greedy;
  mdl::GenerateHooks<float> hooks;
  hooks.attention = &trace;
  return mdl::generate(m, prompt, new_tokens, greedy, state, hooks).ids;
}

}  // namespace

TEST_CASE("generate: the attention trace equals the prefill capture of the whole sequence",
          "[model][capture][generate]") {
  const auto m = mdl::SoftmaxLlama::load(golden::folder("softmax"));
  const index_t layers = m.config.num_hidden_layers, hq = m.config.num_attention_heads;
  const index_t n = static_cast<index_t>(prompt.size());
  mdl::AttentionTrace<float> trace;
  const std::vector<std::int64_t> ids = run(m, trace);
  REQUIRE(static_cast<index_t>(ids.size()) == new_tokens);
  CHECK(trace.complete());
  REQUIRE(static_cast<index_t>(trace.records.size()) == layers * new_tokens);
  // Reference: one prefill of prompt + ids[0 .. new_tokens - 2] with a capture of every layer.
  std::vector<std::int64_t> seq = prompt;
  seq.insert(seq.end(), ids.begin(), ids.end() - 1);
  std::vector<Tensor<float, 4>> full(static_cast<std::size_t>(layers));
  std::vector<attnkit::modules::AttentionCapture<float>> caps(static_cast<std::size_t>(layers));
  for (index_t l = 0; l < layers; ++l)
    caps[static_cast<std::size_t>(l)].probs = [&full, l](const attnkit::Shape<4>& s) {
      full[static_cast<std::size_t>(l)] = Tensor<float, 4>(s);
      return full[static_cast<std::size_t>(l)].view();
    };
  mdl::DecoderHooks<float> hooks;
  hooks.attention = [&](index_t l) { return &caps[static_cast<std::size_t>(l)]; };
  (void)m.forward(seq, hooks);
  double err = 0;
  std::size_t bytes = 0;
  for (std::size_t k = 0; k < trace.records.size(); ++k) {
    const auto& r = trace.records[k];
    CHECK(r.step == static_cast<index_t>(k) / layers);
    CHECK(r.layer == static_cast<index_t>(k) % layers);
    const index_t rows = r.step == 0 ? n : 1, keys = n + r.step;
    CHECK(r.first_row == (r.step == 0 ? 0 : n + r.step - 1));
    REQUIRE(r.weights.shape() == attnkit::Shape<3>{hq, rows, keys});
    bytes += static_cast<std::size_t>(r.weights.size()) * sizeof(float);
    for (index_t h = 0; h < hq; ++h)
      for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < keys; ++j)
          err = std::max(
              err, double(std::abs(r.weights(h, i, j) - full[static_cast<std::size_t>(r.layer)](
                                                            0, h, r.first_row + i, j))));
  }
  CHECK(err <= 1e-5);
  CHECK(trace.bytes == bytes);

  // Tracing does not change what is generated.
  mdl::Sampler<> greedy;
  mdl::DecoderState<float> plain;
  CHECK(mdl::generate(m, prompt, new_tokens, greedy, plain).ids == ids);

  // One layer, no prefill: the decode steps of layer 1 only.
  mdl::AttentionTrace<float> one;
  one.layers = {1};
  one.prefill = false;
  CHECK(run(m, one) == ids);
  REQUIRE(static_cast<index_t>(one.records.size()) == new_tokens - 1);
  for (std::size_t k = 0; k < one.records.size(); ++k) {
    CHECK(one.records[k].layer == 1);
    CHECK(one.records[k].step == static_cast<index_t>(k) + 1);
  }

  // A budget that holds the prefill and two decode steps of both layers, one byte short of a
  // third: the records stop there and every later one counts as dropped.
  const std::size_t pre = static_cast<std::size_t>(hq * n * n) * sizeof(float) * layers;
  const auto step_bytes = [&](index_t s) {
    return static_cast<std::size_t>(hq * (n + s)) * sizeof(float);
  };
  mdl::AttentionTrace<float> small;
  small.budget_bytes = pre + layers * step_bytes(1) + layers * step_bytes(2) + step_bytes(3) - 1;
  CHECK(run(m, small) == ids);
  CHECK_FALSE(small.complete());
  CHECK(small.records.size() == static_cast<std::size_t>(3 * layers));
  CHECK(small.dropped == layers * new_tokens - 3 * layers);
  CHECK(small.bytes <= small.budget_bytes);
  CHECK(small.records.back().step == 2);
  mdl::AttentionTrace<float> none;
  none.budget_bytes = 0;
  CHECK(run(m, none) == ids);
  CHECK(none.records.empty());
  CHECK(none.dropped == layers * new_tokens);
}

TEST_CASE("generate: a window cache's trace spans the keys it holds", "[model][capture][cache]") {
  const auto m = mdl::SoftmaxLlama::load(golden::folder("softmax"));
  const index_t w = 4, n = static_cast<index_t>(prompt.size());
  mdl::AttentionTrace<float> trace;
  trace.prefill = false;
  run(m, trace, mdl::DecoderState<float>(attnkit::modules::WindowCache{w}));
  REQUIRE(static_cast<index_t>(trace.records.size()) ==
          m.config.num_hidden_layers * (new_tokens - 1));
  for (const auto& r : trace.records) {
    CHECK(r.weights.extent(1) == 1);
    CHECK(r.weights.extent(2) == w);
    CHECK(r.first_row == n + r.step - 1);
    for (index_t h = 0; h < r.weights.extent(0); ++h) {
      double sum = 0;
      for (index_t j = 0; j < w; ++j) sum += r.weights(h, 0, j);
      CHECK(sum == Approx(1.0).epsilon(1e-5));
    }
  }
}
