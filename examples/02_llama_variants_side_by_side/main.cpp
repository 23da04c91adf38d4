// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The LLaMA attention variants side by side: the same weights under every attention
// activation (softmax, sigmoid, sigmoid with b = -ln n, softmax across heads, linear, and the
// fixes normalized sigmoid and relu), their greedy continuations and prefill speed.
//
// usage: 02_llama_variants_side_by_side [MODEL_DIR] [PROMPT_TOKENS]
//   MODEL_DIR defaults to the golden softmax model of tests/golden/data (2 layers, hidden 64);
//   PROMPT_TOKENS (default 256) sets the length of the timed prefill.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include "attnkit/model/variants.hpp"

namespace {

using attnkit::index_t;

struct Row {
  const char* name;
  std::vector<std::int64_t> greedy;
  double prefill_ms;
  double logit_range;  // max - min logit of the timed prefill
};

std::int64_t argmax_last(const attnkit::Tensor<float, 2>& l) {
  const index_t r = l.extent(0) - 1;
  index_t best = 0;
  for (index_t j = 1; j < l.extent(1); ++j)
    if (l(r, j) > l(r, best)) best = j;
  return best;
}

/// Greedy continuation (KV cache) and the median prefill time of a long prompt.
template <class Model>
Row run(const char* name, const std::string& dir, const std::vector<std::int64_t>& prompt,
        const std::vector<std::int64_t>& long_prompt) {
  const Model m = Model::load(dir);
  Row row{name, {}, 0.0, 0.0};
  attnkit::model::DecoderState<float> state;
  auto logits = m.forward(prompt, state);
  for (int s = 0; s < 8; ++s) {
    row.greedy.push_back(argmax_last(logits));
    logits = m.forward(std::vector<std::int64_t>{row.greedy.back()}, state);
  }
  std::vector<double> ms;
  m.forward(long_prompt);  // warm-up
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto l = m.forward(long_prompt);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    float lo = l(0, 0), hi = l(0, 0);
    for (float x : l) lo = std::min(lo, x), hi = std::max(hi, x);
    row.logit_range = double(hi) - double(lo);
  }
  std::sort(ms.begin(), ms.end());
  row.prefill_ms = ms[ms.size() / 2];
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : ATTNKIT_EXAMPLE_MODEL_DIR;
  const long n = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 256;
  try {
    namespace mdl = attnkit::model;
    const auto cfg = mdl::DecoderConfig::load(dir + "/config.json");
    std::mt19937 rng(1);
    std::uniform_int_distribution<std::int64_t> tok(0, cfg.vocab_size - 1);
    std::vector<std::int64_t> prompt(11), long_prompt(static_cast<std::size_t>(std::max(1L, n)));
    for (auto& t : prompt) t = tok(rng);
    for (auto& t : long_prompt) t = tok(rng);
    std::printf("model %s: %td layers, hidden %td, %td/%td heads, vocab %td\n", dir.c_str(),
                cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads,
                cfg.num_key_value_heads, cfg.vocab_size);
    std::vector<Row> rows;
    rows.push_back(run<mdl::SoftmaxLlama>("SoftmaxLlama (softmax)", dir, prompt, long_prompt));
    rows.push_back(run<mdl::SigmoidLlama>("SigmoidLlama", dir, prompt, long_prompt));
    rows.push_back(run<mdl::SigmoidBiasLlama>("SigmoidBiasLlama", dir, prompt, long_prompt));
    rows.push_back(
        run<mdl::HeadSoftmaxLlama>("HeadSoftmaxLlama (heads)", dir, prompt, long_prompt));
    rows.push_back(run<mdl::LinearLlama>("LinearLlama", dir, prompt, long_prompt));
    rows.push_back(
        run<mdl::NormalizedSigmoidLlama>("NormalizedSigmoidLlama", dir, prompt, long_prompt));
    rows.push_back(run<mdl::ReluLlama>("ReluLlama", dir, prompt, long_prompt));
    std::printf("\n%-26s %-34s %12s %9s %12s\n", "variant", "greedy continuation (8)", "prefill ms",
                "vs soft", "logit range");
    for (const Row& r : rows) {
      std::string ids;
      for (auto id : r.greedy) ids += std::to_string(id) + " ";
      std::printf("%-26s %-34s %12.3f %8.2fx %12.2f\n", r.name, ids.c_str(), r.prefill_ms,
                  rows[0].prefill_ms / r.prefill_ms, r.logit_range);
    }
    std::printf("\n(prefill of %ld tokens, median of 5; 'vs soft' > 1 means faster than softmax)\n",
                n);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
