// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// einsum against a hand-written loop (small operands: the planning overhead) and against Eigen
// (matmul-shaped and batched attention-shaped contractions), FLOP/s counters.
#include <random>
#include <vector>

#include "attnkit/attnkit.hpp"
#include "attnkit/core/eigen_bridge.hpp"  // Eigen/Core and Eigen::Tensor, read as warnings.hpp says

#include "bench_main.hpp"
#include "flop_count.hpp"

namespace {

using attnkit::index_t;
using attnkit::Tensor;

template <class T, std::size_t R>
Tensor<T, R> random_tensor(const attnkit::Shape<R>& shape) {
  Tensor<T, R> t(shape);
  std::mt19937 g(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& x : t) x = static_cast<T>(u(g));
  return t;
}

void set_counters(benchmark::State& state, double flops) {
  state.counters["FLOP/s"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

// ---- small operands: C[8, 8] = A[8, 8] B[8, 8] -------------------------------------------

// The baseline: the loop one writes by hand for a fixed small matmul (size known at compile
// time, C accumulated in place).
template <index_t n>
[[gnu::noinline]] void hand_matmul(const float* a, const float* b, float* c) {
  for (index_t i = 0; i < n; ++i) {
    for (index_t j = 0; j < n; ++j) c[i * n + j] = 0.0f;
    for (index_t k = 0; k < n; ++k)
      for (index_t j = 0; j < n; ++j) c[i * n + j] += a[i * n + k] * b[k * n + j];
  }
}

void BM_Small_HandLoop(benchmark::State& state) {
  const index_t n = state.range(0);
  auto a = random_tensor<float, 2>({n, n});
  auto b = random_tensor<float, 2>({n, n});
  Tensor<float, 2> c({n, n});
  for (auto _ : state) {
    hand_matmul<8>(a.data(), b.data(), c.data());
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, attnkit::bench::gemm_flops(n, n, n));
}

void BM_Small_EinsumCompileTime(benchmark::State& state) {
  const index_t n = state.range(0);
  auto a = random_tensor<float, 2>({n, n});
  auto b = random_tensor<float, 2>({n, n});
  Tensor<float, 2> c({n, n});
  for (auto _ : state) {
    attnkit::einsum<"ij,jk->ik">(c, a, b);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, attnkit::bench::gemm_flops(n, n, n));
}

void BM_Small_EinsumRuntime(benchmark::State& state) {
  const index_t n = state.range(0);
  auto a = random_tensor<float, 2>({n, n});
  auto b = random_tensor<float, 2>({n, n});
  Tensor<float, 2> c({n, n});
  for (auto _ : state) {
    attnkit::einsum("ij,jk->ik", c, {a, b});
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, attnkit::bench::gemm_flops(n, n, n));
}

void BM_Small_EinsumPlan(benchmark::State& state) {
  const index_t n = state.range(0);
  auto a = random_tensor<float, 2>({n, n});
  auto b = random_tensor<float, 2>({n, n});
  Tensor<float, 2> c({n, n});
  const auto plan = attnkit::EinsumPlan<float>::make("ij,jk->ik", a.shape(), b.shape());
  for (auto _ : state) {
    plan.run(c, {a, b});
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, attnkit::bench::gemm_flops(n, n, n));
}

BENCHMARK(BM_Small_HandLoop)->ArgName("N")->Arg(8);
BENCHMARK(BM_Small_EinsumCompileTime)->ArgName("N")->Arg(8);
BENCHMARK(BM_Small_EinsumRuntime)->ArgName("N")->Arg(8);
BENCHMARK(BM_Small_EinsumPlan)->ArgName("N")->Arg(8);

// ---- matmul-shaped: C[N, N] = A[N, N] B[N, N] ----------------------------------------------

void BM_Matmul_Einsum(benchmark::State& state) {
  const index_t n = state.range(0);
  attnkit::set_threads(static_cast<int>(state.range(1)));
  auto a = random_tensor<float, 2>({n, n});
  auto b = random_tensor<float, 2>({n, n});
  Tensor<float, 2> c({n, n});
  for (auto _ : state) {
    attnkit::einsum<"ij,jk->ik">(c, a, b);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, attnkit::bench::gemm_flops(n, n, n));
}

void BM_Matmul_Eigen(benchmark::State& state) {
  const index_t n = state.range(0);
  Eigen::setNbThreads(static_cast<int>(state.range(1)));
  auto a = random_tensor<float, 2>({n, n});
  auto b = random_tensor<float, 2>({n, n});
  Tensor<float, 2> c({n, n});
  auto ea = attnkit::as_eigen(a.cview());
  auto eb = attnkit::as_eigen(b.cview());
  auto ec = attnkit::as_eigen(c.view());
  for (auto _ : state) {
    ec.noalias() = ea * eb;
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, attnkit::bench::gemm_flops(n, n, n));
}

BENCHMARK(BM_Matmul_Einsum)
    ->ArgNames({"N", "T"})
    ->ArgsProduct({{256, 512, 1024}, {1, 2}})
    ->UseRealTime();
BENCHMARK(BM_Matmul_Eigen)
    ->ArgNames({"N", "T"})
    ->ArgsProduct({{256, 512, 1024}, {1, 2}})
    ->UseRealTime();

// ---- batched attention scores: S[b, h, q, k] = Σ_d Q[b, h, q, d] K[b, h, k, d] --------------

void BM_AttnScores_Einsum(benchmark::State& state) {
  const index_t b = 1, h = state.range(0), n = state.range(1), d = state.range(2);
  attnkit::set_threads(static_cast<int>(state.range(3)));
  auto q = random_tensor<float, 4>({b, h, n, d});
  auto k = random_tensor<float, 4>({b, h, n, d});
  Tensor<float, 4> s({b, h, n, n});
  for (auto _ : state) {
    attnkit::einsum<"bhqd,bhkd->bhqk">(s, q, k);
    benchmark::DoNotOptimize(s.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, b * h * attnkit::bench::gemm_flops(n, n, d));
}

// Eigen: one matrix product per (batch, head) over row-major maps (the practical form; Eigen's
// Tensor contraction has no batch dimensions).
void BM_AttnScores_Eigen(benchmark::State& state) {
  const index_t b = 1, h = state.range(0), n = state.range(1), d = state.range(2);
  Eigen::setNbThreads(static_cast<int>(state.range(3)));
  auto q = random_tensor<float, 4>({b, h, n, d});
  auto k = random_tensor<float, 4>({b, h, n, d});
  Tensor<float, 4> s({b, h, n, n});
  for (auto _ : state) {
    for (index_t g = 0; g < b * h; ++g) {
      Eigen::Map<const attnkit::EigenRowMatrix<float>> eq(q.data() + g * n * d, n, d);
      Eigen::Map<const attnkit::EigenRowMatrix<float>> ek(k.data() + g * n * d, n, d);
      Eigen::Map<attnkit::EigenRowMatrix<float>> es(s.data() + g * n * n, n, n);
      es.noalias() = eq * ek.transpose();
    }
    benchmark::DoNotOptimize(s.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, b * h * attnkit::bench::gemm_flops(n, n, d));
}

// Eigen::Tensor contraction per head (contract over d).
void BM_AttnScores_EigenTensor(benchmark::State& state) {
  const index_t b = 1, h = state.range(0), n = state.range(1), d = state.range(2);
  auto q = random_tensor<float, 4>({b, h, n, d});
  auto k = random_tensor<float, 4>({b, h, n, d});
  Tensor<float, 4> s({b, h, n, n});
  using Map2 = Eigen::TensorMap<Eigen::Tensor<const float, 2, Eigen::RowMajor, index_t>>;
  using Out2 = Eigen::TensorMap<Eigen::Tensor<float, 2, Eigen::RowMajor, index_t>>;
  const Eigen::array<Eigen::IndexPair<index_t>, 1> dims{Eigen::IndexPair<index_t>(1, 1)};
  for (auto _ : state) {
    for (index_t g = 0; g < b * h; ++g) {
      Map2 eq(q.data() + g * n * d, n, d);
      Map2 ek(k.data() + g * n * d, n, d);
      Out2 es(s.data() + g * n * n, n, n);
      es = eq.contract(ek, dims);
    }
    benchmark::DoNotOptimize(s.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, b * h * attnkit::bench::gemm_flops(n, n, d));
}

BENCHMARK(BM_AttnScores_Einsum)
    ->ArgNames({"H", "N", "D", "T"})
    ->ArgsProduct({{8}, {512, 1024}, {64, 128}, {1, 2}})
    ->UseRealTime();
BENCHMARK(BM_AttnScores_Eigen)
    ->ArgNames({"H", "N", "D", "T"})
    ->ArgsProduct({{8}, {512, 1024}, {64, 128}, {1, 2}})
    ->UseRealTime();
BENCHMARK(BM_AttnScores_EigenTensor)
    ->ArgNames({"H", "N", "D"})
    ->ArgsProduct({{8}, {512, 1024}, {64, 128}})
    ->UseRealTime();

}  // namespace

ATTNKIT_BENCHMARK_MAIN();
