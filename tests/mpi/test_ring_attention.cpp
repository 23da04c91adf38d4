// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// attnkit::mpi::ring_attention under mpirun (ctest runs it with 1, 2, 3 and 4 ranks): on every
// rank, the rows it holds equal attention() over the whole sequence, for the zigzag, contiguous
// and random uneven layouts (several runs per rank, empty ranks), every normalization kind, the
// masks that are functions of positions, GQA and MQA, float and double; the skipped blocks and
// sends are the ones the layout makes unnecessary; bad input throws on every rank.
#define CATCH_CONFIG_RUNNER
#include <algorithm>
#include <cmath>
#include <mpi.h>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "attnkit/attnkit.hpp"
#include "attnkit/mpi/ring_attention.hpp"

using namespace attnkit;
namespace pol = attnkit::policy;
using attnkit::mpi::Run;

namespace {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

struct Problem {
  index_t b, hq, hkv, n, d, dv;
};

enum class Layout { zigzag, contiguous, random };

/// This rank's runs; `random` cuts [0, n) at 2P random points and deals the pieces to random
/// ranks (the same on every rank: one seed), so ranks get several runs, in any order, or none.
std::vector<Run> layout_runs(Layout l, index_t n, unsigned seed) {
  const int rank = world_rank(), ranks = world_size();
  if (l == Layout::zigzag) return mpi::zigzag_runs(n, rank, ranks);
  if (l == Layout::contiguous) return mpi::contiguous_runs(n, rank, ranks);
  std::mt19937 g(seed);
  std::vector<index_t> cuts{0, n};
  for (int c = 0; c < 2 * ranks; ++c) cuts.push_back(static_cast<index_t>(g() % (n + 1)));
  std::sort(cuts.begin(), cuts.end());
  std::vector<Run> mine;
  for (std::size_t p = 0; p + 1 < cuts.size(); ++p) {
    const int owner = static_cast<int>(g() % unsigned(ranks));
    if (owner == rank) mine.push_back({cuts[p], cuts[p + 1] - cuts[p]});
  }
  std::shuffle(mine.begin(), mine.end(), g);
  return mine;
}

template <class T>
Tensor<T, 4> random_tensor(const Shape<4>& s, unsigned seed) {
  Tensor<T, 4> t(s);
  std::mt19937 g(seed);
  std::normal_distribution<double> n01;
  for (T& x : t) x = static_cast<T>(n01(g));
  return t;
}

const char* layout_name(Layout l) {
  return l == Layout::zigzag ? "zigzag" : l == Layout::contiguous ? "contiguous" : "random";
}

/// Runs ring_attention on this rank's rows and compares them with attention() over the whole
/// sequence; returns the call's stats.
template <class T, class Policy>
mpi::RingStats check_ring(const Policy& policy, const Problem& p, Layout layout, unsigned seed,
                          const mpi::RingOptions& opts = {}) {
  const Tensor<T, 4> q = random_tensor<T>({p.b, p.hq, p.n, p.d}, seed);
  const Tensor<T, 4> k = random_tensor<T>({p.b, p.hkv, p.n, p.d}, seed + 1);
  const Tensor<T, 4> v = random_tensor<T>({p.b, p.hkv, p.n, p.dv}, seed + 2);
  Tensor<T, 4> whole({p.b, p.hq, p.n, p.dv});
  AttentionOptions aopts;
  aopts.scale = opts.scale;
  attention(policy, q.cview(), k.cview(), v.cview(), whole.view(), aopts);

  const std::vector<Run> runs = layout_runs(layout, p.n, seed + 3);
  const auto ql = mpi::take_rows(q.cview(), runs);
  const auto kl = mpi::take_rows(k.cview(), runs);
  const auto vl = mpi::take_rows(v.cview(), runs);
  Tensor<T, 4> out({p.b, p.hq, mpi::run_length(runs), p.dv}, T(123));
  const mpi::RingStats stats = mpi::ring_attention(policy, ql.cview(), kl.cview(), vl.cview(),
                                                   out.view(), runs, MPI_COMM_WORLD, opts);
  const double tol = std::is_same_v<T, float> ? 2e-5 : 1e-12;
  long bad = 0;
  std::string first;
  index_t row = 0;
  for (const Run& r : runs) {
    for (index_t b = 0; b < p.b; ++b)
      for (index_t h = 0; h < p.hq; ++h)
        for (index_t i = 0; i < r.count; ++i)
          for (index_t c = 0; c < p.dv; ++c) {
            const double got = double(out(b, h, row + i, c));
            const double want = double(whole(b, h, r.first + i, c));
            if (!(std::abs(got - want) <= tol * (1 + std::abs(want))) && bad++ == 0)
              first = "row " + std::to_string(r.first + i) + " head " + std::to_string(h) + ": " +
                      std::to_string(got) + ", attention() " + std::to_string(want);
          }
    row += r.count;
  }
  INFO("rank " << world_rank() << " of " << world_size() << ", layout " << layout_name(layout)
               << ", n = " << p.n << ", Hq/Hkv = " << p.hq << "/" << p.hkv << ", first: " << first);
  CHECK(bad == 0);
  return stats;
}

/// check_ring over the three layouts and a few awkward lengths.
template <class T, class Policy>
void check_layouts(const Policy& policy, Problem p, unsigned seed) {
  for (index_t n : {index_t(1), index_t(7), index_t(67), index_t(130)}) {
    p.n = n;
    for (Layout l : {Layout::zigzag, Layout::contiguous, Layout::random})
      check_ring<T>(policy, p, l, seed + unsigned(n) * 7 + unsigned(l));
  }
}

}  // namespace

TEST_CASE("ring attention equals attention() over the whole sequence: causal softmax", "[mpi]") {
  check_layouts<float>(pol::AttentionPolicy(pol::Softmax{}, pol::Causal{}), {2, 8, 2, 0, 32, 16},
                       10);
  check_layouts<double>(pol::AttentionPolicy(pol::Softmax{}, pol::CausalTopLeft{}),
                        {1, 4, 4, 0, 16, 24}, 20);
}

TEST_CASE("ring attention: every normalization kind, masks of positions, score mods and gates",
          "[mpi]") {
  const Problem p{1, 4, 2, 0, 16, 16};
  // none: sigmoid with b = -ln N of the whole sequence, under a sliding window.
  check_layouts<float>(pol::AttentionPolicy(pol::SigmoidBias{}, pol::SlidingWindow(9)), p, 30);
  // none: relu, local window, MQA.
  check_layouts<double>(pol::AttentionPolicy(pol::ReLU{}, pol::LocalWindow(5)), {2, 3, 1, 0, 8, 8},
                        40);
  // over_keys_exp with a non-trivial map: normalized sigmoid under attention sinks.
  check_layouts<float>(pol::AttentionPolicy(pol::NormalizedSigmoid(0.5), pol::Sinks(2, 6)), p, 50);
  // over_heads: head softmax under prefix-LM.
  check_layouts<float>(pol::AttentionPolicy(pol::HeadSoftmax{}, pol::PrefixLM(5)), p, 60);
  // Sink logits, ALiBi and a per-row gate: state, score mod and gate see global positions.
  const std::vector<double> z{1.5, -0.5, 0.0, 3.0};
  for (index_t n : {index_t(5), index_t(70)}) {
    Tensor<float, 3> gate = [&] {
      Tensor<float, 3> g({1, 4, n});
      std::mt19937 r(7);
      std::normal_distribution<float> n01;
      for (float& x : g) x = n01(r);
      return g;
    }();
    const auto policy =
        pol::AttentionPolicy(pol::SinkLogits(pol::Softmax{}, z), pol::Causal{},
                             pol::ALiBi::standard(4), pol::HeadwiseSigmoid(gate.cview()));
    for (Layout l : {Layout::zigzag, Layout::random})
      check_ring<float>(policy, {1, 4, 2, n, 16, 16}, l, 70 + unsigned(n));
  }
  // A document mask (segment ids per position) with sink logits and a sliding window.
  for (index_t n : {index_t(9), index_t(100)}) {
    Tensor<index_t, 2> seg({2, n});
    for (index_t b = 0; b < 2; ++b)
      for (index_t j = 0; j < n; ++j) seg(b, j) = (j + 3 * b) / 11;
    const auto policy =
        pol::AttentionPolicy(pol::SinkLogits(pol::Softmax{}, z),
                             pol::And(pol::Document(seg.cview()), pol::SlidingWindow(40)));
    for (Layout l : {Layout::zigzag, Layout::contiguous, Layout::random})
      check_ring<float>(policy, {2, 4, 4, n, 8, 8}, l, 80 + unsigned(n));
  }
}

TEST_CASE("ring attention skips the blocks and sends the mask makes unnecessary", "[mpi]") {
  const int rank = world_rank(), ranks = world_size();
  const auto causal = pol::AttentionPolicy(pol::Softmax{}, pol::Causal{});
  const Problem p{1, 4, 2, 96, 16, 16};
  // Contiguous and causal: rank r needs the keys of ranks <= r only. So rank r receives the
  // blocks of ranks r - 1, ..., 0 and forwards its own and those (r + 1 sends); the last rank
  // forwards none of the ranks - 1 blocks it holds before the last step, and no block of a rank
  // after r ever reaches r.
  const mpi::RingStats s = check_ring<float>(causal, p, Layout::contiguous, 90);
  CHECK(s.blocks_computed == rank + 1);
  CHECK(s.blocks_skipped == 0);  // blocks that never arrive are not counted
  CHECK(s.sends == (rank == ranks - 1 ? 0 : rank + 1));
  CHECK(s.sends_skipped == (rank == ranks - 1 ? ranks - 1 : 0));
  CHECK(s.bytes_sent == std::int64_t(s.sends) * 2 * 2 * (96 / ranks + (rank < 96 % ranks)) * 16 *
                            std::int64_t(sizeof(float)));
  // Without skipping, every block is computed (and the result is the same).
  mpi::RingOptions all;
  all.skip_empty = false;
  const mpi::RingStats s2 = check_ring<float>(causal, p, Layout::contiguous, 90, all);
  CHECK(s2.blocks_computed == ranks);
  CHECK(s2.sends_skipped == 0);
  // Zigzag: every rank needs a part of every block.
  const mpi::RingStats z = check_ring<float>(causal, p, Layout::zigzag, 91);
  CHECK(z.blocks_computed + z.blocks_skipped == 4 * ranks);
  CHECK(z.sends == (ranks > 1 ? ranks - 1 : 0));
  // A sliding window shorter than a slice: only neighbours' keys are needed.
  if (ranks >= 3) {
    const auto window = pol::AttentionPolicy(pol::Softmax{}, pol::SlidingWindow(4));
    const mpi::RingStats w = check_ring<float>(window, p, Layout::contiguous, 92);
    CHECK(w.blocks_computed == (rank == 0 ? 1 : 2));
    CHECK(w.sends <= 1);
  }
}

TEST_CASE("ring attention rejects bad input on every rank", "[mpi]") {
  const int rank = world_rank(), ranks = world_size();
  const auto softmax = pol::AttentionPolicy(pol::Softmax{}, pol::Causal{});
  const index_t m = 6;
  Tensor<float, 4> q({1, 2, m, 8}), k({1, 2, m, 8}), v({1, 2, m, 8}), out({1, 2, m, 8});
  // Positions that leave a gap (nobody holds position 0).
  std::vector<Run> shifted{{1 + rank * m, m}};
  CHECK_THROWS_WITH(mpi::ring_attention(softmax, q.cview(), k.cview(), v.cview(), out.view(),
                                        shifted, MPI_COMM_WORLD),
                    Catch::Contains("no rank holds position 0"));
  if (ranks > 1) {
    // Every rank claims [0, m): overlapping runs.
    std::vector<Run> same{{0, m}};
    CHECK_THROWS_WITH(mpi::ring_attention(softmax, q.cview(), k.cview(), v.cview(), out.view(),
                                          same, MPI_COMM_WORLD),
                      Catch::Contains("overlaps"));
  }
  // Rank 0's rows do not match its positions: rank 0 names the problem, the others name rank 0.
  std::vector<Run> mine{{rank * m, rank == 0 ? m - 1 : m}};
  CHECK_THROWS_WITH(mpi::ring_attention(softmax, q.cview(), k.cview(), v.cview(), out.view(), mine,
                                        MPI_COMM_WORLD),
                    Catch::Contains(rank == 0 ? "positions hold 5 positions" : "rank 0 rejected"));
  // A different head dimension on the last rank.
  if (ranks > 1) {
    const index_t d = rank == ranks - 1 ? 4 : 8;
    Tensor<float, 4> q2({1, 2, m, d}), k2({1, 2, m, d});
    std::vector<Run> ok{{rank * m, m}};
    CHECK_THROWS_WITH(mpi::ring_attention(softmax, q2.cview(), k2.cview(), v.cview(), out.view(),
                                          ok, MPI_COMM_WORLD),
                      Catch::Contains("has B, Hq, Hkv, D, Dv"));
  }
  // After the errors the ring still works (no message was left in flight).
  check_ring<float>(softmax, {1, 2, 1, 20, 8, 8}, Layout::zigzag, 95);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  // Rank 0 reports; the others report failures only (mpirun's exit code is any rank's failure).
  Catch::Session session;
  int rc = session.applyCommandLine(argc, argv);
  if (rc == 0) {
    if (world_rank() != 0) session.configData().reporterName = "compact";
    rc = session.run();
  }
  MPI_Finalize();
  return rc;
}
