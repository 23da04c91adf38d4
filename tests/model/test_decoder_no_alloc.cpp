// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// A decode step of model::Decoder allocates nothing after the first token: this executable
// replaces the global operator new with a counting one and runs greedy decoding of a golden
// model through Decoder::forward(ids, state, logits) with reserved caches, under the full,
// window and sink cache policies and with f32 and bf16 K/V; the logits equal those of the
// allocating forward(ids, state).
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/attnkit.hpp"

#include "core/counting_new.hpp"

using namespace attnkit;

namespace {

std::int64_t argmax_row(const TensorView<const float, 2>& logits, index_t row) {
  index_t best = 0;
  for (index_t c = 1; c < logits.extent(1); ++c)
    if (logits(row, c) > logits(row, best)) best = c;
  return best;
}

}  // namespace

TEST_CASE("a decode step of Decoder allocates nothing after the first token", "[model][alloc]") {
  const auto m = model::SoftmaxLlama::load(std::string(ATTNKIT_GOLDEN_DIR) + "/family-llama3-f32");
  const auto prompt_t = io::read_npy_as<std::int64_t, 1>(std::string(ATTNKIT_GOLDEN_DIR) +
                                                         "/family-llama3-f32/input_ids.npy");
  const std::vector<std::int64_t> prompt(prompt_t.data(), prompt_t.data() + prompt_t.size());
  const index_t np = static_cast<index_t>(prompt.size()), vocab = m.config.vocab_size;
  constexpr index_t steps = 24;
  struct Case {
    const char* name;
    modules::CachePolicy cache;
    modules::KVDtype dtype;
  };
  const std::array<Case, 4> cases{
      {{"full f32", modules::FullCache{}, modules::KVDtype::compute},
       {"full bf16", modules::FullCache{}, modules::KVDtype::bf16},
       {"window 5", modules::WindowCache{5}, modules::KVDtype::compute},
       {"sinks 2 + window 4", modules::SinkCache{2, 4}, modules::KVDtype::compute}}};
  const int saved = max_threads();
  for (int threads : {1, 2}) {
    set_threads(threads);
    for (const Case& c : cases) {
      INFO("threads " << threads << ", " << c.name);
      model::DecoderState<float> state(c.cache, c.dtype), twin(c.cache, c.dtype);
      state.reserve(np + steps + 1);
      Tensor<float, 2> first({np, vocab}), logits({1, vocab});
      m.forward(prompt, state, first.view());
      std::array<std::int64_t, 1> token{argmax_row(first.cview(), np - 1)};
      m.forward(token, state, logits.view());  // the first token: the decode shapes grow here
      // The same tokens through the allocating API, for the expected logits.
      const Tensor<float, 2> want_first = m.forward(prompt, twin);
      CHECK(std::equal(first.data(), first.data() + first.size(), want_first.data()));
      std::vector<std::int64_t> tokens{token[0]};
      std::vector<float> got;
      tokens.reserve(steps + 1);
      got.reserve(static_cast<std::size_t>(steps * vocab));
      const long n = count_allocations([&] {
        for (index_t s = 0; s < steps; ++s) {
          token[0] = argmax_row(logits.cview(), 0);
          m.forward(token, state, logits.view());
          tokens.push_back(token[0]);  // within the capacity reserved above
          got.insert(got.end(), logits.data(), logits.data() + vocab);
        }
      });
      CHECK(n == 0);
      for (std::size_t s = 0; s < tokens.size(); ++s) {
        const std::array<std::int64_t, 1> t{tokens[s]};
        const Tensor<float, 2> want = m.forward(t, twin);
        if (s == 0) continue;  // the first token's logits were not kept
        const float* g = got.data() + (s - 1) * static_cast<std::size_t>(vocab);
        double worst = 0;
        for (index_t v = 0; v < vocab; ++v)
          worst = std::max(worst, static_cast<double>(std::abs(g[v] - want(0, v))));
        CHECK(worst == 0.0);
      }
    }
  }
  set_threads(saved);
}

TEST_CASE("Decoder::forward into a view checks the logits' shape", "[model]") {
  const auto m = model::SoftmaxLlama::load(std::string(ATTNKIT_GOLDEN_DIR) + "/family-llama3-f32");
  model::DecoderState<float> state;
  const std::array<std::int64_t, 2> ids{1, 2};
  Tensor<float, 2> wrong({1, m.config.vocab_size});
  CHECK_THROWS_WITH(m.forward(ids, state, wrong.view()), Catch::Contains("logits"));
  CHECK(state.position == 0);
  CHECK_THROWS_WITH(state.reserve(-1), Catch::Contains("negative"));
}
