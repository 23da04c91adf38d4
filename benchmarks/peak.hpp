// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// BM_PeakFma and BM_MemoryBandwidth, included by every benchmark binary so each run measures
// the machine it runs on and every other benchmark can quote its share of these two.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstring>
#include <immintrin.h>
#include <vector>

#include <benchmark/benchmark.h>

#include "attnkit/core/aligned.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/simd/arch.hpp"

namespace attnkit::bench {

// 12 independent FMA chains hide the 4-cycle latency on 2 FMA ports. One function per ISA,
// each compiled for its target (the rest of the binary may be built for a lesser one).
#define ATTNKIT_PEAK_FMA_BODY(V, SET1, FMA, STORE)                \
  V seed = SET1(1e-3f), mul = SET1(0.999f);                       \
  V acc[12];                                                      \
  for (auto& a : acc) a = seed;                                   \
  for (long i = 0; i < iters; ++i)                                \
    for (auto& a : acc) a = FMA(a, mul, seed);                    \
  for (int j = 1; j < 12; ++j) acc[0] = FMA(acc[0], mul, acc[j]); \
  float out[16];                                                  \
  STORE(out, acc[0]);                                             \
  return out[0]

[[gnu::target("avx512f")]] inline float peak_avx512(long iters) {
  ATTNKIT_PEAK_FMA_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps);
}
[[gnu::target("avx2,fma")]] inline float peak_avx2(long iters) {
  ATTNKIT_PEAK_FMA_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps);
}
#undef ATTNKIT_PEAK_FMA_BODY

/// fp32 FMA peak of one thread per OpenMP thread: FLOP/s counter = 2 · lanes · 12 · iters.
inline void BM_PeakFma(benchmark::State& state) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (!avx2) {
    state.SkipWithError("no FMA on this CPU");
    return;
  }
  const int threads = static_cast<int>(state.range(0));
  const long iters = 1 << 16;
  const int lanes = avx512 ? 16 : 8;
  for (auto _ : state) {
    double sink = 0;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) reduction(+ : sink) schedule(static)
#endif
    for (int t = 0; t < threads; ++t) sink += avx512 ? peak_avx512(iters) : peak_avx2(iters);
    benchmark::DoNotOptimize(sink);
  }
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * lanes * 12 * iters * threads,
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

// Sums a block read as 4 interleaved streams (more memory-level parallelism than one stream:
// measured here, 4 streams read ~15% faster than 1).
[[gnu::target("avx512f")]] inline float sum_block_avx512(const float* q, long n) {
  const long quarter = n / 4;
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (long i = 0; i < quarter; i += 32) {
    a0 = _mm512_add_ps(a0, _mm512_add_ps(_mm512_load_ps(q + i), _mm512_load_ps(q + i + 16)));
    const float* q1 = q + quarter + i;
    a1 = _mm512_add_ps(a1, _mm512_add_ps(_mm512_load_ps(q1), _mm512_load_ps(q1 + 16)));
    const float* q2 = q + 2 * quarter + i;
    a2 = _mm512_add_ps(a2, _mm512_add_ps(_mm512_load_ps(q2), _mm512_load_ps(q2 + 16)));
    const float* q3 = q + 3 * quarter + i;
    a3 = _mm512_add_ps(a3, _mm512_add_ps(_mm512_load_ps(q3), _mm512_load_ps(q3 + 16)));
  }
  float out[16];
  _mm512_storeu_ps(out, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  float sum = 0;
  for (float x : out) sum += x;
  return sum;
}
[[gnu::target("avx2")]] inline float sum_block_avx2(const float* q, long n) {
  const long quarter = n / 4;
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (long i = 0; i < quarter; i += 16) {
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_load_ps(q + i), _mm256_load_ps(q + i + 8)));
    const float* q1 = q + quarter + i;
    a1 = _mm256_add_ps(a1, _mm256_add_ps(_mm256_load_ps(q1), _mm256_load_ps(q1 + 8)));
    const float* q2 = q + 2 * quarter + i;
    a2 = _mm256_add_ps(a2, _mm256_add_ps(_mm256_load_ps(q2), _mm256_load_ps(q2 + 8)));
    const float* q3 = q + 3 * quarter + i;
    a3 = _mm256_add_ps(a3, _mm256_add_ps(_mm256_load_ps(q3), _mm256_load_ps(q3 + 8)));
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

/// The buffer of the streaming-read measurement: 256 MiB, far larger than the LLC.
struct StreamBuffer {
  static constexpr long n = (long(256) << 20) / long(sizeof(float));
  decltype(make_aligned<float>(std::size_t{1})) buf = make_aligned<float>(std::size_t{n});
  StreamBuffer() {
    for (long i = 0; i < n; ++i) buf[i] = 1.0f;
  }
  static constexpr double bytes() { return double(n) * sizeof(float); }

  /// One streaming read of the buffer on `threads` threads (16 MiB work items), in seconds.
  double read_seconds([[maybe_unused]] int threads) const {
    const bool avx512 = __builtin_cpu_supports("avx512f");
    constexpr long block = long(1) << 22;  // 16 MiB per work item, 16 items
    const float* p = buf.get();
    const auto t0 = std::chrono::steady_clock::now();
    float total = 0;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(threads) reduction(+ : total) schedule(static)
#endif
    for (long blk = 0; blk < n / block; ++blk)
      total += avx512 ? sum_block_avx512(p + blk * block, block)
                      : sum_block_avx2(p + blk * block, block);
    benchmark::DoNotOptimize(total);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

/// A memory-bound benchmark's rate against DRAM bandwidth measured in the same time window:
/// time() times one iteration's work; every `every` iterations (untimed) tick() does one
/// streaming read of a 256 MiB buffer on the same threads; report() sets "dram_GB/s" and
/// "of_dram" (the work's bytes/s over that bandwidth), which a shared machine's load changing
/// between benchmarks does not skew the way a ratio of two benchmarks' figures is skewed.
class DramWindow {
 public:
  explicit DramWindow(int threads, int every = 4) : threads_(threads), every_(every) {}

  /// Runs fn() and adds its wall time to the work's.
  template <class Fn>
  void time(Fn&& fn) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    work_s_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++runs_;
  }

  /// After an iteration: every `every` runs, one untimed streaming read.
  void tick(benchmark::State& state) {
    if (runs_ % every_ != 0) return;
    state.PauseTiming();
    stream_s_ += buffer().read_seconds(threads_);
    ++reads_;
    state.ResumeTiming();
  }

  /// Sets the counters for `bytes` per timed run.
  void report(benchmark::State& state, double bytes) const {
    if (reads_ == 0 || work_s_ <= 0) return;
    const double dram = double(reads_) * StreamBuffer::bytes() / stream_s_;
    state.counters["dram_GB/s"] = dram / 1e9;
    state.counters["of_dram"] = bytes * double(runs_) / work_s_ / dram;
  }

 private:
  static const StreamBuffer& buffer() {
    static const StreamBuffer b;
    return b;
  }
  int threads_, every_;
  double work_s_ = 0, stream_s_ = 0;
  long runs_ = 0, reads_ = 0;
};

/// Streaming read bandwidth over a 256 MiB buffer, far larger than the LLC (bytes/s).
inline void BM_MemoryBandwidth(benchmark::State& state) {
  if (!__builtin_cpu_supports("avx2")) {
    state.SkipWithError("no AVX2 on this CPU");
    return;
  }
  const int threads = static_cast<int>(state.range(0));
  const StreamBuffer sb;
  for (auto _ : state) sb.read_seconds(threads);
  state.SetBytesProcessed(static_cast<int64_t>(double(state.iterations()) * sb.bytes()));
  state.counters["threads"] = threads;
}

}  // namespace attnkit::bench

#define ATTNKIT_REGISTER_PEAK_BENCHMARKS()                                                  \
  BENCHMARK(attnkit::bench::BM_PeakFma)->ArgName("threads")->Arg(1)->Arg(2)->UseRealTime(); \
  BENCHMARK(attnkit::bench::BM_MemoryBandwidth)                                             \
      ->ArgName("threads")                                                                  \
      ->Arg(1)                                                                              \
      ->Arg(2)                                                                              \
      ->UseRealTime()                                                                       \
      ->Unit(benchmark::kMillisecond)
