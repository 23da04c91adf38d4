// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// StreamingLLM's attention sinks: greedy generation far past the window with the
// sink cache (the first S tokens plus the last W, positions inside the cache) beside the full
// cache. The sink cache holds S + W tokens whatever the step, so its decode cost stays flat;
// the full cache's grows with the step. One JSON line per cache and stretch of W steps:
//   {"cache": .., "steps": [from, to], "memory_tokens": .., "cpu_ms_per_token": ..,
//    "ms_per_token": ..}
// and a last line per cache with the ratio of the last stretch's CPU cost to the second's (the
// first still fills the sink cache). CPU time (std::clock) with one thread, the default, is the
// work alone even on a busy machine; wall time is printed beside it.
//
// usage: 04_streaming_sinks [MODEL_DIR] [WINDOW] [STRETCHES] [THREADS]
//   MODEL_DIR defaults to the golden softmax model of tests/golden/data; WINDOW (default 508)
//   with S = 4 sinks; STRETCHES (default 8) stretches of WINDOW steps each; THREADS default 1.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <span>
#include <string>
#include <vector>

#include "attnkit/core/parallel.hpp"
#include "attnkit/model/sampling.hpp"
#include "attnkit/model/variants.hpp"
#include "attnkit/modules/kv_cache.hpp"

int main(int argc, char** argv) {
  namespace mdl = attnkit::model;
  using attnkit::index_t;
  const std::string dir = argc > 1 ? argv[1] : ATTNKIT_EXAMPLE_MODEL_DIR;
  const index_t w = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 508;
  const index_t stretches = argc > 3 ? std::strtol(argv[3], nullptr, 10) : 8;
  attnkit::set_threads(argc > 4 ? static_cast<int>(std::strtol(argv[4], nullptr, 10)) : 1);
  const index_t sinks = 4;
  try {
    const auto model = mdl::SoftmaxLlama::load(dir);
    const std::vector<std::int64_t> prompt{1, 2, 3, 4, 5, 6, 7, 8};
    for (const attnkit::modules::CachePolicy& policy :
         {attnkit::modules::CachePolicy(attnkit::modules::SinkCache{sinks, w}),
          attnkit::modules::CachePolicy(attnkit::modules::FullCache{})}) {
      const std::string name = attnkit::modules::cache_policy_name(policy);
      mdl::DecoderState<float> state(policy);
      auto logits = model.forward(prompt, state);
      std::vector<double> cpu;
      for (index_t s = 0; s < stretches; ++s) {
        const auto t0 = std::chrono::steady_clock::now();
        const std::clock_t c0 = std::clock();
        for (index_t i = 0; i < w; ++i) {
          const std::int64_t next[1] = {mdl::argmax(std::span<const float>(
              &logits(logits.extent(0) - 1, 0), static_cast<std::size_t>(logits.extent(1))))};
          logits = model.forward(next, state);
        }
        cpu.push_back(1000.0 * double(std::clock() - c0) / CLOCKS_PER_SEC / double(w));
        const double wall =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count() /
            double(w);
        std::printf(
            "{\"cache\": \"%s\", \"steps\": [%td, %td], \"memory_tokens\": %td, "
            "\"cpu_ms_per_token\": %.5f, \"ms_per_token\": %.5f}\n",
            name.c_str(), s * w, (s + 1) * w, state.layers[0].length(), cpu.back(), wall);
      }
      const double second = cpu[std::min<std::size_t>(1, cpu.size() - 1)];
      std::printf("{\"cache\": \"%s\", \"last_over_second_stretch\": %.3f}\n", name.c_str(),
                  cpu.back() / second);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  return 0;
}
