// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Prefill of a LLaMA-style Decoder (random weights): 4 layers, hidden 512, 8 query / 2 kv heads
// (head_dim 64), SwiGLU intermediate 1536, vocab 512, 1024 tokens, one benchmark per attention
// LLaMA variant (softmax, sigmoid, sigmoid-bias, head-softmax, linear,
// normalized-sigmoid, relu, headwise-gated softmax), beside BM_PeakFma.
// FLOP/s counts useful FLOPs only: causal attention (QKᵀ and PV over the visible half),
// the projections (q, k, v, o, the gate, the LM head) and the SwiGLU MLP; norms, RoPE,
// activations and residual adds are not counted. tokens/s is the prefill rate.
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
  TensorView<const float, 1> ones(index_t n) {
    vecs.push_back(std::make_unique<Tensor<float, 1>>(Shape<1>{n}, 1.0f));
    return vecs.back()->cview();
  }
};

template <class Policy>
model::Decoder<Policy, float> random_decoder(Weights& w, bool gated) {
  model::Decoder<Policy, float> m;
  model::DecoderConfig& c = m.config;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.num_hidden_layers = layers;
  c.vocab_size = vocab;
  c.head_dim = head_dim;
  c.rms_norm_eps = 1e-5;
  const double s = 1.0 / std::sqrt(double(hidden));
  m.embed_tokens = w.mat(vocab, hidden, 1.0);
  for (index_t l = 0; l < layers; ++l) {
    model::DecoderLayer<Policy, float> layer;
    layer.norm = attnkit::block::RMSNorm(c.rms_norm_eps);
    layer.norm1_weight = w.ones(hidden);
    layer.norm2_weight = w.ones(hidden);
    modules::MultiHeadAttention<Policy, float>& a = layer.attn;
    a.heads = heads;
    a.kv_heads = kv_heads;
    a.head_dim = head_dim;
    a.q_proj.weight = w.mat(heads * head_dim, hidden, s);
    a.k_proj.weight = w.mat(kv_heads * head_dim, hidden, s);
    a.v_proj.weight = w.mat(kv_heads * head_dim, hidden, s);
    a.o_proj.weight = w.mat(hidden, heads * head_dim, s);
    if (gated) a.g_proj = w.mat(heads, hidden, s);  // headwise gate
    a.rope.emplace(head_dim, 10000.0);
    attnkit::block::SwiGLU<float> mlp;
    mlp.gate = w.mat(inter, hidden, s);
    mlp.up = w.mat(inter, hidden, s);
    mlp.down = w.mat(hidden, inter, 1.0 / std::sqrt(double(inter)));
    layer.ffn = mlp;
    m.layers.push_back(std::move(layer));
  }
  m.norm = w.ones(hidden);
  m.lm_head = w.mat(vocab, hidden, s);
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
  const auto m = random_decoder<model::LlamaPolicy<Activation, Gate>>(w, gated);
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

ATTNKIT_BENCHMARK_MAIN();
