// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The Ebbinghaus retention memory (modules/kv_cache.hpp): the same model and prompt generated
// under each memory mode
// - baseline (no forgetting), soft-delete (keys scaled by retention R = exp(-dt/S)) and sparse
// (tokens with R < 0.01 dropped, their attention work skipped) - plus sparse with the dynamic
// threshold that keeps half the tokens seen. One JSON line per mode:
//   {"mode": .., "tokens_per_s": .., "memory_tokens": .., "mean_retention": .., "sparsity": ..,
//    "agree": <leading tokens equal to the baseline's>, "speedup": <tokens/s over the baseline's>}
// The modes run in turn, ROUNDS times (default 5), after an untimed warm-up generation of the full
// length: tokens_per_s is the median of a mode's rounds, so the first mode does not pay the
// process's first page faults and a shared machine's load changing over the run hits every mode.
//
// What "speedup" can reach: sparse memory shrinks the attention's share of a step (the keys read,
// the cache's bookkeeping), not the projections'. In the golden model (D = 16) attention is about
// half of a step at the default length, so keeping half the tokens gives ~1.3x; the share, and
// the speedup, grow with NEW_TOKENS (~1.5x at 4000) and with the head dimension
// (benchmarks/bench_memory's attention-dominated layer, D = 128 over 8k tokens: ~2x).
//
// usage: 03_ebbinghaus_memory [MODEL_DIR] [NEW_TOKENS] [THREADS] [ROUNDS]
//   MODEL_DIR defaults to the golden softmax model of tests/golden/data (2 layers, hidden 64,
//   fixed-seed weights); NEW_TOKENS (default 800) is long enough for unreinforced tokens to fade
//   (with the defaults, R falls below 0.01 after 461 steps without attention); THREADS default 1
//   (a model this small gains nothing from more, and timings are steadier).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "attnkit/core/parallel.hpp"
#include "attnkit/model/generate.hpp"
#include "attnkit/model/variants.hpp"

int main(int argc, char** argv) {
  namespace mdl = attnkit::model;
  const std::string dir = argc > 1 ? argv[1] : ATTNKIT_EXAMPLE_MODEL_DIR;
  const long n = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 800;
  attnkit::set_threads(argc > 3 ? static_cast<int>(std::strtol(argv[3], nullptr, 10)) : 1);
  const long rounds = argc > 4 ? std::strtol(argv[4], nullptr, 10) : 5;
  if (n < 1 || rounds < 1) {
    std::fprintf(stderr,
                 "usage: 03_ebbinghaus_memory [MODEL_DIR] [NEW_TOKENS >= 1] [THREADS] "
                 "[ROUNDS >= 1]\n");
    return 2;
  }
  try {
    const auto model = mdl::SoftmaxLlama::load(dir);
    std::mt19937 rng(1);
    std::uniform_int_distribution<std::int64_t> tok(0, model.config.vocab_size - 1);
    std::vector<std::int64_t> prompt(48);
    for (auto& t : prompt) t = tok(rng);

    struct Run {
      const char* label;
      attnkit::modules::MemoryMode mode;
      double keep_fraction;
    };
    const Run runs[] = {{"baseline", attnkit::modules::MemoryMode::baseline, 0.0},
                        {"soft-delete", attnkit::modules::MemoryMode::soft_delete, 0.0},
                        {"sparse", attnkit::modules::MemoryMode::sparse, 0.0},
                        {"sparse", attnkit::modules::MemoryMode::sparse, 0.5}};
    {  // warm-up (page faults of the weights and of a full-length cache), not reported
      mdl::DecoderState<float> state;
      mdl::Sampler<> greedy;
      mdl::generate(model, prompt, static_cast<attnkit::index_t>(n), greedy, state);
    }
    constexpr std::size_t nruns = std::size(runs);
    std::vector<double> rates[nruns];
    mdl::GenerationResult last[nruns];
    for (long round = 0; round < rounds; ++round)
      for (std::size_t i = 0; i < nruns; ++i) {
        attnkit::modules::RetentionCache cache{runs[i].mode, {}};
        cache.params.keep_fraction = runs[i].keep_fraction;
        mdl::DecoderState<float> state(cache);
        mdl::Sampler<> greedy;
        last[i] = mdl::generate(model, prompt, static_cast<attnkit::index_t>(n), greedy, state);
        rates[i].push_back(last[i].tokens_per_s());
      }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      const std::size_t h = v.size() / 2;
      return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
    };
    const double base_rate = median(rates[0]);
    for (std::size_t i = 0; i < nruns; ++i) {
      const mdl::GenerationResult& r = last[i];
      std::size_t agree = 0;
      while (agree < r.ids.size() && agree < last[0].ids.size() &&
             r.ids[agree] == last[0].ids[agree])
        ++agree;
      const double rate = median(rates[i]);
      std::printf(
          "{\"mode\": \"%s\", \"tokens_per_s\": %.6g, \"memory_tokens\": %.6g, "
          "\"mean_retention\": %.6g, \"sparsity\": %.6g, \"keep_fraction\": %g, \"agree\": %zu, "
          "\"speedup\": %.3f}\n",
          runs[i].label, rate, r.memory_tokens(), r.mean_retention(), r.sparsity(),
          runs[i].keep_fraction, agree, rate / base_rate);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
