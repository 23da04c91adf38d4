// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// main() of every benchmark binary: records the context (attnkit version, SIMD architecture,
// threads) and registers BM_PeakFma and BM_MemoryBandwidth beside the binary's own benchmarks.
#pragma once

#include <string>

#include <benchmark/benchmark.h>

#include "attnkit/core/parallel.hpp"
#include "attnkit/core/version.hpp"
#include "attnkit/simd/arch.hpp"

#include "peak.hpp"

#define ATTNKIT_BENCHMARK_MAIN()                                                                \
  ATTNKIT_REGISTER_PEAK_BENCHMARKS();                                                           \
  int main(int argc, char** argv) {                                                             \
    benchmark::Initialize(&argc, argv);                                                         \
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;                           \
    benchmark::AddCustomContext("attnkit.version", attnkit::version_string);                    \
    benchmark::AddCustomContext("attnkit.arch", attnkit::simd::dispatch_arch_name());           \
    benchmark::AddCustomContext("attnkit.max_threads", std::to_string(attnkit::max_threads())); \
    benchmark::RunSpecifiedBenchmarks();                                                        \
    benchmark::Shutdown();                                                                      \
    return 0;                                                                                   \
  }                                                                                             \
  static_assert(true, "")
