// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The Ebbinghaus retention memory (modules/kv_cache.hpp): the same model and prompt generated
// under each memory mode
// - baseline (no forgetting), soft-delete (keys scaled by retention R = exp(-dt/S)) and sparse
// (tokens with R < 0.01 dropped, their attention work skipped) - plus sparse with the dynamic
// threshold that keeps half the tokens seen. One JSON line per mode:
//   {"mode": .., "tokens_per_s": .., "memory_tokens": .., "mean_retention": .., "sparsity": ..,
//    "agree": <leading tokens equal to the baseline's>}
//
// usage: 03_ebbinghaus_memory [MODEL_DIR] [NEW_TOKENS] [THREADS]
//   MODEL_DIR defaults to the golden softmax model of tests/golden/data (2 layers, hidden 64,
//   fixed-seed weights); NEW_TOKENS (default 800) is long enough for unreinforced tokens to fade
//   (with the defaults, R falls below 0.01 after 461 steps without attention); THREADS default 1
//   (a model this small gains nothing from more, and timings are steadier).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
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
    {  // warm-up (page faults of the weights, first allocations), not reported
      mdl::DecoderState<float> state;
      mdl::Sampler<> greedy;
      mdl::generate(model, prompt, 64, greedy, state);
    }
    std::vector<std::int64_t> baseline;
    for (const Run& run : runs) {
      attnkit::modules::RetentionCache cache{run.mode, {}};
      cache.params.keep_fraction = run.keep_fraction;
      mdl::DecoderState<float> state(cache);
      mdl::Sampler<> greedy;
      const mdl::GenerationResult r =
          mdl::generate(model, prompt, static_cast<attnkit::index_t>(n), greedy, state);
      if (baseline.empty()) baseline = r.ids;
      std::size_t agree = 0;
      while (agree < r.ids.size() && agree < baseline.size() && r.ids[agree] == baseline[agree])
        ++agree;
      std::printf(
          "{\"mode\": \"%s\", \"tokens_per_s\": %.6g, \"memory_tokens\": %.6g, "
          "\"mean_retention\": %.6g, \"sparsity\": %.6g, \"keep_fraction\": %g, \"agree\": %zu}\n",
          run.label, r.tokens_per_s(), r.memory_tokens(), r.mean_retention(), r.sparsity(),
          run.keep_fraction, agree);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
