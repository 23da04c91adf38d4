// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Context-parallel prefill over MPI: one long sequence's attention split across the ranks
// mpirun starts (attnkit::mpi::ring_attention, zigzag layout by default). Each rank makes only
// its own rows of Q, K and V (a counter-based generator, so every rank agrees on the whole
// sequence without holding it). After one unreported warm-up call, one JSON line per
// repetition:
//   {"ranks", "threads", "n", "heads", "kv_heads", "d", "mask", "layout", "seconds",
//    "compute_seconds", "comm_seconds", "bytes_sent", "blocks_computed", "blocks_skipped",
//    "single_seconds", "speedup", "max_abs_diff"}
// seconds is the slowest rank's wall time of the call; compute_seconds and comm_seconds the
// slowest rank's time in attention and merging, and waiting for messages. Up to --check-max
// positions, rank 0 also runs attention() over the whole sequence alone (the other ranks sleep
// meanwhile), giving single_seconds, speedup = single_seconds / seconds, and the largest
// |difference| over every rank's rows (gathered to rank 0); above it those three are null. The
// program exits with 1 when that difference exceeds 1e-4.
//
// usage: mpirun -np P 09_ring_attention [--n N] [--heads H] [--kv-heads HKV] [--d D]
//          [--mask causal|none] [--layout zigzag|contiguous] [--reps R] [--threads T]
//          [--check-max M] [--no-skip]
//   defaults: N 16384, H 8, HKV = H, D 128, causal, zigzag, R 3, T 1, M 16384.
// As root, Open MPI needs mpirun --allow-run-as-root (and --oversubscribe for more ranks than
// cores); docs/context_parallel.md shows a run across machines.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mpi.h>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "attnkit/attention/attention.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/mpi/ring_attention.hpp"
#include "attnkit/policy/attention_policy.hpp"

namespace {

using attnkit::index_t;
using attnkit::Shape;
using attnkit::Tensor;
using attnkit::mpi::Run;

struct Args {
  index_t n = 16384, heads = 8, kv_heads = 0, d = 128;
  std::string mask = "causal", layout = "zigzag";
  int reps = 3, threads = 1;
  index_t check_max = 16384;
  bool skip = true;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--no-skip") {
      a.skip = false;
      continue;
    }
    if (i + 1 >= argc) throw std::runtime_error("option " + k + " needs a value");
    const std::string v = argv[++i];
    auto num = [&](long lo) {
      char* end = nullptr;
      const long x = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || x < lo)
        throw std::runtime_error("option " + k + ": '" + v +
                                 "' is not an integer >= " + std::to_string(lo));
      return x;
    };
    if (k == "--n")
      a.n = num(1);
    else if (k == "--heads")
      a.heads = num(1);
    else if (k == "--kv-heads")
      a.kv_heads = num(1);
    else if (k == "--d")
      a.d = num(1);
    else if (k == "--reps")
      a.reps = int(num(1));
    else if (k == "--threads")
      a.threads = int(num(1));
    else if (k == "--check-max")
      a.check_max = num(0);
    else if (k == "--mask" && (v == "causal" || v == "none"))
      a.mask = v;
    else if (k == "--layout" && (v == "zigzag" || v == "contiguous"))
      a.layout = v;
    else
      throw std::runtime_error("unknown option or value: " + k + " " + v);
  }
  if (a.kv_heads == 0) a.kv_heads = a.heads;
  if (a.heads % a.kv_heads != 0)
    throw std::runtime_error("--heads must be a multiple of --kv-heads");
  return a;
}

/// Element (b, h, position, c) of tensor `which`: a hash of its coordinates mapped to [-1, 1),
/// the same on every rank whatever rows it holds.
float element(std::uint64_t which, index_t h, index_t pos, index_t c) {
  std::uint64_t z = which * 0x9E3779B97F4A7C15ULL ^ (std::uint64_t(h) << 48) ^
                    (std::uint64_t(pos) << 16) ^ std::uint64_t(c);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return float(double(z >> 40) / double(1ULL << 23) - 1.0);
}

/// The rows of `runs` of tensor `which` [1, H, N, D].
Tensor<float, 4> make_rows(std::uint64_t which, index_t heads, index_t d,
                           const std::vector<Run>& runs) {
  Tensor<float, 4> t(Shape<4>{1, heads, attnkit::mpi::run_length(runs), d});
  index_t row = 0;
  for (const Run& r : runs) {
    for (index_t h = 0; h < heads; ++h)
      for (index_t i = 0; i < r.count; ++i)
        for (index_t c = 0; c < d; ++c) t(0, h, row + i, c) = element(which, h, r.first + i, c);
    row += r.count;
  }
  return t;
}

double max_over_ranks(double x) {
  double y = 0;
  MPI_Allreduce(&x, &y, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return y;
}
std::int64_t sum_over_ranks(std::int64_t x) {
  std::int64_t y = 0;
  MPI_Allreduce(&x, &y, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  return y;
}

/// Waits for the other ranks without spinning (a busy MPI barrier would take the core rank 0's
/// single-process run is timed on).
void quiet_barrier() {
  MPI_Request r;
  MPI_Ibarrier(MPI_COMM_WORLD, &r);
  for (int done = 0;;) {
    MPI_Test(&r, &done, MPI_STATUS_IGNORE);
    if (done) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

template <class Policy>
int run(const Policy& policy, const Args& a) {
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  const std::vector<Run> runs = a.layout == "zigzag"
                                    ? attnkit::mpi::zigzag_runs(a.n, rank, ranks)
                                    : attnkit::mpi::contiguous_runs(a.n, rank, ranks);
  const auto q = make_rows(1, a.heads, a.d, runs);
  const auto k = make_rows(2, a.kv_heads, a.d, runs);
  const auto v = make_rows(3, a.kv_heads, a.d, runs);
  Tensor<float, 4> out(Shape<4>{1, a.heads, attnkit::mpi::run_length(runs), a.d});
  attnkit::mpi::RingOptions opts;
  opts.skip_empty = a.skip;
  const bool check = a.n <= a.check_max;

  // Rank 0's single-process reference, made once.
  Tensor<float, 4> whole_q, whole_k, whole_v, whole_out;
  if (check && rank == 0) {
    const std::vector<Run> all{{0, a.n}};
    whole_q = make_rows(1, a.heads, a.d, all);
    whole_k = make_rows(2, a.kv_heads, a.d, all);
    whole_v = make_rows(3, a.kv_heads, a.d, all);
    whole_out = Tensor<float, 4>(Shape<4>{1, a.heads, a.n, a.d});
  }
  // One unreported call first: it touches the buffers' pages for the first time.
  attnkit::mpi::ring_attention(policy, q.cview(), k.cview(), v.cview(), out.view(), runs,
                               MPI_COMM_WORLD, opts);
  bool failed = false;
  for (int rep = 0; rep < a.reps; ++rep) {
    MPI_Barrier(MPI_COMM_WORLD);
    const attnkit::mpi::RingStats s = attnkit::mpi::ring_attention(
        policy, q.cview(), k.cview(), v.cview(), out.view(), runs, MPI_COMM_WORLD, opts);
    const double seconds = max_over_ranks(s.seconds);
    const double compute = max_over_ranks(s.compute_seconds);
    const double comm = max_over_ranks(s.comm_seconds);
    const std::int64_t sent = sum_over_ranks(s.bytes_sent);
    const std::int64_t computed = sum_over_ranks(s.blocks_computed);
    const std::int64_t skipped = sum_over_ranks(s.blocks_skipped);

    double single = -1, diff = -1;
    if (check) {
      quiet_barrier();
      if (rank == 0) {
        const auto t0 = std::chrono::steady_clock::now();
        attnkit::attention(policy, whole_q.cview(), whole_k.cview(), whole_v.cview(),
                           whole_out.view());
        single = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      quiet_barrier();
      // Every rank's rows to rank 0, compared there.
      double local = 0;
      if (rank == 0) {
        for (int r = 0; r < ranks; ++r) {
          const std::vector<Run> rr = a.layout == "zigzag"
                                          ? attnkit::mpi::zigzag_runs(a.n, r, ranks)
                                          : attnkit::mpi::contiguous_runs(a.n, r, ranks);
          Tensor<float, 4> got(Shape<4>{1, a.heads, attnkit::mpi::run_length(rr), a.d});
          if (r == 0) {
            got = out;
          } else if (got.size() > 0) {
            MPI_Recv(got.data(), int(got.size()), MPI_FLOAT, r, 7, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
          }
          index_t row = 0;
          for (const Run& run : rr) {
            for (index_t h = 0; h < a.heads; ++h)
              for (index_t i = 0; i < run.count; ++i)
                for (index_t c = 0; c < a.d; ++c)
                  local = std::max(local, double(std::abs(got(0, h, row + i, c) -
                                                          whole_out(0, h, run.first + i, c))));
            row += run.count;
          }
        }
        diff = local;
      } else if (out.size() > 0) {
        MPI_Send(out.data(), int(out.size()), MPI_FLOAT, 0, 7, MPI_COMM_WORLD);
      }
    }
    if (rank == 0) {
      auto num = [](double x) {
        char b[32];
        std::snprintf(b, sizeof b, "%.4g", x);
        return x < 0 ? std::string("null") : std::string(b);
      };
      std::printf(
          "{\"ranks\": %d, \"threads\": %d, \"n\": %ld, \"heads\": %ld, \"kv_heads\": %ld, "
          "\"d\": %ld, \"mask\": \"%s\", \"layout\": \"%s\", \"seconds\": %.4f, "
          "\"compute_seconds\": %.4f, \"comm_seconds\": %.4f, \"bytes_sent\": %lld, "
          "\"blocks_computed\": %lld, \"blocks_skipped\": %lld, \"single_seconds\": %s, "
          "\"speedup\": %s, \"max_abs_diff\": %s}\n",
          ranks, a.threads, long(a.n), long(a.heads), long(a.kv_heads), long(a.d), a.mask.c_str(),
          a.layout.c_str(), seconds, compute, comm, (long long)sent, (long long)computed,
          (long long)skipped, num(single).c_str(), num(single < 0 ? -1 : single / seconds).c_str(),
          num(diff).c_str());
      std::fflush(stdout);
    }
    // fp32 rounding of a different summation order stays far below this.
    if (check && rank == 0 && !(diff <= 1e-4)) {
      std::fprintf(stderr, "09_ring_attention: the ranks' rows differ from one process by %g\n",
                   diff);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rc = 0;
  try {
    const Args a = parse(argc, argv);
    attnkit::set_threads(a.threads);
    namespace pol = attnkit::policy;
    rc = a.mask == "causal" ? run(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), a)
                            : run(pol::AttentionPolicy(pol::Softmax{}), a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "09_ring_attention: %s\n", e.what());
    rc = 1;
  }
  MPI_Finalize();
  return rc;
}
