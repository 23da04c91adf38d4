// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// fp32 GEMM: attnkit's packed GEMM against Eigen and OpenBLAS cblas_sgemm in the same binary,
// on 1 and 2 threads, square sizes 256..2048 and the two attention products
// (QKᵀ: [N, D] × [D, N] with K stored [N, D]; PV: [N, N] × [N, D]), N = 512..4096, D = 64, 128.
//
// Names: BM_Gemm_<Library>_<Shape>/M/N/K/threads. Ratios: compare FLOP/s of the same arguments.
// OpenBLAS: Debian's dynamic-arch build picks its Haswell (AVX2) kernels on Zen 5 unless
// OPENBLAS_CORETYPE=SkylakeX is set before the library loads, so this binary re-executes itself
// with it set when it is missing (the context line "openblas.core" shows the kernels used).
#include <cblas.h>

#include "attnkit/core/warnings.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)
#include <Eigen/Core>
ATTNKIT_SIMD_WARNINGS_POP

#include <cstdlib>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "attnkit/kernel/gemm.hpp"

#include "bench_main.hpp"
#include "flop_count.hpp"

namespace {

using attnkit::index_t;
using attnkit::kernel::MatrixRef;

// Re-executes the process with OPENBLAS_CORETYPE=SkylakeX when the CPU has AVX-512 and the
// variable is unset (OpenBLAS reads it when the shared library loads, before main).
[[maybe_unused]] const bool openblas_coretype_set = [] {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return true;
  if (!attnkit::simd::arch_available<attnkit::simd::avx512>()) return true;
  ::setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
  std::vector<char> path(4096);
  const ssize_t len = ::readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (len <= 0) return false;
  path[static_cast<std::size_t>(len)] = '\0';
  std::string cmdline;
  if (FILE* f = std::fopen("/proc/self/cmdline", "rb")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) cmdline.append(buf, n);
    std::fclose(f);
  }
  std::vector<char*> argv;
  for (std::size_t i = 0; i < cmdline.size(); i += std::string(cmdline.c_str() + i).size() + 1)
    argv.push_back(cmdline.data() + i);
  argv.push_back(nullptr);
  ::execv(path.data(), argv.data());
  return false;  // exec failed: run with the library's default kernels
}();

[[maybe_unused]] const bool openblas_context = [] {
  benchmark::AddCustomContext("openblas.core", openblas_get_corename());
  return true;
}();

enum class Shape { square, qkt, pv };

// Operands of one product C[M, N] = A[M, K] · B[K, N], row-major; for QKᵀ, B is K stored
// [N, K] row-major (B = Kᵀ, a transposed operand).
struct Operands {
  index_t m, n, k;
  bool b_transposed;
  std::vector<float> a, b, c;
  Operands(index_t m_, index_t n_, index_t k_, bool bt) : m(m_), n(n_), k(k_), b_transposed(bt) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> d(-1, 1);
    a.resize(static_cast<std::size_t>(m * k));
    b.resize(static_cast<std::size_t>(k * n));
    c.assign(static_cast<std::size_t>(m * n), 0.0f);
    for (auto& x : a) x = d(rng);
    for (auto& x : b) x = d(rng);
  }
};

Operands make_operands(const benchmark::State& state, Shape shape) {
  const index_t m = state.range(0), n = state.range(1), k = state.range(2);
  return Operands(m, n, k, shape == Shape::qkt);
}

void set_counters(benchmark::State& state, const Operands& o) {
  state.counters["FLOP/s"] =
      benchmark::Counter(attnkit::bench::gemm_flops(double(o.m), double(o.n), double(o.k)),
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = double(state.range(3));
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(sizeof(float)) *
                          int64_t(o.m * o.k + o.k * o.n + o.m * o.n));
}

void bm_attnkit(benchmark::State& state, Shape shape) {
  Operands o = make_operands(state, shape);
  const int threads = static_cast<int>(state.range(3));
  MatrixRef<const float> a{o.a.data(), o.k, 1};
  MatrixRef<const float> b = o.b_transposed ? MatrixRef<const float>{o.b.data(), 1, o.k}
                                            : MatrixRef<const float>{o.b.data(), o.n, 1};
  MatrixRef<float> c{o.c.data(), o.n, 1};
  for (auto _ : state) {
    attnkit::kernel::gemm_with_threads<float>(o.m, o.n, o.k, 1.0f, a, b, 0.0f, c, threads);
    benchmark::DoNotOptimize(o.c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, o);
}

void bm_eigen(benchmark::State& state, Shape shape) {
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Operands o = make_operands(state, shape);
  Eigen::setNbThreads(static_cast<int>(state.range(3)));
  Eigen::Map<const Mat> a(o.a.data(), o.m, o.k);
  Eigen::Map<Mat> c(o.c.data(), o.m, o.n);
  if (o.b_transposed) {
    Eigen::Map<const Mat> kt(o.b.data(), o.n, o.k);
    for (auto _ : state) {
      c.noalias() = a * kt.transpose();
      benchmark::DoNotOptimize(o.c.data());
      benchmark::ClobberMemory();
    }
  } else {
    Eigen::Map<const Mat> b(o.b.data(), o.k, o.n);
    for (auto _ : state) {
      c.noalias() = a * b;
      benchmark::DoNotOptimize(o.c.data());
      benchmark::ClobberMemory();
    }
  }
  Eigen::setNbThreads(0);
  set_counters(state, o);
}

void bm_openblas(benchmark::State& state, Shape shape) {
  Operands o = make_operands(state, shape);
  openblas_set_num_threads(static_cast<int>(state.range(3)));
  const int m = int(o.m), n = int(o.n), k = int(o.k);
  for (auto _ : state) {
    if (o.b_transposed) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, o.a.data(), k, o.b.data(),
                  k, 0.0f, o.c.data(), n);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, o.a.data(), k,
                  o.b.data(), n, 0.0f, o.c.data(), n);
    }
    benchmark::DoNotOptimize(o.c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, o);
}

// Argument lists: {M, N, K, threads}.
void square_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"});
  for (int t : {1, 2})
    for (int s : {256, 512, 1024, 2048}) b->Args({s, s, s, t});
}
void qkt_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"});
  for (int t : {1, 2})
    for (int d : {64, 128})
      for (int n : {512, 1024, 2048, 4096}) b->Args({n, n, d, t});
}
void pv_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "threads"});
  for (int t : {1, 2})
    for (int d : {64, 128})
      for (int n : {512, 1024, 2048, 4096}) b->Args({n, d, n, t});
}

}  // namespace

BENCHMARK_CAPTURE(bm_attnkit, Square, Shape::square)
    ->Name("BM_Gemm_Attnkit_Square")
    ->Apply(square_args)
    ->UseRealTime();
BENCHMARK_CAPTURE(bm_eigen, Square, Shape::square)
    ->Name("BM_Gemm_Eigen_Square")
    ->Apply(square_args)
    ->UseRealTime();
BENCHMARK_CAPTURE(bm_openblas, Square, Shape::square)
    ->Name("BM_Gemm_OpenBLAS_Square")
    ->Apply(square_args)
    ->UseRealTime();
BENCHMARK_CAPTURE(bm_attnkit, QKt, Shape::qkt)
    ->Name("BM_Gemm_Attnkit_QKt")
    ->Apply(qkt_args)
    ->UseRealTime();
BENCHMARK_CAPTURE(bm_eigen, QKt, Shape::qkt)
    ->Name("BM_Gemm_Eigen_QKt")
    ->Apply(qkt_args)
    ->UseRealTime();
BENCHMARK_CAPTURE(bm_openblas, QKt, Shape::qkt)
    ->Name("BM_Gemm_OpenBLAS_QKt")
    ->Apply(qkt_args)
    ->UseRealTime();
BENCHMARK_CAPTURE(bm_attnkit, PV, Shape::pv)
    ->Name("BM_Gemm_Attnkit_PV")
    ->Apply(pv_args)
    ->UseRealTime();
BENCHMARK_CAPTURE(bm_eigen, PV, Shape::pv)->Name("BM_Gemm_Eigen_PV")->Apply(pv_args)->UseRealTime();
BENCHMARK_CAPTURE(bm_openblas, PV, Shape::pv)
    ->Name("BM_Gemm_OpenBLAS_PV")
    ->Apply(pv_args)
    ->UseRealTime();

ATTNKIT_BENCHMARK_MAIN();
