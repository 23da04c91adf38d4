// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The fused attention kernel: every activation x {none, causal, sliding 256, sinks 4+252}
// beside the softmax baseline of the same shape, user-defined activations beside their built-in
// twins (user_relu vs relu, user_sigmoid vs sigmoid), two unfused baselines (a naive loop; and
// S = QKᵀ -> row softmax -> PV on kernel::gemm with the N² buffer), the decode path, and the
// backward pass: attention_backward against an unfused GEMM backward (S, P, dP, dS materialized,
// five kernel::gemm products), and forward + backward together (compare with BM_PeakFma).
// Args: H (query heads), Hkv, N, D, threads. B = 1.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "attnkit/attention/attention.hpp"
#include "attnkit/attention/backward.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/kernel/gemm.hpp"
#include "attnkit/simd/fast_math.hpp"
#include "attnkit/simd/rows.hpp"

#include "bench_main.hpp"
#include "flop_count.hpp"

namespace {

using namespace attnkit;
namespace pol = attnkit::policy;

struct Inputs {
  Tensor<float, 4> q, k, v, out;
  Inputs(index_t hq, index_t hkv, index_t nq, index_t nk, index_t d)
      : q({1, hq, nq, d}), k({1, hkv, nk, d}), v({1, hkv, nk, d}), out({1, hq, nq, d}) {
    std::mt19937 g(1);
    std::normal_distribution<float> n(0.0f, 1.0f);
    for (auto& x : q) x = n(g);
    for (auto& x : k) x = n(g);
    for (auto& x : v) x = n(g);
  }
};

/// Fraction of (i, j) pairs a mask keeps for an N x N causal-aligned problem.
// User-defined activations written on the policy hooks outside the library, each beside the
// built-in that computes the same thing: the kernel runs them on the same code path.
/// ReLU as a user writes it.
struct UserReLU {
  static constexpr auto normalization = pol::Normalization::none;
  double map(double s) const noexcept { return s > 0 ? s : 0.0; }
  double derivative(double s) const noexcept { return s > 0 ? 1.0 : 0.0; }
  template <class T, class A>
  xsimd::batch<T, A> simd_map(const xsimd::batch<T, A>& s) const noexcept {
    return xsimd::max(s, xsimd::batch<T, A>(T(0)));
  }
  UserReLU bind(const pol::Geometry&) const noexcept { return *this; }
};
/// Sigmoid as a user writes it, on attnkit's fast SIMD sigmoid.
struct UserSigmoid {
  static constexpr auto normalization = pol::Normalization::none;
  double map(double s) const noexcept { return 1.0 / (1.0 + std::exp(-s)); }
  double derivative(double s) const noexcept { return map(s) * (1.0 - map(s)); }
  template <class T, class A>
  xsimd::batch<T, A> simd_map(const xsimd::batch<T, A>& s) const noexcept {
    return simd::sigmoid_batch<A, T>(s, xsimd::batch<T, A>(T(0)));
  }
  UserSigmoid bind(const pol::Geometry&) const noexcept { return *this; }
};

template <class Mask>
double visible_fraction(const Mask& m, index_t n) {
  if (n > 8192) return 1.0;
  double vis = 0;
  for (index_t i = 0; i < n; i += 7)
    for (index_t j = 0; j < n; ++j) vis += m.visible(0, 0, i, j) ? 1 : 0;
  return vis / (double((n + 6) / 7) * double(n));
}

template <class Act, class Mask>
void BM_Attention(benchmark::State& state, Act act, Mask mask) {
  const index_t hq = state.range(0), hkv = state.range(1), n = state.range(2), d = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  set_threads(threads);
  Inputs in(hq, hkv, n, n, d);
  const pol::AttentionPolicy<Act, Mask> policy(act, mask);
  for (auto _ : state) {
    attention(policy, in.q.cview(), in.k.cview(), in.v.cview(), in.out.view());
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  const double flops = bench::attention_flops(1, double(hq), double(n), double(n), double(d),
                                              double(d), visible_fraction(mask, n));
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

/// Unfused: per head S = scale · Q Kᵀ (N² buffer) -> masked row softmax -> O = P V, on
/// kernel::gemm.
void BM_AttentionUnfusedGemm(benchmark::State& state, bool causal) {
  const index_t hq = state.range(0), hkv = state.range(1), n = state.range(2), d = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  set_threads(threads);
  Inputs in(hq, hkv, n, n, d);
  std::vector<float> s(static_cast<std::size_t>(n * n));
  const float scale = 1.0f / std::sqrt(float(d));
  for (auto _ : state) {
    for (index_t h = 0; h < hq; ++h) {
      const float* q = in.q.data() + h * n * d;
      const float* k = in.k.data() + (h / (hq / hkv)) * n * d;
      const float* v = in.v.data() + (h / (hq / hkv)) * n * d;
      float* o = in.out.data() + h * n * d;
      kernel::gemm<float>(n, n, d, scale, {q, d, 1}, {k, 1, d}, 0.0f, {s.data(), n, 1});
      for (index_t i = 0; i < n; ++i) {
        float* row = s.data() + i * n;
        const index_t len = causal ? i + 1 : n;
        float m = row[0];
        for (index_t j = 1; j < len; ++j) m = std::max(m, row[j]);
        const float sum = simd::exp_shift_sum(row, m, len);
        const float inv = 1.0f / sum;
        for (index_t j = 0; j < len; ++j) row[j] *= inv;
        for (index_t j = len; j < n; ++j) row[j] = 0.0f;
      }
      kernel::gemm<float>(n, d, n, 1.0f, {s.data(), n, 1}, {v, d, 1}, 0.0f, {o, d, 1});
    }
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
  }
  const double flops = bench::attention_flops(1, double(hq), double(n), double(n), double(d),
                                              double(d), causal ? 0.5 : 1.0);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

/// Unfused naive loops (the textbook three passes per row), one thread.
void BM_AttentionNaive(benchmark::State& state, bool causal) {
  const index_t hq = state.range(0), hkv = state.range(1), n = state.range(2), d = state.range(3);
  Inputs in(hq, hkv, n, n, d);
  std::vector<float> s(static_cast<std::size_t>(n));
  const float scale = 1.0f / std::sqrt(float(d));
  for (auto _ : state) {
    for (index_t h = 0; h < hq; ++h)
      for (index_t i = 0; i < n; ++i) {
        const index_t len = causal ? i + 1 : n;
        float m = -INFINITY;
        for (index_t j = 0; j < len; ++j) {
          float a = 0;
          for (index_t c = 0; c < d; ++c) a += in.q(0, h, i, c) * in.k(0, h / (hq / hkv), j, c);
          s[std::size_t(j)] = a * scale;
          m = std::max(m, s[std::size_t(j)]);
        }
        float sum = 0;
        for (index_t j = 0; j < len; ++j)
          sum += (s[std::size_t(j)] = std::exp(s[std::size_t(j)] - m));
        for (index_t c = 0; c < d; ++c) {
          float a = 0;
          for (index_t j = 0; j < len; ++j) a += s[std::size_t(j)] * in.v(0, h / (hq / hkv), j, c);
          in.out(0, h, i, c) = a / sum;
        }
      }
    benchmark::DoNotOptimize(in.out.data());
  }
  const double flops = bench::attention_flops(1, double(hq), double(n), double(n), double(d),
                                              double(d), causal ? 0.5 : 1.0);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

/// Decode: 1 query row per head, Nk cached keys; bytes/s counts K, V (and q, out) once; of_dram
/// compares it with a streaming read between the calls (bench::DramWindow; every 4th call then
/// starts with K and V out of the cache, as in a model whose other layers ran in between).
template <class Act>
void BM_AttentionDecode(benchmark::State& state, Act act) {
  const index_t hq = state.range(0), hkv = state.range(1), nk = state.range(2), d = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  set_threads(threads);
  Inputs in(hq, hkv, 1, nk, d);
  const pol::AttentionPolicy<Act, pol::Causal> policy(act, pol::Causal{});
  bench::DramWindow window(threads);
  for (auto _ : state) {
    window.time(
        [&] { attention(policy, in.q.cview(), in.k.cview(), in.v.cview(), in.out.view()); });
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
    window.tick(state);
  }
  const double bytes =
      bench::attention_bytes(1, double(hq), double(hkv), 1, double(nk), double(d), double(d), 4);
  state.SetBytesProcessed(static_cast<int64_t>(double(state.iterations()) * bytes));
  window.report(state, bytes);
  state.counters["FLOP/s"] =
      benchmark::Counter(bench::attention_flops(1, double(hq), 1, double(nk), double(d), double(d)),
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

/// Decode over 16-bit K and V (bf16, f16) with float q and out; bytes/s counts K and V at 2
/// bytes and q, out at 4, each once.
template <class KV>
void BM_AttentionDecodeHalf(benchmark::State& state) {
  const index_t hq = state.range(0), hkv = state.range(1), nk = state.range(2), d = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  set_threads(threads);
  Inputs in(hq, hkv, 1, nk, d);
  Tensor<KV, 4> k(in.k.shape()), v(in.v.shape());
  for (index_t n = 0; n < k.size(); ++n) k.data()[n] = KV::from_float(in.k.data()[n]);
  for (index_t n = 0; n < v.size(); ++n) v.data()[n] = KV::from_float(in.v.data()[n]);
  const pol::AttentionPolicy<pol::Softmax, pol::Causal> policy;
  bench::DramWindow window(threads);
  for (auto _ : state) {
    window.time([&] { attention(policy, in.q.cview(), k.cview(), v.cview(), in.out.view()); });
    benchmark::DoNotOptimize(in.out.data());
    benchmark::ClobberMemory();
    window.tick(state);
  }
  const double kv_bytes = 2.0 * double(hkv) * double(nk) * double(2 * d);
  const double qo_bytes = 4.0 * double(hq) * double(2 * d);
  state.SetBytesProcessed(static_cast<int64_t>(double(state.iterations()) * (kv_bytes + qo_bytes)));
  window.report(state, kv_bytes + qo_bytes);
  state.counters["FLOP/s"] =
      benchmark::Counter(bench::attention_flops(1, double(hq), 1, double(nk), double(d), double(d)),
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

/// The backward pass's useful FLOPs: S, dP, dV, dK, dQ, five products of 2·N·N·D each, halved
/// for causal (the forward's two are bench::attention_flops).
double backward_flops(double hq, double n, double d, bool causal) {
  return 5.0 * 2.0 * hq * n * n * d * (causal ? 0.5 : 1.0);
}

/// Gradients in, gradients out: q, k, v with out, the row state (log-sum-exp) and dout.
struct GradInputs : Inputs {
  Tensor<float, 4> dout, dq, dk, dv;
  Tensor<float, 3> lse;
  GradInputs(index_t hq, index_t hkv, index_t n, index_t d)
      : Inputs(hq, hkv, n, n, d),
        dout(out.shape()),
        dq(q.shape()),
        dk(k.shape()),
        dv(v.shape()),
        lse({1, hq, n}) {
    std::mt19937 g(2);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto& x : dout) x = nd(g);
  }
};

/// attention_backward (softmax), or with `forward` the forward (attention_partial) and the
/// backward per iteration.
template <class Mask>
void BM_AttentionBackward(benchmark::State& state, Mask mask, bool forward) {
  const index_t hq = state.range(0), hkv = state.range(1), n = state.range(2), d = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  set_threads(threads);
  GradInputs in(hq, hkv, n, d);
  const pol::AttentionPolicy<pol::Softmax, Mask> policy(pol::Softmax{}, mask);
  attention_partial(policy, in.q.cview(), in.k.cview(), in.v.cview(), in.out.view(), in.lse.view());
  for (auto _ : state) {
    if (forward)
      attention_partial(policy, in.q.cview(), in.k.cview(), in.v.cview(), in.out.view(),
                        in.lse.view());
    attention_backward(policy, in.q.cview(), in.k.cview(), in.v.cview(), in.out.cview(),
                       in.lse.cview(), in.dout.cview(), in.dq.view(), in.dk.view(), in.dv.view());
    benchmark::DoNotOptimize(in.dq.data());
    benchmark::ClobberMemory();
  }
  const bool causal = std::is_same_v<Mask, pol::Causal>;
  double flops = backward_flops(double(hq), double(n), double(d), causal);
  if (forward)
    flops += bench::attention_flops(1, double(hq), double(n), double(n), double(d), double(d),
                                    causal ? 0.5 : 1.0);
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

/// The unfused backward baseline, per head on kernel::gemm: S = scale Q Kᵀ and P (the masked row
/// softmax from the forward's log-sum-exp) materialized, dV = Pᵀ dO, dP = dO Vᵀ,
/// dS = P (dP - D) scale, dQ = dS K, dK = dSᵀ Q (dense products: the N² buffers are the point).
void BM_AttentionBackwardUnfusedGemm(benchmark::State& state, bool causal) {
  const index_t hq = state.range(0), hkv = state.range(1), n = state.range(2), d = state.range(3);
  const int threads = static_cast<int>(state.range(4));
  set_threads(threads);
  GradInputs in(hq, hkv, n, d);
  const float scale = 1.0f / std::sqrt(float(d));
  if (causal) {
    attention_partial(pol::AttentionPolicy<pol::Softmax, pol::Causal>{}, in.q.cview(), in.k.cview(),
                      in.v.cview(), in.out.view(), in.lse.view());
  } else {
    attention_partial(pol::AttentionPolicy<pol::Softmax>{}, in.q.cview(), in.k.cview(),
                      in.v.cview(), in.out.view(), in.lse.view());
  }
  std::vector<float> p(static_cast<std::size_t>(n * n)), dp(p.size()),
      drow(static_cast<std::size_t>(n));
  const index_t group = hq / hkv;
  for (auto _ : state) {
    fill(in.dk.view(), 0.0f);
    fill(in.dv.view(), 0.0f);
    for (index_t h = 0; h < hq; ++h) {
      const float* q = in.q.data() + h * n * d;
      const float* k = in.k.data() + (h / group) * n * d;
      const float* v = in.v.data() + (h / group) * n * d;
      const float* o = in.out.data() + h * n * d;
      const float* dout = in.dout.data() + h * n * d;
      const float* lse = in.lse.data() + h * n;
      float* dq = in.dq.data() + h * n * d;
      float* dk = in.dk.data() + (h / group) * n * d;
      float* dv = in.dv.data() + (h / group) * n * d;
      kernel::gemm<float>(n, n, d, scale, {q, d, 1}, {k, 1, d}, 0.0f, {p.data(), n, 1});
      for (index_t i = 0; i < n; ++i) {
        float* row = p.data() + i * n;
        const index_t len = causal ? i + 1 : n;
        simd::exp_shift_sum(row, lse[i], len);  // row[j] = exp(row[j] - lse_i)
        for (index_t j = len; j < n; ++j) row[j] = 0.0f;
        float s = 0;
        for (index_t c = 0; c < d; ++c) s += dout[i * d + c] * o[i * d + c];
        drow[static_cast<std::size_t>(i)] = s;
      }
      kernel::gemm<float>(n, d, n, 1.0f, {p.data(), 1, n}, {dout, d, 1}, 1.0f, {dv, d, 1});
      kernel::gemm<float>(n, n, d, 1.0f, {dout, d, 1}, {v, 1, d}, 0.0f, {dp.data(), n, 1});
      for (index_t i = 0; i < n; ++i)
        for (index_t j = 0; j < n; ++j) {
          const std::size_t e = static_cast<std::size_t>(i * n + j);
          dp[e] = p[e] * (dp[e] - drow[static_cast<std::size_t>(i)]) * scale;
        }
      kernel::gemm<float>(n, d, n, 1.0f, {dp.data(), n, 1}, {k, d, 1}, 0.0f, {dq, d, 1});
      kernel::gemm<float>(n, d, n, 1.0f, {dp.data(), 1, n}, {q, d, 1}, 1.0f, {dk, d, 1});
    }
    benchmark::DoNotOptimize(in.dq.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP/s"] =
      benchmark::Counter(backward_flops(double(hq), double(n), double(d), causal),
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

void backward_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"H", "Hkv", "N", "D", "threads"});
  for (index_t n : {512, 2048})
    for (int t : {1, 2}) b->Args({8, 8, n, 128, t});
  b->Args({32, 8, 2048, 128, 2});
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

void prefill_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"H", "Hkv", "N", "D", "threads"});
  for (index_t d : {64, 128})
    for (index_t n : {512, 1024, 2048, 4096, 8192})
      for (int t : {1, 2}) {
        b->Args({8, 8, n, d, t});
        b->Args({32, 8, n, d, t});
      }
  b->UseRealTime()->Unit(benchmark::kMillisecond);
}

template <class Act>
void register_activation(const std::string& name, Act act) {
  benchmark::RegisterBenchmark(("BM_Attention_" + name + "_none").c_str(),
                               [act](benchmark::State& s) { BM_Attention(s, act, pol::NoMask{}); })
      ->Apply(prefill_args);
  benchmark::RegisterBenchmark(("BM_Attention_" + name + "_causal").c_str(),
                               [act](benchmark::State& s) { BM_Attention(s, act, pol::Causal{}); })
      ->Apply(prefill_args);
  benchmark::RegisterBenchmark(
      ("BM_Attention_" + name + "_sliding256").c_str(),
      [act](benchmark::State& s) { BM_Attention(s, act, pol::SlidingWindow(256)); })
      ->Apply(prefill_args);
  benchmark::RegisterBenchmark(
      ("BM_Attention_" + name + "_sinks4w252").c_str(),
      [act](benchmark::State& s) { BM_Attention(s, act, pol::Sinks(4, 252)); })
      ->Apply(prefill_args);
  benchmark::RegisterBenchmark(("BM_AttentionDecode_" + name).c_str(),
                               [act](benchmark::State& s) { BM_AttentionDecode(s, act); })
      ->ArgNames({"H", "Hkv", "Nk", "D", "threads"})
      ->ArgsProduct({{32}, {8}, {1024, 4096, 32768}, {128}, {1, 2}})
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

const bool registered = [] {
  register_activation("softmax", pol::Softmax{});
  register_activation("sigmoid", pol::Sigmoid{});
  register_activation("sigmoid_bias", pol::SigmoidBias{});
  register_activation("normalized_sigmoid", pol::NormalizedSigmoid{});
  register_activation("head_softmax", pol::HeadSoftmax{});
  register_activation("linear", pol::Linear{});
  register_activation("relu", pol::ReLU{});
  register_activation("softcap", pol::Softcap(50.0));
  register_activation("user_relu", UserReLU{});        // vs relu
  register_activation("user_sigmoid", UserSigmoid{});  // vs sigmoid
  for (const char* kv : {"bf16", "f16"})
    benchmark::RegisterBenchmark(
        (std::string("BM_AttentionDecode_softmax_") + kv).c_str(),
        std::string(kv) == "bf16" ? BM_AttentionDecodeHalf<bf16> : BM_AttentionDecodeHalf<f16>)
        ->ArgNames({"H", "Hkv", "Nk", "D", "threads"})
        ->ArgsProduct({{32}, {8}, {1024, 4096, 32768}, {128}, {1, 2}})
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("BM_AttentionBackward_softmax_causal", [](benchmark::State& s) {
    BM_AttentionBackward(s, pol::Causal{}, false);
  })->Apply(backward_args);
  benchmark::RegisterBenchmark("BM_AttentionBackward_softmax_none", [](benchmark::State& s) {
    BM_AttentionBackward(s, pol::NoMask{}, false);
  })->Apply(backward_args);
  benchmark::RegisterBenchmark(
      "BM_AttentionForwardBackward_softmax_causal",
      [](benchmark::State& s) { BM_AttentionBackward(s, pol::Causal{}, true); })
      ->Apply(backward_args);
  for (bool causal : {false, true})
    benchmark::RegisterBenchmark(
        (std::string("BM_AttentionBackwardUnfusedGemm_softmax") + (causal ? "_causal" : "_none"))
            .c_str(),
        [causal](benchmark::State& s) { BM_AttentionBackwardUnfusedGemm(s, causal); })
        ->Apply(backward_args);
  for (bool causal : {false, true}) {
    const std::string m = causal ? "_causal" : "_none";
    benchmark::RegisterBenchmark(
        ("BM_AttentionUnfusedGemm_softmax" + m).c_str(),
        [causal](benchmark::State& s) { BM_AttentionUnfusedGemm(s, causal); })
        ->Apply(prefill_args);
    benchmark::RegisterBenchmark(("BM_AttentionNaive_softmax" + m).c_str(),
                                 [causal](benchmark::State& s) { BM_AttentionNaive(s, causal); })
        ->ArgNames({"H", "Hkv", "N", "D", "threads"})
        ->ArgsProduct({{8}, {8}, {512, 1024}, {64, 128}, {1}})
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace

ATTNKIT_BENCHMARK_MAIN();
