// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Prefill of a LLaMA-style Decoder (random weights): 4 layers, hidden 512, 8 query / 2 kv heads
// (head_dim 64), SwiGLU intermediate 1536, vocab 512, 1024 tokens, one benchmark per attention
// LLaMA variant (softmax, sigmoid, sigmoid-bias, head-softmax, linear,
// normalized-sigmoid, relu, headwise-gated softmax), beside BM_PeakFma.
// FLOP/s counts useful FLOPs only: causal attention (QKᵀ and PV over the visible half),
// the projections (q, k, v, o, the gate, the LM head) and the SwiGLU MLP; norms, RoPE,
// activations and residual adds are not counted. tokens/s is the prefill rate.
//
// BM_Qwen05B_*: a Qwen2.5-0.5B-shaped decoder (24 layers, hidden 896, 14/2 heads, head_dim 64,
// SwiGLU intermediate 4864, vocab 151936, tied embeddings, q/k/v biases) with random BF16
// weights used in place (block::Weight). Decode: one token per iteration after a 32-token
// prompt (the cache restarts every 512 tokens, untimed); bytes/s counts every weight matrix
// once per token (Decoder::matrix_bytes: 988 MB); of_dram divides it by the streaming-read
// bandwidth measured between its tokens (dram_GB/s), the share of DRAM speed decoding reaches.
// Prefill: 512 tokens, FLOP/s as above (the LM head over every position). Both at 1 and 2 threads.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <type_traits>
#include <vector>

#include <benchmark/benchmark.h>

#include "attnkit/model/variants.hpp"

#include "bench_main.hpp"
#include "flop_count.hpp"

namespace {

using namespace attnkit;
namespace pol = attnkit::policy;

constexpr index_t layers = 4, hidden = 512, heads = 8, kv_heads = 2, head_dim = 64, inter = 1536,
                  vocab = 512, tokens = 1024;

/// Random weights of every layer, kept alive beside the decoder that views them.
struct Weights {
  std::vector<std::unique_ptr<Tensor<float, 2>>> mats;
  std::vector<std::unique_ptr<Tensor<float, 1>>> vecs;
  std::mt19937 gen{1};

  TensorView<const float, 2> mat(index_t r, index_t c, double stddev) {
    mats.push_back(std::make_unique<Tensor<float, 2>>(Shape<2>{r, c}));
    std::normal_distribution<float> nd(0.0f, static_cast<float>(stddev));
    for (auto& x : *mats.back()) x = nd(gen);
    return mats.back()->cview();
  }
  TensorView<const float, 1> vec(index_t n, float value) {
    vecs.push_back(std::make_unique<Tensor<float, 1>>(Shape<1>{n}, value));
    return vecs.back()->cview();
  }
};

/// The shape and recipe of a random LLaMA-style decoder.
struct Dims {
  index_t layers, hidden, heads, kv_heads, head_dim, inter, vocab;
  bool gated = false;     // a headwise output gate
  bool qkv_bias = false;  // q, k, v biases (Qwen2)
  bool tied = false;      // the head is the embedding matrix
  double embed_std = 1.0, rms_eps = 1e-5, rope_theta = 10000.0;
};

/// A decoder of shape d over random weights from w (any source with mat(rows, cols, stddev) and
/// vec(n, value), which keeps them alive).
template <class Policy, class W>
model::Decoder<Policy, float> random_decoder(W& w, const Dims& d) {
  model::Decoder<Policy, float> m;
  model::DecoderConfig& c = m.config;
  c.hidden_size = d.hidden;
  c.intermediate_size = d.inter;
  c.num_attention_heads = d.heads;
  c.num_key_value_heads = d.kv_heads;
  c.num_hidden_layers = d.layers;
  c.vocab_size = d.vocab;
  c.head_dim = d.head_dim;
  c.rms_norm_eps = d.rms_eps;
  c.rope_theta = d.rope_theta;
  c.tie_word_embeddings = d.tied;
  c.qkv_bias = d.qkv_bias;
  const double s = 1.0 / std::sqrt(double(d.hidden));
  const index_t q = d.heads * d.head_dim, kv = d.kv_heads * d.head_dim;
  m.embed_tokens = w.mat(d.vocab, d.hidden, d.embed_std);
  for (index_t l = 0; l < d.layers; ++l) {
    model::DecoderLayer<Policy, float> layer;
    layer.norm = attnkit::block::RMSNorm(c.rms_norm_eps);
    layer.norm1_weight = w.vec(d.hidden, 1.0f);
    layer.norm2_weight = w.vec(d.hidden, 1.0f);
    modules::MultiHeadAttention<Policy, float>& a = layer.attn;
    a.heads = d.heads;
    a.kv_heads = d.kv_heads;
    a.head_dim = d.head_dim;
    a.q_proj.weight = w.mat(q, d.hidden, s);
    a.k_proj.weight = w.mat(kv, d.hidden, s);
    a.v_proj.weight = w.mat(kv, d.hidden, s);
    a.o_proj.weight = w.mat(d.hidden, q, s);
    if (d.qkv_bias) {
      a.q_proj.bias = w.vec(q, 0.01f);
      a.k_proj.bias = w.vec(kv, 0.01f);
      a.v_proj.bias = w.vec(kv, 0.01f);
    }
    if (d.gated) a.g_proj = w.mat(d.heads, d.hidden, s);  // headwise gate
    a.rope.emplace(d.head_dim, c.rope_theta);
    attnkit::block::SwiGLU<float> mlp;
    mlp.gate = w.mat(d.inter, d.hidden, s);
    mlp.up = w.mat(d.inter, d.hidden, s);
    mlp.down = w.mat(d.hidden, d.inter, 1.0 / std::sqrt(double(d.inter)));
    layer.ffn = mlp;
    m.layers.push_back(std::move(layer));
  }
  m.norm = w.vec(d.hidden, 1.0f);
  m.lm_head = d.tied ? m.embed_tokens : block::Weight<float>(w.mat(d.vocab, d.hidden, s));
  return m;
}

/// Useful FLOPs of one prefill of `tokens` tokens.
double prefill_flops(bool gated) {
  const double n = tokens;
  const double proj = bench::gemm_flops(n, (heads + 2 * kv_heads) * head_dim, hidden) +
                      bench::gemm_flops(n, hidden, heads * head_dim) +
                      (gated ? bench::gemm_flops(n, heads, hidden) : 0.0);
  const double mlp = 3 * bench::gemm_flops(n, inter, hidden);
  const double attn = bench::attention_flops(1, heads, n, n, head_dim, head_dim, 0.5);
  return layers * (proj + mlp + attn) + bench::gemm_flops(n, vocab, hidden);
}

template <class Activation, class Gate = pol::NoGate>
void prefill(benchmark::State& state) {
  constexpr bool gated = !std::is_same_v<Gate, pol::NoGate>;
  Weights w;
  Dims d{layers, hidden, heads, kv_heads, head_dim, inter, vocab};
  d.gated = gated;
  const auto m = random_decoder<model::LlamaPolicy<Activation, Gate>>(w, d);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(tokens));
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int64_t>((i * 37) % vocab);
  for (auto _ : state) {
    auto logits = m.forward(ids);
    benchmark::DoNotOptimize(logits.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(prefill_flops(gated), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens/s"] =
      benchmark::Counter(double(tokens), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = max_threads();
}

/// The Qwen2.5-0.5B shape.
namespace qwen {
constexpr index_t layers = 24, hidden = 896, heads = 14, kv_heads = 2, head_dim = 64, inter = 4864,
                  vocab = 151936;

/// Random BF16 matrices (uniform, the given standard deviation, from a counter hash: fast for
/// the 494M parameters) and float vectors, kept beside the decoder that views them.
struct Weights {
  std::vector<std::vector<bf16>> mats;
  std::vector<std::vector<float>> vecs;
  std::uint64_t seed = 1;

  TensorView<const bf16, 2> mat(index_t r, index_t c, double stddev) {
    std::vector<bf16>& m = mats.emplace_back(static_cast<std::size_t>(r * c));
    const float scale = static_cast<float>(stddev * std::sqrt(12.0));
    const std::uint64_t s0 = (seed++) * 0x9e3779b97f4a7c15ULL;
    bf16* p = m.data();
    parallel_for(static_cast<long>(r), [&](long row) {
      for (index_t j = 0; j < c; ++j) {
        std::uint64_t z = s0 + static_cast<std::uint64_t>(row * c + j) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 31)) * 0x94d049bb133111ebULL;
        z ^= z >> 29;
        const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f) - 0.5f;
        p[row * c + j] = bf16::from_float(u * scale);
      }
    });
    return TensorView<const bf16, 2>(m.data(), {r, c});
  }
  TensorView<const float, 1> vec(index_t n, float value) {
    return TensorView<const float, 1>(vecs.emplace_back(static_cast<std::size_t>(n), value).data(),
                                      {n});
  }
};

using Policy = model::LlamaPolicy<pol::Softmax>;

/// The model, built once per process (about 1 GB of BF16 weights).
struct Model {
  Weights w;
  model::Decoder<Policy, float> m;

  Model() {
    Dims d{layers, hidden, heads, kv_heads, head_dim, inter, vocab};
    d.qkv_bias = true;
    d.tied = true;
    d.embed_std = 0.02;
    d.rms_eps = 1e-6;
    d.rope_theta = 1e6;
    m = random_decoder<Policy>(w, d);
    m.config.model_type = "qwen2";
  }

  static const Model& get() {
    static const Model model;
    return model;
  }
};

std::vector<std::int64_t> prompt(index_t n) {
  std::vector<std::int64_t> ids(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < ids.size(); ++i)
    ids[i] = static_cast<std::int64_t>((i * 7919 + 13) % vocab);
  return ids;
}

}  // namespace qwen

/// One decoded token per iteration; range(0) is the thread count. Every 4 tokens (untimed) one
/// streaming read of a 256 MiB buffer on the same threads measures DRAM bandwidth in the same
/// time window: "of_dram" = the decode's bytes/s over that bandwidth, robust to a shared
/// machine's load changing between benchmarks.
void BM_Qwen05B_Decode(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0)), before = max_threads();
  set_threads(threads);
  const qwen::Model& q = qwen::Model::get();
  bench::DramWindow window(threads);
  constexpr index_t prompt_len = 32, restart = 512;
  const std::vector<std::int64_t> ids = qwen::prompt(prompt_len);
  Tensor<float, 2> prompt_logits({prompt_len, qwen::vocab}), logits({1, qwen::vocab});
  model::DecoderState<float> st;
  st.reserve(restart + 1);
  auto start = [&] {
    st.layers.clear();
    st.position = 0;
    q.m.forward(ids, st, prompt_logits.view());
  };
  start();
  std::int64_t next = 1;
  for (auto _ : state) {
    window.time([&] { q.m.forward(std::span<const std::int64_t>(&next, 1), st, logits.view()); });
    next = (next * 31 + 7) % qwen::vocab;
    benchmark::DoNotOptimize(logits.data());
    if (st.position >= restart) {
      state.PauseTiming();
      start();
      state.ResumeTiming();
    }
    window.tick(state);
  }
  const double bytes = double(q.m.matrix_bytes());
  state.SetBytesProcessed(static_cast<int64_t>(bytes * double(state.iterations())));
  state.counters["tokens/s"] =
      benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["weight_MB"] = bytes / 1e6;
  window.report(state, bytes);
  state.counters["threads"] = threads;
  set_threads(before);
}

/// A 512-token prefill per iteration; range(0) is the thread count.
void BM_Qwen05B_Prefill(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0)), before = max_threads();
  set_threads(threads);
  const qwen::Model& q = qwen::Model::get();
  constexpr index_t n = 512;
  const std::vector<std::int64_t> ids = qwen::prompt(n);
  Tensor<float, 2> logits({n, qwen::vocab});
  for (auto _ : state) {
    model::DecoderState<float> st;
    q.m.forward(ids, st, logits.view());
    benchmark::DoNotOptimize(logits.data());
  }
  namespace q5 = qwen;
  const double proj =
      bench::gemm_flops(n, (q5::heads + 2 * q5::kv_heads) * q5::head_dim, q5::hidden) +
      bench::gemm_flops(n, q5::hidden, q5::heads * q5::head_dim);
  const double mlp = 3 * bench::gemm_flops(n, q5::inter, q5::hidden);
  const double attn = bench::attention_flops(1, q5::heads, n, n, q5::head_dim, q5::head_dim, 0.5);
  const double flops =
      q5::layers * (proj + mlp + attn) + bench::gemm_flops(n, q5::vocab, q5::hidden);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["tokens/s"] =
      benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
  set_threads(before);
}

void BM_Prefill_Softmax(benchmark::State& s) { prefill<pol::Softmax>(s); }
void BM_Prefill_Sigmoid(benchmark::State& s) { prefill<pol::Sigmoid>(s); }
void BM_Prefill_SigmoidBias(benchmark::State& s) { prefill<pol::SigmoidBias>(s); }
void BM_Prefill_HeadSoftmax(benchmark::State& s) { prefill<pol::HeadSoftmax>(s); }
void BM_Prefill_Linear(benchmark::State& s) { prefill<pol::Linear>(s); }
void BM_Prefill_NormalizedSigmoid(benchmark::State& s) { prefill<pol::NormalizedSigmoid>(s); }
void BM_Prefill_ReLU(benchmark::State& s) { prefill<pol::ReLU>(s); }
void BM_Prefill_Gated(benchmark::State& s) {
  prefill<pol::Softmax, modules::SelectableSigmoidGate<float>>(s);
}

}  // namespace

BENCHMARK(BM_Prefill_Softmax)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Prefill_Sigmoid)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Prefill_SigmoidBias)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Prefill_HeadSoftmax)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Prefill_Linear)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Prefill_NormalizedSigmoid)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Prefill_ReLU)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Prefill_Gated)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Qwen05B_Decode)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Qwen05B_Prefill)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

ATTNKIT_BENCHMARK_MAIN();
