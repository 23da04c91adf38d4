// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Context-parallel attention over MPI: ring attention (docs/context_parallel.md).
//
// Each rank holds a slice of one sequence (its Q, K and V rows, at global positions given as runs
// of consecutive positions) and passes it to ring_attention(). The K/V blocks travel around the
// ranks' ring with non-blocking sends and receives, posted before each step's computation so the
// transfer overlaps it; every rank computes attention_partial() for each (its query run, the
// visiting key run) block that the mask does not make Empty, and merges the blocks of each query
// run with merge_partials(). The result on every rank equals those rows of attention() over the
// whole sequence, up to rounding. A block that no rank further along the ring needs is not sent.
//
// This header is the optional attnkit::mpi component (CMake target attnkit::mpi, built when MPI
// is found): the rest of attnkit never includes MPI.
#pragma once

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <mpi.h>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attnkit/attention/attention.hpp"
#include "attnkit/core/aligned.hpp"
#include "attnkit/core/error.hpp"
#include "attnkit/core/tensor.hpp"
#include "attnkit/core/tensor_view.hpp"
#include "attnkit/policy/concepts.hpp"

namespace attnkit::mpi {

/// Consecutive positions [first, first + count) of the sequence.
struct Run {
  index_t first = 0;
  index_t count = 0;
  friend bool operator==(const Run&, const Run&) = default;
};

/// The number of positions of `runs`.
inline index_t run_length(std::span<const Run> runs) noexcept {
  index_t n = 0;
  for (const Run& r : runs) n += r.count;
  return n;
}

/// The load-balanced layout for causal masks (the default of docs/context_parallel.md): the n
/// positions cut into 2P chunks whose sizes differ by at most one, rank r holding chunks r and
/// 2P - 1 - r (a front and a back chunk), so every rank sees about the same number of visible
/// (query, key) pairs.
inline std::vector<Run> zigzag_runs(index_t n, int rank, int ranks) {
  if (ranks < 1 || rank < 0 || rank >= ranks || n < 0)
    throw error("attnkit::mpi: zigzag_runs: rank " + std::to_string(rank) + " of " +
                std::to_string(ranks) + " ranks, n = " + std::to_string(n));
  const index_t chunks = 2 * static_cast<index_t>(ranks);
  auto start = [&](index_t c) { return c * (n / chunks) + std::min(c, n % chunks); };
  const index_t a = rank, b = chunks - 1 - rank;
  return {Run{start(a), start(a + 1) - start(a)}, Run{start(b), start(b + 1) - start(b)}};
}

/// The plain layout: rank r holds the r-th of P consecutive slices (sizes differ by at most one).
inline std::vector<Run> contiguous_runs(index_t n, int rank, int ranks) {
  if (ranks < 1 || rank < 0 || rank >= ranks || n < 0)
    throw error("attnkit::mpi: contiguous_runs: rank " + std::to_string(rank) + " of " +
                std::to_string(ranks) + " ranks, n = " + std::to_string(n));
  auto start = [&](index_t r) { return r * (n / ranks) + std::min<index_t>(r, n % ranks); };
  return {Run{start(rank), start(rank + 1) - start(rank)}};
}

/// The rows of `runs` (dimension 2) of a whole-sequence tensor [B, H, N, D], in run order: the
/// slice a rank passes to ring_attention().
template <class T>
Tensor<std::remove_const_t<T>, 4> take_rows(TensorView<T, 4> whole, std::span<const Run> runs) {
  Tensor<std::remove_const_t<T>, 4> out(
      Shape<4>{whole.extent(0), whole.extent(1), run_length(runs), whole.extent(3)});
  index_t row = 0;
  for (const Run& r : runs) {
    if (r.first < 0 || r.count < 0 || r.first + r.count > whole.extent(2))
      throw shape_error("attnkit::mpi: take_rows: the run [" + std::to_string(r.first) + ", " +
                        std::to_string(r.first + r.count) + ") is not in the " +
                        std::to_string(whole.extent(2)) + " rows of " +
                        shape_string(whole.shape()));
    for (index_t b = 0; b < whole.extent(0); ++b)
      for (index_t h = 0; h < whole.extent(1); ++h)
        for (index_t i = 0; i < r.count; ++i)
          for (index_t c = 0; c < whole.extent(3); ++c)
            out(b, h, row + i, c) = whole(b, h, r.first + i, c);
    row += r.count;
  }
  return out;
}

/// Options of ring_attention().
struct RingOptions {
  /// Scores are s = scale · q·k; default 1/sqrt(D).
  std::optional<double> scale;
  /// Skip the blocks the mask makes Empty (and the sends nobody needs). Off: every block is
  /// computed and every K/V block goes around the whole ring (for measuring what skipping saves).
  bool skip_empty = true;
};

/// What one ring_attention() call did on this rank.
struct RingStats {
  double seconds = 0;          ///< the whole call
  double compute_seconds = 0;  ///< attention_partial() and merge_partials()
  /// Waiting for communication: the exchange of the layout and the shapes, and the part of the
  /// K/V transfers that the computation did not hide.
  double comm_seconds = 0;
  std::int64_t bytes_sent = 0;      ///< K/V bytes this rank sent
  std::int64_t bytes_received = 0;  ///< K/V bytes this rank received
  int blocks_computed = 0;          ///< (query run, key run) blocks computed here
  int blocks_skipped = 0;           ///< blocks the mask makes Empty, skipped
  int sends = 0;                    ///< K/V blocks this rank forwarded
  int sends_skipped = 0;            ///< K/V blocks not forwarded: no later rank needs them
};

namespace detail {

template <class T>
MPI_Datatype datatype() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "attnkit::mpi: ring_attention supports float and double tensors");
  return std::is_same_v<T, float> ? MPI_FLOAT : MPI_DOUBLE;
}

inline void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw error(std::string("attnkit::mpi: ") + what + " failed: " + std::string(text, len));
}

/// A communicator of our own for one call, so our tags never meet the caller's messages.
class OwnComm {
 public:
  explicit OwnComm(MPI_Comm c) { check_mpi(MPI_Comm_dup(c, &comm_), "MPI_Comm_dup"); }
  ~OwnComm() { MPI_Comm_free(&comm_); }
  OwnComm(const OwnComm&) = delete;
  OwnComm& operator=(const OwnComm&) = delete;
  MPI_Comm get() const noexcept { return comm_; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

/// Elements per message: large blocks go as several messages (MPI counts are int), at most
/// max_messages for the K or the V of one block.
inline constexpr std::int64_t message_elems = std::int64_t(1) << 28;
inline constexpr int max_messages = 32;

/// The calling thread's grow-only buffers of ring_attention (K/V blocks, partial results),
/// 64-byte aligned like attnkit's tensors (the kernel reads K and V rows straight from them).
template <class T>
struct RingScratch {
  aligned_ptr<T> slots[5];
  std::size_t sizes[5] = {};
  /// At least n elements of slot i; the contents are unspecified.
  T* take(int i, index_t n) {
    const auto want = static_cast<std::size_t>(n);
    if (sizes[i] < want) {
      slots[i] = make_aligned<T>(want);
      sizes[i] = want;
    }
    return slots[i].get();
  }
};
template <class T>
RingScratch<T>& ring_scratch() {
  thread_local RingScratch<T> s;
  return s;
}

/// Posts the non-blocking sends (or receives) of `n` elements at `p`, one message per
/// message_elems, tags tag0, tag0 + 1, ...
template <class T>
void post(bool send, T* p, std::int64_t n, int peer, int tag0, MPI_Comm comm,
          std::vector<MPI_Request>& reqs) {
  for (std::int64_t off = 0, m = 0; off < n; off += message_elems, ++m) {
    const int count = static_cast<int>(std::min(message_elems, n - off));
    MPI_Request r;
    if (send) {
      check_mpi(MPI_Isend(p + off, count, datatype<T>(), peer, tag0 + int(m), comm, &r),
                "MPI_Isend");
    } else {
      check_mpi(MPI_Irecv(p + off, count, datatype<T>(), peer, tag0 + int(m), comm, &r),
                "MPI_Irecv");
    }
    reqs.push_back(r);
  }
}

/// What each rank says about its call before any transfer: its shapes and whether its own input
/// passed the local checks.
struct Header {
  std::int64_t ok, b, hq, hkv, d, dv, n, runs;
};

}  // namespace detail

/// Ring attention: out = the rows of this rank of attention(policy, Q, K, V) over the whole
/// sequence, where this rank holds the rows of `positions` (runs of global positions, in the
/// order of the rows of q, k, v and out) and the ranks of `comm` together hold every position
/// of [0, N) once. Shapes: q [B, Hq, n, D], k [B, Hkv, n, D], v [B, Hkv, n, Dv], out [B, Hq, n, Dv]
/// with n = run_length(positions) (self-attention: a rank's query and key rows are the same
/// positions), Hq a multiple of Hkv, B, heads and D equal on every rank; any strides. Every rank
/// of `comm` calls it with the same policy (the policy is bound to the whole sequence: runtime
/// mask arrays, gate values and score-mod tables span all N positions, as for attention()).
/// Any activation works (the partial states merge for every normalization kind), with any mask,
/// score mod, gate that scales rows, and sink logits. Input that fails a check on any rank
/// throws attnkit::error on every rank (the check is collective), naming the rank and the
/// problem. A collective call: it must be called by every rank of comm, in the same order.
/// \tparam T float or double
template <class Policy, class T>
RingStats ring_attention(const Policy& policy, std::type_identity_t<TensorView<const T, 4>> q,
                         std::type_identity_t<TensorView<const T, 4>> k,
                         std::type_identity_t<TensorView<const T, 4>> v, TensorView<T, 4> out,
                         std::span<const Run> positions, MPI_Comm comm,
                         const RingOptions& options = {}) {
  static_assert(policy::is_attention_policy<Policy>,
                "attnkit::mpi: ring_attention takes an attnkit::policy::AttentionPolicy");
  using clock = std::chrono::steady_clock;
  const auto t_start = clock::now();
  auto since = [](clock::time_point t) {
    return std::chrono::duration<double>(clock::now() - t).count();
  };
  RingStats stats;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) throw error("attnkit::mpi: ring_attention: MPI is not initialized");
  const detail::OwnComm own(comm);
  const MPI_Comm c = own.get();
  int rank = 0, ranks = 1;
  MPI_Comm_rank(c, &rank);
  MPI_Comm_size(c, &ranks);
  const auto nr = static_cast<std::size_t>(ranks);

  // Local checks; their verdict travels with the shapes, so every rank throws together.
  const index_t nb = q.extent(0), hq = q.extent(1), n = q.extent(2), d = q.extent(3);
  const index_t hkv = k.extent(1), dv = v.extent(3);
  std::string problem;
  auto want = [&](const char* name, const Shape<4>& got, const Shape<4>& expected) {
    if (problem.empty() && got != expected)
      problem = std::string(name) + " has shape " + shape_string(got) + ", expected " +
                shape_string(expected);
  };
  const index_t len = run_length(positions);
  for (const Run& r : positions)
    if (problem.empty() && (r.first < 0 || r.count < 0))
      problem = "the run [" + std::to_string(r.first) + ", " + std::to_string(r.first + r.count) +
                ") of positions is not a range of positions";
  if (problem.empty() && len != n)
    problem = "positions hold " + std::to_string(len) + " positions, q has " + std::to_string(n) +
              " rows (q " + shape_string(q.shape()) + ")";
  want("k", k.shape(), Shape<4>{nb, hkv, n, d});
  want("v", v.shape(), Shape<4>{nb, hkv, n, dv});
  want("out", out.shape(), Shape<4>{nb, hq, n, dv});
  if (problem.empty() && (hkv < 1 || hq % hkv != 0))
    problem = "q has " + std::to_string(hq) + " heads, not a multiple of the " +
              std::to_string(hkv) + " heads of k";
  const detail::Header mine{
      problem.empty() ? 1 : 0, nb, hq, hkv, d, dv, n, static_cast<std::int64_t>(positions.size())};
  std::vector<detail::Header> all(static_cast<std::size_t>(ranks));
  const auto t_comm = clock::now();
  detail::check_mpi(
      MPI_Allgather(&mine, int(sizeof mine), MPI_BYTE, all.data(), int(sizeof mine), MPI_BYTE, c),
      "MPI_Allgather");
  const std::string where = "attnkit::mpi: ring_attention: rank " + std::to_string(rank) + ": ";
  if (!problem.empty()) throw shape_error(where + problem);
  for (int r = 0; r < ranks; ++r) {
    const detail::Header& h = all[std::size_t(r)];
    if (!h.ok)
      throw error(where + "rank " + std::to_string(r) +
                  " rejected its input (its own error says why)");
    if (h.b != nb || h.hq != hq || h.hkv != hkv || h.d != d || h.dv != dv)
      throw shape_error(where + "rank " + std::to_string(r) +
                        " has B, Hq, Hkv, D, Dv = " + std::to_string(h.b) + ", " +
                        std::to_string(h.hq) + ", " + std::to_string(h.hkv) + ", " +
                        std::to_string(h.d) + ", " + std::to_string(h.dv) + ", this rank " +
                        std::to_string(nb) + ", " + std::to_string(hq) + ", " +
                        std::to_string(hkv) + ", " + std::to_string(d) + ", " + std::to_string(dv));
  }
  // Every rank's runs.
  std::vector<int> run_counts(nr), run_displs(nr);
  int total_runs = 0;
  for (int r = 0; r < ranks; ++r) {
    run_counts[std::size_t(r)] = int(all[std::size_t(r)].runs) * 2;
    run_displs[std::size_t(r)] = total_runs * 2;
    total_runs += int(all[std::size_t(r)].runs);
  }
  std::vector<std::int64_t> my_runs, flat(std::size_t(total_runs) * 2);
  for (const Run& r : positions) {
    my_runs.push_back(r.first);
    my_runs.push_back(r.count);
  }
  detail::check_mpi(MPI_Allgatherv(my_runs.data(), int(my_runs.size()), MPI_INT64_T, flat.data(),
                                   run_counts.data(), run_displs.data(), MPI_INT64_T, c),
                    "MPI_Allgatherv");
  stats.comm_seconds += since(t_comm);
  struct GlobalRun {
    Run run;
    int rank;
    index_t row;  ///< first row of the run in its rank's slice
  };
  std::vector<std::vector<GlobalRun>> runs_of(nr);
  std::vector<GlobalRun> sorted;
  for (int r = 0, g = 0; r < ranks; ++r) {
    index_t row = 0;
    for (std::int64_t i = 0; i < all[std::size_t(r)].runs; ++i, ++g) {
      const Run run{flat[std::size_t(g) * 2], flat[std::size_t(g) * 2 + 1]};
      if (run.count > 0) {
        runs_of[std::size_t(r)].push_back({run, r, row});
        sorted.push_back({run, r, row});
      }
      row += run.count;
    }
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const GlobalRun& a, const GlobalRun& b) { return a.run.first < b.run.first; });
  index_t total = 0;
  for (const GlobalRun& g : sorted) {
    if (g.run.first != total)
      throw error(where + "the ranks' positions do not cover [0, N) once each: " +
                  (g.run.first < total
                       ? "rank " + std::to_string(g.rank) + "'s run [" +
                             std::to_string(g.run.first) + ", " +
                             std::to_string(g.run.first + g.run.count) + ") overlaps another run"
                       : "no rank holds position " + std::to_string(total)));
    total += g.run.count;
  }

  // Which blocks are live: bound to the whole sequence, the mask classifies (query run, key run)
  // rectangles over every batch and head; with sink logits the key run holding key 0 always is.
  const Policy bound = policy.bind(policy::Geometry{nb, hq, hkv, total, total, d, dv});
  constexpr bool has_sinks = policy::has_sink_logits<typename Policy::activation_type>;
  auto live = [&](const Run& qr, const Run& kr) {
    if (!options.skip_empty) return true;
    if (has_sinks && kr.first == 0) return true;
    for (index_t b = 0; b < nb; ++b)
      for (index_t h = 0; h < hq; ++h)
        if (bound.mask.classify(b, h, qr.first, qr.first + qr.count, kr.first,
                                kr.first + kr.count) != policy::TileClass::empty)
          return true;
    return false;
  };
  // needs[qr * ranks + kr]: rank qr computes at least one block with rank kr's keys.
  std::vector<char> needs(nr * nr, 0);
  for (int a = 0; a < ranks; ++a)
    for (int b = 0; b < ranks; ++b)
      for (const GlobalRun& qg : runs_of[std::size_t(a)])
        for (const GlobalRun& kg : runs_of[std::size_t(b)])
          if (live(qg.run, kg.run)) needs[std::size_t(a) * nr + std::size_t(b)] = 1;
  auto length = [&](int r) { return all[std::size_t(r)].n; };
  // The block of rank `origin` sits at rank origin + s at step s; it moves on after step s iff a
  // rank at a later step needs it. Every rank evaluates the same rule, so sends and receives
  // pair up without asking.
  auto forwarded = [&](int origin, int s) {
    if (length(origin) == 0) return false;
    for (int t = s + 1; t < ranks; ++t)
      if (needs[std::size_t((origin + t) % ranks) * nr + std::size_t(origin)]) return true;
    return false;
  };

  // The K/V blocks: K then V of one rank, contiguous, in grow-only buffers of the calling thread
  // (a repeated call of the same shapes allocates and clears nothing). The own block is sent
  // from k and v themselves when they are contiguous.
  auto k_elems = [&](int r) { return nb * hkv * length(r) * d; };
  auto v_elems = [&](int r) { return nb * hkv * length(r) * dv; };
  index_t max_elems = 0;
  for (int r = 0; r < ranks; ++r) {
    max_elems = std::max(max_elems, k_elems(r) + v_elems(r));
    if (std::max(k_elems(r), v_elems(r)) > detail::message_elems * detail::max_messages)
      throw error(where + "the K or V block of rank " + std::to_string(r) + " is larger than " +
                  std::to_string(detail::max_messages) + " messages of " +
                  std::to_string(detail::message_elems) + " elements");
  }
  detail::RingScratch<T>& scratch = detail::ring_scratch<T>();
  T* cur = scratch.take(0, ranks > 1 ? max_elems : 0);
  T* nxt = scratch.take(1, ranks > 1 ? max_elems : 0);
  const T* own_k = k.data();
  const T* own_v = v.data();
  if (ranks > 1 && n > 0 && !(k.is_contiguous() && v.is_contiguous())) {
    T* p = cur;
    for (index_t b = 0; b < nb; ++b)
      for (index_t h = 0; h < hkv; ++h)
        for (index_t j = 0; j < n; ++j)
          for (index_t e = 0; e < d; ++e) *p++ = k(b, h, j, e);
    for (index_t b = 0; b < nb; ++b)
      for (index_t h = 0; h < hkv; ++h)
        for (index_t j = 0; j < n; ++j)
          for (index_t e = 0; e < dv; ++e) *p++ = v(b, h, j, e);
    own_k = cur;
    own_v = cur + k_elems(rank);
  }

  // The result of each query run: its first live block writes out and the state directly, the
  // next ones merge into them; a run without a live block is a zero row (no visible key).
  const std::vector<GlobalRun>& my_runs_g = runs_of[std::size_t(rank)];
  std::vector<char> seeded(my_runs_g.size(), 0);
  index_t max_run = 0;
  for (const GlobalRun& g : my_runs_g) max_run = std::max(max_run, g.run.count);
  const TensorView<T, 3> state(scratch.take(2, nb * hq * n), Shape<3>{nb, hq, n});
  const TensorView<T, 4> part_out(scratch.take(3, nb * hq * max_run * dv),
                                  Shape<4>{nb, hq, max_run, dv});
  const TensorView<T, 3> part_state(scratch.take(4, nb * hq * max_run), Shape<3>{nb, hq, max_run});
  AttentionOptions aopts;
  aopts.scale = options.scale;

  const int next = (rank + 1) % ranks, prev = (rank + ranks - 1) % ranks;
  std::vector<MPI_Request> reqs;
  for (int s = 0; s < ranks; ++s) {
    const int origin = (rank - s + ranks) % ranks;
    const bool have = s == 0 || forwarded(origin, s - 1);
    const T* blk_k = s == 0 ? own_k : cur;
    const T* blk_v = s == 0 ? own_v : cur + k_elems(origin);
    // Post the transfers first: they run while this step computes.
    reqs.clear();
    const auto t_post = clock::now();
    const int tag0 = s * 2 * detail::max_messages;
    if (s + 1 < ranks) {
      const int incoming = (rank - s - 1 + ranks) % ranks;
      if (forwarded(incoming, s)) {
        detail::post<T>(false, nxt, k_elems(incoming), prev, tag0, c, reqs);
        detail::post<T>(false, nxt + k_elems(incoming), v_elems(incoming), prev,
                        tag0 + detail::max_messages, c, reqs);
        stats.bytes_received += (k_elems(incoming) + v_elems(incoming)) * std::int64_t(sizeof(T));
      }
      if (have && forwarded(origin, s)) {
        detail::post<T>(true, const_cast<T*>(blk_k), k_elems(origin), next, tag0, c, reqs);
        detail::post<T>(true, const_cast<T*>(blk_v), v_elems(origin), next,
                        tag0 + detail::max_messages, c, reqs);
        stats.bytes_sent += (k_elems(origin) + v_elems(origin)) * std::int64_t(sizeof(T));
        ++stats.sends;
      } else if (have && length(origin) > 0) {
        ++stats.sends_skipped;
      }
    }
    stats.comm_seconds += since(t_post);

    if (have && needs[std::size_t(rank) * nr + std::size_t(origin)]) {
      const index_t m = length(origin);
      const TensorView<const T, 4> kb =
          s == 0 ? k : TensorView<const T, 4>(blk_k, Shape<4>{nb, hkv, m, d});
      const TensorView<const T, 4> vb =
          s == 0 ? v : TensorView<const T, 4>(blk_v, Shape<4>{nb, hkv, m, dv});
      for (std::size_t qi = 0; qi < my_runs_g.size(); ++qi) {
        const GlobalRun& qg = my_runs_g[qi];
        for (const GlobalRun& kg : runs_of[std::size_t(origin)]) {
          if (!live(qg.run, kg.run)) {
            ++stats.blocks_skipped;
            continue;
          }
          const auto t_compute = clock::now();
          ++stats.blocks_computed;
          const index_t qa = qg.row, qe = qg.row + qg.run.count;
          const index_t ka = kg.row, ke = kg.row + kg.run.count;
          aopts.queries = QueryRange{qg.run.first, total};
          aopts.keys = KeyRange{kg.run.first, total};
          const auto acc_out = out.slice(qa, qe, 2);
          const auto acc_state = state.slice(qa, qe, 2);
          if (!seeded[qi]) {
            attention_partial(policy, q.slice(qa, qe, 2), kb.slice(ka, ke, 2), vb.slice(ka, ke, 2),
                              acc_out, acc_state, aopts);
            seeded[qi] = 1;
          } else {
            const auto po = part_out.slice(0, qg.run.count, 2);
            const auto ps = part_state.slice(0, qg.run.count, 2);
            attention_partial(policy, q.slice(qa, qe, 2), kb.slice(ka, ke, 2), vb.slice(ka, ke, 2),
                              po, ps, aopts);
            const AttentionPartial<T> parts[2] = {{acc_out, acc_state}, {po, ps}};
            merge_partials(policy, std::span<const AttentionPartial<T>>(parts), acc_out, acc_state);
          }
          stats.compute_seconds += since(t_compute);
          // Let MPI move the transfers along between blocks.
          if (!reqs.empty()) {
            const auto t_test = clock::now();
            int done = 0;
            detail::check_mpi(
                MPI_Testall(int(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE),
                "MPI_Testall");
            stats.comm_seconds += since(t_test);
          }
        }
      }
    } else if (have) {
      stats.blocks_skipped += int(my_runs_g.size() * runs_of[std::size_t(origin)].size());
    }

    const auto t_wait = clock::now();
    if (!reqs.empty())
      detail::check_mpi(MPI_Waitall(int(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE),
                        "MPI_Waitall");
    stats.comm_seconds += since(t_wait);
    std::swap(cur, nxt);
  }
  for (std::size_t qi = 0; qi < my_runs_g.size(); ++qi)
    if (!seeded[qi])
      fill(out.slice(my_runs_g[qi].row, my_runs_g[qi].row + my_runs_g[qi].run.count, 2), T(0));
  stats.seconds = since(t_start);
  return stats;
}

}  // namespace attnkit::mpi
