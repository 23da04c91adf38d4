// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Decoding with memory: the decode step of an attention-dominated
// layer (Hq 32, Hkv 8, D 128 over an 8k-token cache; hidden 128, so the projections are a small
// share) under the Ebbinghaus modes - baseline (full cache), sparse with nothing forgotten (0%)
// and sparse keeping half the tokens (dynamic threshold, 50%) - and the StreamingLLM sink cache
// at generation step W and 4W beside the full cache at the same steps.
// One iteration = one decode step (projections, cache update, attention, o_proj) of one layer;
// "tok/s" is its rate. Run: bench_memory --benchmark_filter='Decode' --benchmark_min_time=0.1
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "attnkit/core/parallel.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/modules/kv_cache.hpp"
#include "attnkit/modules/multi_head_attention.hpp"

#include "bench_main.hpp"
#include "flop_count.hpp"

namespace {

using namespace attnkit;
namespace pol = attnkit::policy;
using Policy = pol::AttentionPolicy<pol::Softmax, pol::Causal>;

constexpr index_t hid = 128, hq = 32, hkv = 8, d = 128;
constexpr index_t context = 8192;            // the long context of the sparsity targets
constexpr index_t sinks = 4, window = 2044;  // S + W = 2048
constexpr index_t timed_steps = 256;         // decode steps per repetition

/// One attention layer with fixed random weights and RoPE.
struct Layer {
  Tensor<float, 2> wq{{hq * d, hid}}, wk{{hkv * d, hid}}, wv{{hkv * d, hid}}, wo{{hid, hq*d}};
  Tensor<float, 3> rows{{1, 512, hid}};  // inputs, cycled
  modules::MultiHeadAttention<Policy, float> mha;
  Layer() {
    std::mt19937 g(7);
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (auto* w : {&wq, &wk, &wv, &wo})
      for (auto& x : *w) x = n(g) / 16.0f;
    for (auto& x : rows) x = n(g);
    mha.heads = hq;
    mha.kv_heads = hkv;
    mha.head_dim = d;
    mha.q_proj.weight = wq.cview();
    mha.k_proj.weight = wk.cview();
    mha.v_proj.weight = wv.cview();
    mha.o_proj.weight = wo.cview();
    mha.rope.emplace(d, 10000.0);
  }
  /// Feeds one token (input rows cycled) at the cache's next position.
  void feed(attnkit::modules::KVCache<float>& cache) const {
    Tensor<float, 3> x({1, 1, hid}), y({1, 1, hid});
    const index_t pos[1] = {cache.seen()};
    for (index_t c = 0; c < hid; ++c) x(0, 0, c) = rows(0, pos[0] % 512, c);
    mha.forward(x.cview(), pos, y.view(), cache);
  }
};

const Layer& layer() {
  static const Layer l;
  return l;
}

/// A cache that has seen `tokens` tokens, prepared once per name. The prompt's keys and values
/// (random, RoPE applied by the cache) go in through KVCache::step with no attention: only the
/// decode steps are measured, and an 8k causal prefill would dominate the run time.
const attnkit::modules::KVCache<float>& prepared(const std::string& name,
                                                 const attnkit::modules::CachePolicy& policy,
                                                 index_t tokens) {
  static std::map<std::string, attnkit::modules::KVCache<float>> done;
  auto it = done.find(name);
  if (it != done.end()) return it->second;
  attnkit::modules::KVCache<float> c(policy);
  Tensor<float, 4> k({1, hkv, tokens, d}), v({1, hkv, tokens, d});
  std::mt19937 g(3);
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (auto& x : k) x = n(g);
  for (auto& x : v) x = n(g);
  std::vector<index_t> pos(static_cast<std::size_t>(tokens));
  for (index_t i = 0; i < tokens; ++i) pos[static_cast<std::size_t>(i)] = i;
  c.step(k.cview(), v.cview(), pos, &*layer().mha.rope, hq,
         [](index_t, index_t, auto, auto, auto) {});
  return done.emplace(name, std::move(c)).first->second;
}

/// Times decode steps from a copy of the prepared cache; range(0) is the thread count.
void run_steps(benchmark::State& state, attnkit::modules::KVCache<float> cache, int warmup) {
  const Layer& l = layer();
  set_threads(static_cast<int>(state.range(0)));
  for (int i = 0; i < warmup; ++i) l.feed(cache);
  Tensor<float, 3> x({1, 1, hid}), y({1, 1, hid});
  double kept = 0;
  for (auto _ : state) {
    const index_t p = cache.seen();
    for (index_t c = 0; c < hid; ++c) x(0, 0, c) = l.rows(0, p % 512, c);
    const index_t pos[1] = {p};
    l.mha.forward(x.cview(), pos, y.view(), cache);
    benchmark::DoNotOptimize(y.data());
    kept += double(cache.length());
  }
  const attnkit::modules::CacheStats st = cache.stats();
  const double mean_kept = kept / double(state.iterations());
  state.counters["tok/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["kept"] = mean_kept;
  state.counters["seen"] = double(st.seen);
  state.counters["sparsity"] = st.sparsity;
  state.counters["FLOP/s"] = benchmark::Counter(bench::attention_flops(1, hq, 1, mean_kept, d, d),
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = max_threads();
}

attnkit::modules::RetentionCache retention(attnkit::modules::MemoryMode m,
                                           double keep_fraction = 0) {
  attnkit::modules::RetentionCache r{m, {}};
  r.params.keep_fraction = keep_fraction;
  return r;
}

/// Baseline: the full cache (no forgetting) over the 8k context.
void BM_DecodeStep_Baseline(benchmark::State& state) {
  run_steps(state, prepared("baseline", retention(attnkit::modules::MemoryMode::baseline), context),
            2);
}

/// Sparse with the default parameters right after the prompt: nothing has faded below 0.01 yet
/// (that takes 461 unreinforced steps), so all the retention work is done and nothing skipped.
void BM_DecodeStep_Sparse0(benchmark::State& state) {
  run_steps(state, prepared("sparse0", retention(attnkit::modules::MemoryMode::sparse), context),
            2);
}

/// Sparse with the dynamic threshold keeping half the tokens seen (the most retained).
void BM_DecodeStep_Sparse50(benchmark::State& state) {
  run_steps(state,
            prepared("sparse50", retention(attnkit::modules::MemoryMode::sparse, 0.5), context), 2);
}

/// Soft-delete (keys scaled by retention each step; nothing skipped), for reference.
void BM_DecodeStep_SoftDelete(benchmark::State& state) {
  run_steps(state, prepared("soft", retention(attnkit::modules::MemoryMode::soft_delete), context),
            2);
}

/// The sink cache after range(1) x W tokens: it holds S + W whatever the step.
void BM_SinkDecode(benchmark::State& state) {
  const index_t step = state.range(1) * window;
  run_steps(
      state,
      prepared("sinks" + std::to_string(step), attnkit::modules::SinkCache{sinks, window}, step),
      2);
}

/// The full cache at the same steps: its cost grows with the step.
void BM_FullDecode(benchmark::State& state) {
  const index_t step = state.range(1) * window;
  run_steps(state, prepared("full" + std::to_string(step), attnkit::modules::FullCache{}, step), 2);
}

/// Fixed steps per repetition (so sparse-0 stays within the 461 steps in which nothing fades).
/// Real time; with 1 thread the CPU time column is the work alone, also on a busy machine.
/// ATTNKIT_BENCH_SMOKE set (tools/bench_smoke.sh): 2 steps, one repetition.
void common(benchmark::internal::Benchmark* b) {
  const bool smoke = std::getenv("ATTNKIT_BENCH_SMOKE") != nullptr;
  b->Iterations(smoke ? 2 : timed_steps)
      ->Repetitions(smoke ? 1 : 5)
      ->ReportAggregatesOnly()
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

void threads(benchmark::internal::Benchmark* b) {
  b->ArgName("threads")->Arg(1)->Arg(2)->Apply(common);
}

void threads_steps(benchmark::internal::Benchmark* b) {
  b->ArgNames({"threads", "xW"})->ArgsProduct({{1, 2}, {1, 4}})->Apply(common);
}

BENCHMARK(BM_DecodeStep_Baseline)->Apply(threads);
BENCHMARK(BM_DecodeStep_Sparse0)->Apply(threads);
BENCHMARK(BM_DecodeStep_Sparse50)->Apply(threads);
BENCHMARK(BM_DecodeStep_SoftDelete)->Apply(threads);
BENCHMARK(BM_SinkDecode)->Apply(threads_steps);
BENCHMARK(BM_FullDecode)->Apply(threads_steps);

}  // namespace

ATTNKIT_BENCHMARK_MAIN();
