// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The fused attention kernel: one work unit = (batch, kv head, query tile) with the query heads
// of that kv head; per key tile the mask classifies (Empty skipped, Full untested, Partial
// tested), S^T = K Q^T on the micro-kernel, score mod, activation (online softmax, running sum
// or none), O += P V, then finalize and gate. This file holds the operands, the workspace and
// the per-tile pieces; the drivers are in prefill.hpp, decode.hpp (split-KV and its merge) and
// head_softmax.hpp, the P capture in capture.hpp (attention.hpp includes them all).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "attnkit/attention/detail/micro_kernels.hpp"
#include "attnkit/attention/detail/tile_math.hpp"
#include "attnkit/attention/dropout.hpp"
#include "attnkit/core/aligned.hpp"
#include "attnkit/core/half.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/policy/attention_policy.hpp"
#include "attnkit/simd/widen.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::attention_detail {

using policy::Geometry;
using policy::Normalization;
using policy::TileClass;

/// Keys per tile.
inline constexpr index_t key_tile = 64;
/// Query lanes per lane group (one head's query rows, or all heads' rows in decode).
inline constexpr index_t query_tile = 64;
/// Query rows per work unit under head softmax (every head of the batch entry is in the unit).
inline constexpr index_t head_softmax_query_tile = 32;
/// Keys per split of head softmax's decode (fixed: the split never depends on the thread count);
/// also the scale of the automatic choice of the decode path (attention.hpp).
inline constexpr index_t decode_chunk = 512;
/// Keys per split of the decode path (fixed, as decode_chunk). Each split is a work unit whose
/// setup (Q packed, O cleared, the partial written) costs about what 100 keys do: splits of 2048
/// keys decoded from DRAM 1.1-1.2x as fast as splits of 512 (32k and 4k keys, f32 and bf16 K/V,
/// one and two threads), and still give 16 units at 4k keys with 8 kv heads.
inline constexpr index_t decode_split = 2048;

/// Score of an invisible pair inside a Partial tile (and of nothing else): finite, so no
/// NaN/inf arithmetic happens; every activation's output is then *selected* to exactly 0.
template <class T>
inline constexpr T marker = T(-1e30);
template <class T>
inline constexpr T marker_threshold = T(-1e29);

/// Strided operands of one call. K and V hold KV elements: T, or bf16 / f16 with T = float
/// (widened to float in registers or when packed).
template <class T, class KV = T>
struct Operands {
  const T* q;
  Strides<4> qs;
  const KV* k;
  Strides<4> ks;
  const KV* v;
  Strides<4> vs;
  T* out;
  Strides<4> os;
  T* probs;  ///< null: no capture
  Strides<4> ps;
  T* state;  ///< [B, Hq, Nq] normalizer state per row (attention_partial); null: none
  Strides<3> ss;
  /// The local geometry: g.nk is the number of keys of k and v, which hold the keys
  /// [key0, key0 + g.nk) of the sequence; masks, score mods and dropout see key0 + j.
  Geometry g;
  index_t key0;
  index_t qoff;   ///< absolute position of query row 0 (row0 + total keys - total rows)
  index_t row0;   ///< row of the whole call of query row 0 (gate, dropout; QueryRange)
  index_t group;  ///< Hq / Hkv
  T scale;
  index_t dvp;    ///< Dv rounded up to the SIMD width
  bool v_direct;  ///< V rows usable in place (contiguous, Dv a multiple of the width; as KV)
  /// Dropout applied to each P tile when enabled (training-time only).
  AttentionDropout dropout;
};

/// A run of query rows of one head mapped to consecutive lanes of a lane group.
struct Segment {
  index_t h;      ///< query head
  index_t q0;     ///< first query row
  index_t count;  ///< rows
  index_t lane0;  ///< first lane
};

/// Row stride of the Q rows of the few-rows score path: d rounded up to 16 elements (a multiple
/// of every SIMD width, and of 64 bytes).
inline index_t q_row_stride(index_t d) noexcept { return (d + 15) / 16 * 16; }

/// Per-thread scratch memory that outlives the call: grow-only, 64-byte aligned. A call's
/// buffers are carved from it, so a repeated call of the same (or smaller) shapes allocates
/// nothing; the memory stays with the thread until it ends.
class Scratch {
 public:
  /// `bytes` zeroed bytes, valid until the next get() on this Scratch.
  std::byte* get(std::size_t bytes) {
    if (bytes > cap_) {
      cap_ = std::max(bytes, cap_ / 2 * 3);  // geometric: a growing cache regrows rarely
      data_ = make_aligned<std::byte>(cap_);
    }
    std::memset(data_.get(), 0, bytes);
    return data_.get();
  }

  /// Grows the capacity to at least `bytes` now (no zeroing), so later get()s up to that size
  /// allocate nothing.
  void reserve(std::size_t bytes) {
    if (bytes > cap_) {
      cap_ = bytes;
      data_ = make_aligned<std::byte>(cap_);
    }
  }

 private:
  aligned_ptr<std::byte> data_;
  std::size_t cap_ = 0;
};

/// Which per-thread scratch a buffer comes from: the work units' workspaces, or the buffers one
/// call shares among its units (taken by the calling thread, which also runs units).
enum class ScratchSlot : int { unit = 0, call = 1 };

/// The calling thread's scratch of a slot.
inline Scratch& thread_scratch(ScratchSlot slot) {
  thread_local Scratch scratch[2];
  return scratch[static_cast<int>(slot)];
}

/// Carves typed arrays, each 64-byte aligned, out of one block: a first pass with a null base
/// counts the bytes, a second one hands out the pointers.
class Carver {
 public:
  explicit Carver(std::byte* base) : base_(base) {}
  template <class U>
  U* take(index_t n) {
    U* p = base_ ? reinterpret_cast<U*>(base_ + used_) : nullptr;
    used_ += (static_cast<std::size_t>(n) * sizeof(U) + 63) / 64 * 64;
    return p;
  }
  std::size_t used() const noexcept { return used_; }

 private:
  std::byte* base_;
  std::size_t used_ = 0;
};

/// The buffers of one work unit (no size grows with Nq·Nk), carved from the thread's scratch.
template <class T>
struct Workspace {
  T *qt, *qr, *st, *vp, *kp, *o, *m, *l, *alpha, *mhist;
  Segment* segs;       ///< `segments` entries
  index_t* seg_begin;  ///< segments + 1 entries
  TileClass*
      cls;  ///< segments entries
            /// \param pack_k whether K tiles are packed (widened) into kp: key_tile rows of d
  Workspace(index_t groups, index_t lanes, index_t d, index_t dvp, index_t score_tiles,
            index_t hist, index_t segments, bool pack_k) {
    auto carve = [&](Carver c) {
      qt = c.take<T>(groups * d * lanes);
      qr = c.take<T>(groups * lanes * q_row_stride(d));
      st = c.take<T>(score_tiles * key_tile * lanes);
      vp = c.take<T>(key_tile * dvp);
      kp = c.take<T>(pack_k ? key_tile * d : 0);
      o = c.take<T>(groups * lanes * dvp);
      m = c.take<T>(groups * lanes);
      l = c.take<T>(groups * lanes);
      alpha = c.take<T>(lanes);
      mhist = c.take<T>(hist);
      segs = c.take<Segment>(segments);
      seg_begin = c.take<index_t>(segments + 1);
      cls = c.take<TileClass>(segments);
      return c.used();
    };
    const std::size_t bytes = carve(Carver(nullptr));
    carve(Carver(thread_scratch(ScratchSlot::unit).get(bytes)));
  }
};

/// Runs fn(workspace, u) for u in [0, n) over OpenMP threads with one workspace per thread.
/// Each unit writes only its own outputs, so results do not depend on the schedule.
template <class MakeWs, class Fn>
void parallel_units(long n, MakeWs&& make_ws, Fn&& fn) {
#if defined(_OPENMP)
  if (n > 1 && !in_parallel() && max_threads() > 1) {
#pragma omp parallel
    {
      auto ws = make_ws();
#pragma omp for schedule(dynamic, 1)
      for (long u = 0; u < n; ++u) fn(ws, u);
    }
    return;
  }
#endif
  auto ws = make_ws();
  for (long u = 0; u < n; ++u) fn(ws, u);
}

/// The per-row state of an activation that exponentiates its own weights (policy::has_exp_weight);
/// a placeholder for the others.
template <class A, class B, bool = policy::has_exp_weight<A>>
struct ExpRowOf {
  using type = char;
};
template <class A, class B>
struct ExpRowOf<A, B, true> {
  using type = decltype(std::declval<const A&>().simd_exp_prepare(std::declval<const B&>()));
};

/// The kernel for one (Arch, T, Policy) over K and V of element type KV.
template <class Arch, class T, class Policy, class KV = T>
struct FusedKernel {
  /// K and V are 16-bit storage (bf16, f16), widened to T = float.
  static constexpr bool half_kv = !std::is_same_v<KV, T>;
  static_assert(!half_kv || (std::is_same_v<T, float> && is_half_type<KV>),
                "attnkit: bf16 and f16 K and V are computed in float");
  using B = xsimd::batch<T, Arch>;
  using Activation = typename Policy::activation_type;
  static constexpr index_t W = static_cast<index_t>(B::size);
  static constexpr Normalization norm = Activation::normalization;
  /// map(s) = s: the kernel skips the activation's map (and, elementwise, full tiles' pass).
  static constexpr bool identity_map = policy::is_identity_map<Activation>;
  /// The activation exponentiates its own weights, given the running max of its leads
  /// (policy::has_exp_weight).
  static constexpr bool exp_weight = policy::has_exp_weight<Activation>;
  using ExpRowState = typename ExpRowOf<Activation, B, exp_weight>::type;
  /// The leads never exceed Activation::exp_lead_bound (optional, with exp_weight).
  static constexpr bool lead_bound = exp_weight && requires { Activation::exp_lead_bound; };
  /// A score mod may give -inf (a key bias, a user's mod): the activation then tests every
  /// element of Full tiles too, so such a score gets weight 0 (never NaN) and a row whose
  /// visible scores are all -inf gets a zero row, on every architecture.
  static constexpr bool scores_modded = !Policy::score_mod_type::is_identity;
  /// An elementwise activation is applied in the score tile's epilogue on Full tiles: no pass
  /// over the stored scores. (Partial tiles, and modded scores, take activate(): the marker and
  /// the score mod come between the product and the map.)
  static constexpr bool fused_map = norm == Normalization::none && !identity_map && !scores_modded;
  static constexpr T log2e = T(1.4426950408889634);
  static constexpr T ln2 = T(0.69314718055994530942);

  const Policy& pol;
  const Operands<T, KV>& x;

  index_t offset() const noexcept { return x.qoff; }
  /// Whether the policy has sink logits (policy::has_sink_logits).
  static constexpr bool sinks = policy::has_sink_logits<Activation>;

  // ---- per lane group pieces -------------------------------------------------------------

  /// Q^T[d][lane] = scale · q[b, h, row, d] for the segments' lanes, 0 elsewhere.
  void pack_qt(index_t b, const Segment* segs, index_t nseg, index_t lanes, T* qt) const {
    std::fill(qt, qt + x.g.d * lanes, T(0));
    for (index_t s = 0; s < nseg; ++s) {
      const Segment& sg = segs[s];
      for (index_t r = 0; r < sg.count; ++r) {
        const T* src = x.q + b * x.qs[0] + sg.h * x.qs[1] + (sg.q0 + r) * x.qs[2];
        for (index_t p = 0; p < x.g.d; ++p)
          qt[p * lanes + sg.lane0 + r] = src[p * x.qs[3]] * x.scale;
      }
    }
  }

  /// Q rows of the first `rows` lanes of a packed Q^T (row stride `lanes`): qr[r][0..d) for the
  /// rows path (qk_rows_tile), each row zero-padded to q_row_stride(d).
  void pack_qr(const T* qt, index_t lanes, index_t rows, T* qr) const {
    const index_t d = x.g.d, dp = q_row_stride(d);
    for (index_t r = 0; r < rows; ++r) {
      for (index_t p = 0; p < d; ++p) qr[r * dp + p] = qt[p * lanes + r];
      std::fill(qr + r * dp + d, qr + (r + 1) * dp, T(0));
    }
  }

  TileClass classify(index_t b, const Segment* segs, index_t nseg, index_t j0, index_t j1) const {
    TileClass c = TileClass::empty;
    for (index_t s = 0; s < nseg; ++s) {
      const Segment& sg = segs[s];
      const TileClass cs = pol.mask.classify(b, sg.h, sg.q0 + offset(), sg.q0 + sg.count + offset(),
                                             j0 + x.key0, j1 + x.key0);
      if (s == 0) {
        c = cs;
      } else if (c != cs) {
        c = TileClass::partial;
      }
    }
    return c;
  }

  /// Score mod, then the marker on invisible pairs of a Partial tile.
  void mod_and_mask(index_t b, const Segment* segs, index_t nseg, index_t lanes, index_t j0,
                    index_t bk, bool partial, T* st) const {
    if constexpr (!Policy::score_mod_type::is_identity) {
      for (index_t j = 0; j < bk; ++j)
        for (index_t s = 0; s < nseg; ++s) {
          const Segment& sg = segs[s];
          pol.score_mod.apply_queries(b, sg.h, sg.q0 + offset(), x.key0 + j0 + j,
                                      st + j * lanes + sg.lane0, sg.count);
        }
    }
    if (!partial) return;
    for (index_t s = 0; s < nseg; ++s) {
      const Segment& sg = segs[s];
      for (index_t j = 0; j < bk; ++j) {
        T* row = st + j * lanes + sg.lane0;
        for (index_t r = 0; r < sg.count; ++r)
          if (!pol.mask.visible(b, sg.h, sg.q0 + r + offset(), x.key0 + j0 + j)) row[r] = marker<T>;
      }
    }
  }

  /// S^T -> P^T in place for one lane group; updates m, l and writes alpha (online softmax).
  /// Returns whether O must be rescaled by alpha (some row's max moved).
  bool activate(index_t lanes, index_t bk, bool partial, T* st, T* m, T* l, T* alpha) const {
    const index_t nv = lanes / W;
    const B thr(marker_threshold<T>);
    const Activation act = pol.activation;  // a local copy: the stores below cannot alias it
    if constexpr (norm == Normalization::over_keys_exp) {
      bool moved = false;
      for (index_t v0 = 0; v0 < nv; v0 += 4) {
        const index_t cnt = std::min<index_t>(4, nv - v0);
        B mx[4];
        for (index_t v = 0; v < cnt; ++v) mx[v] = B(marker<T>);
        // Rows whose max already reached the leads' upper bound skip the max pass.
        bool at_bound = false;
        if constexpr (lead_bound) {
          at_bound = true;
          const B bound(static_cast<T>(Activation::exp_lead_bound) * log2e);
          for (index_t v = 0; v < cnt; ++v)
            at_bound = at_bound && xsimd::all(B::load_aligned(m + (v0 + v) * W) >= bound);
        }
        for (index_t j = 0; j < (at_bound ? 0 : bk); ++j) {
          T* row = st + j * lanes + v0 * W;
          for (index_t v = 0; v < cnt; ++v) {
            B t = B::load_aligned(row + v * W);
            if constexpr (exp_weight) {  // the max of the leads; the scores stay for pass 2
              const B lead = act.simd_exp_lead(t);
              mx[v] = xsimd::max(mx[v], partial ? xsimd::select(t > thr, lead, t) : lead);
              continue;
            } else if constexpr (!identity_map) {  // the map before the exponential (soft cap)
              const B mapped = act.simd_map(t);
              t = partial ? xsimd::select(t > thr, mapped, t) : mapped;
              t.store_aligned(row + v * W);
            }
            mx[v] = xsimd::max(mx[v], t);
          }
        }
        B sum[4];
        B mnew[4];
        ExpRowState rows[4];
        for (index_t v = 0; v < cnt; ++v) {
          const B mold = B::load_aligned(m + (v0 + v) * W);
          mnew[v] = xsimd::max(mold, mx[v] * B(log2e));
          moved = moved || xsimd::any(mnew[v] != mold);
          const B a = exp2_batch<Arch, T>(mold - mnew[v]);
          a.store_aligned(alpha + (v0 + v) * W);
          mnew[v].store_aligned(m + (v0 + v) * W);
          sum[v] = B(T(0));
          if constexpr (exp_weight) rows[v] = act.simd_exp_prepare(mnew[v] * B(T(ln2)));
        }
        if constexpr (exp_weight) {
          // One row vector at a time, its state in registers (the stores below could alias it
          // in memory).
          for (index_t v = 0; v < cnt; ++v) {
            const ExpRowState rs = rows[v];
            B s(T(0));
            T* col = st + (v0 + v) * W;
            for (index_t j = 0; j < bk; ++j) {
              const B t = B::load_aligned(col + j * lanes);
              B p = act.simd_exp_weight(t, rs);
              if (partial) p = xsimd::select(t > thr, p, B(T(0)));
              p.store_aligned(col + j * lanes);
              s += p;
            }
            sum[v] = s;
          }
        } else {
          for (index_t j = 0; j < bk; ++j) {
            T* row = st + j * lanes + v0 * W;
            for (index_t v = 0; v < cnt; ++v) {
              const B t = B::load_aligned(row + v * W);
              B p = exp2_batch<Arch, T>(xsimd::fms(t, B(log2e), mnew[v]));
              if (partial) p = xsimd::select(t > thr, p, B(T(0)));
              p.store_aligned(row + v * W);
              sum[v] += p;
            }
          }
        }
        for (index_t v = 0; v < cnt; ++v) {
          const B a = B::load_aligned(alpha + (v0 + v) * W);
          const B lv = B::load_aligned(l + (v0 + v) * W);
          xsimd::fma(lv, a, sum[v]).store_aligned(l + (v0 + v) * W);
        }
      }
      return moved;
    } else {
      if constexpr (identity_map) {
        if (!partial) return false;  // P = s: nothing to do but zero the invisible pairs
      }
      for (index_t v0 = 0; v0 < nv; v0 += 4) {
        const index_t cnt = std::min<index_t>(4, nv - v0);
        B sum[4];
        for (index_t v = 0; v < cnt; ++v) sum[v] = B(T(0));
        for (index_t j = 0; j < bk; ++j) {
          T* row = st + j * lanes + v0 * W;
          for (index_t v = 0; v < cnt; ++v) {
            const B t = B::load_aligned(row + v * W);
            B p = identity_map ? t : act.simd_map(t);
            if (partial) p = xsimd::select(t > thr, p, B(T(0)));
            p.store_aligned(row + v * W);
            if constexpr (norm == Normalization::over_keys_sum) sum[v] += p;
          }
        }
        if constexpr (norm == Normalization::over_keys_sum) {
          for (index_t v = 0; v < cnt; ++v) {
            const B lv = B::load_aligned(l + (v0 + v) * W);
            (lv + sum[v]).store_aligned(l + (v0 + v) * W);
          }
        }
      }
      return false;
    }
  }

  /// Whether a Full tile of the few-rows (decode) path may take the row-major tile: K and V rows
  /// in place, and nothing that works on the transposed tile (dropout, score mods, the
  /// activations that exponentiate their own weights).
  static constexpr bool rm_kind =
      !exp_weight && !scores_modded && norm != Normalization::over_heads;
  /// Whether a range's last, shorter tile takes the row-major tile too: where xsimd::fma is an
  /// FMA instruction. On SSE2 it is a product and a sum, which GCC (with FMA in -march) fused in
  /// some instantiations of the tail's blocks and not in others: bf16 or f16 K then no longer
  /// gave the float call's bits. That path keeps the transposed tail.
  static constexpr bool rm_tail = is_avx512<Arch> || std::is_same_v<Arch, simd::avx2>;
  bool rm_ok() const noexcept {
    return rm_kind && !x.dropout.enabled() && x.v_direct && x.ks[3] == 1;
  }

  /// S -> P in place for a row-major tile of nl rows and key_tile keys (row stride key_tile);
  /// updates m, l and writes alpha as activate() does for the transposed tile. Returns whether
  /// O must be rescaled by alpha. With Tail, only the first bk (< key_tile) keys are scores: the
  /// lanes of the last vector past them are taken as no key (P = 0, outside the max and the sum).
  template <bool Tail = false>
  bool activate_rm(index_t nl, T* s, T* m, T* l, T* alpha, index_t bk = key_tile) const {
    const index_t nv = Tail ? (bk + W - 1) / W : key_tile / W;
    // The lanes of the last vector that hold keys (all of them for a whole tile).
    alignas(64) static constexpr T iota[16] = {0, 1, 2,  3,  4,  5,  6,  7,
                                               8, 9, 10, 11, 12, 13, 14, 15};
    static_assert(W <= 16);
    const auto in_tail = B::load_aligned(iota) < B(static_cast<T>(bk - (nv - 1) * W));
    const Activation act = pol.activation;  // a local copy: the stores below cannot alias it
    bool moved = false;
    for (index_t r = 0; r < nl; ++r) {
      T* row = s + r * key_tile;
      if constexpr (norm == Normalization::over_keys_exp) {
        B mx(marker<T>);
        for (index_t v = 0; v < nv; ++v) {
          B t = B::load_aligned(row + v * W);
          if constexpr (!identity_map) t = act.simd_map(t);  // the map before the exponential
          if constexpr (Tail)
            if (v == nv - 1) t = xsimd::select(in_tail, t, B(marker<T>));
          if constexpr (!identity_map || Tail) t.store_aligned(row + v * W);
          mx = xsimd::max(mx, t);
        }
        const T mold = m[r];
        const T mnew = std::max(mold, simd::reduce_max(mx) * log2e);
        moved = moved || mnew != mold;
        const T a = exp2_batch<Arch, T>(B(mold - mnew)).get(0);
        B sum(T(0));
        const B mb(mnew);
        for (index_t v = 0; v < nv; ++v) {
          B p = exp2_batch<Arch, T>(xsimd::fms(B::load_aligned(row + v * W), B(log2e), mb));
          if constexpr (Tail)
            if (v == nv - 1) p = xsimd::select(in_tail, p, B(T(0)));
          p.store_aligned(row + v * W);
          sum += p;
        }
        alpha[r] = a;
        m[r] = mnew;
        l[r] = l[r] * a + simd::reduce_add(sum);
      } else {
        B sum(T(0));
        for (index_t v = 0; v < nv; ++v) {
          B p = B::load_aligned(row + v * W);
          if constexpr (!identity_map) p = act.simd_map(p);
          if constexpr (Tail)
            if (v == nv - 1) p = xsimd::select(in_tail, p, B(T(0)));
          if constexpr (!identity_map || Tail) p.store_aligned(row + v * W);
          if constexpr (norm == Normalization::over_keys_sum) sum += p;
        }
        if constexpr (norm == Normalization::over_keys_sum) l[r] += simd::reduce_add(sum);
      }
    }
    return moved;
  }

  /// The scores and P of a key range's last, shorter tile (bk keys) in the row-major layout; its
  /// own function, so that the decode loop's code stays as it was for whole tiles.
  [[gnu::noinline]] bool tail_rm(const T* qr, index_t dp, index_t nl, const KV* k, T* s, T* m, T* l,
                                 T* alpha, index_t bk) const {
    qk_rows_tail_rm<Arch, T, key_tile>(qr, dp, nl, k, x.ks[2], x.g.d, s, bk);
    return activate_rm<true>(nl, s, m, l, alpha, bk);
  }

  /// Attention dropout on a P^T tile, after the activation (whose row sums already saw every
  /// visible key) and before O += P V: dropped pairs become 0, kept ones are scaled by
  /// 1 / (1 - p). The mask depends on (seed, b, h, i, j) only.
  void dropout_tile(index_t b, const Segment* segs, index_t nseg, index_t lanes, index_t j0,
                    index_t bk, T* st) const {
    const T keep = static_cast<T>(x.dropout.keep_scale());
    for (index_t s = 0; s < nseg; ++s) {
      const Segment& sg = segs[s];
      for (index_t r = 0; r < sg.count; ++r) {
        const std::uint64_t row = x.dropout.row_key(b, sg.h, x.row0 + sg.q0 + r);
        T* col = st + sg.lane0 + r;
        for (index_t j = 0; j < bk; ++j)
          col[j * lanes] = x.dropout.row_keeps(row, x.key0 + j0 + j) ? col[j * lanes] * keep : T(0);
      }
    }
  }

  /// The V rows of tile [j0, j0 + bk) of (b, kvh) as T, packed (and widened) when needed; row
  /// stride.
  const T* v_tile(index_t b, index_t kvh, index_t j0, index_t bk, T* vp, index_t& stride) const {
    const KV* base = v_rows(b, kvh, j0);
    if constexpr (!half_kv) {
      if (x.v_direct) {
        stride = x.vs[2];
        return base;
      }
    }
    stride = x.dvp;
    for (index_t j = 0; j < bk; ++j) {
      T* dst = vp + j * x.dvp;
      const KV* src = base + j * x.vs[2];
      if constexpr (half_kv) {
        if (x.vs[3] == 1) {
          simd::widen_row<Arch>(src, x.g.dv, dst);
        } else {
          for (index_t c = 0; c < x.g.dv; ++c) dst[c] = simd::widen_scalar(src[c * x.vs[3]]);
        }
      } else {
        for (index_t c = 0; c < x.g.dv; ++c) dst[c] = src[c * x.vs[3]];
      }
      for (index_t c = x.g.dv; c < x.dvp; ++c) dst[c] = T(0);
    }
    return vp;
  }

  /// The first V row of tile j0 of (b, kvh), in place.
  const KV* v_rows(index_t b, index_t kvh, index_t j0) const {
    return x.v + b * x.vs[0] + kvh * x.vs[1] + j0 * x.vs[2];
  }

  /// The first K row of tile j0 of (b, kvh), in place.
  const KV* k_tile(index_t b, index_t kvh, index_t j0) const {
    return x.k + b * x.ks[0] + kvh * x.ks[1] + j0 * x.ks[2];
  }

  /// The K rows of tile [j0, j0 + bk) of (b, kvh) as T: in place, or widened into kp (row stride
  /// d, contiguous) for 16-bit K. Sets the row and element strides.
  const T* k_tile_t(index_t b, index_t kvh, index_t j0, index_t bk, T* kp, index_t& ks,
                    index_t& kd) const {
    if constexpr (!half_kv) {
      (void)bk;
      (void)kp;
      ks = x.ks[2];
      kd = x.ks[3];
      return k_tile(b, kvh, j0);
    } else {
      const index_t d = x.g.d;
      const KV* base = k_tile(b, kvh, j0);
      for (index_t j = 0; j < bk; ++j) {
        const KV* src = base + j * x.ks[2];
        if (x.ks[3] == 1) {
          simd::widen_row<Arch>(src, d, kp + j * d);
        } else {
          for (index_t c = 0; c < d; ++c) kp[j * d + c] = simd::widen_scalar(src[c * x.ks[3]]);
        }
      }
      ks = d;
      kd = 1;
      return kp;
    }
  }

  /// Writes a P tile into the capture buffer (unnormalized for the key-normalized kinds): the
  /// pair (key j0 + j, lane) at p[j · pj + lane · pr] (P^T: pj = lanes, pr = 1; a row-major
  /// decode tile: pj = 1, pr = its row stride).
  void capture_tile(index_t b, const Segment* segs, index_t nseg, index_t j0, index_t bk,
                    const T* p, index_t pj, index_t pr) const;

  /// Zeroes the capture rows of the segments over the keys [kb, ke).
  void capture_zero(index_t b, const Segment* segs, index_t nseg, index_t kb, index_t ke) const;

  /// Multiplies the captured P of row `i` of head `h` over the keys [kb, ke) by f.
  void capture_scale(index_t b, index_t h, index_t i, index_t kb, index_t ke, T f) const;

  // ---- the key-normalized / elementwise work unit -----------------------------------------

  /// Runs lane groups (each: segments, Q^T, O, m, l) over the keys [kb, ke) of kv head kvh.
  /// Leaves unnormalized O, m (log2 units) and l in the workspace.
  void run_groups(Workspace<T>& ws, index_t b, index_t kvh, const Segment* segs,
                  const index_t* seg_begin, index_t ngroups, index_t lanes, index_t kb,
                  index_t ke) const {
    const index_t d = x.g.d, dvp = x.dvp, dp = q_row_stride(d);
    // A lane group with at most half its lanes in use (decode, short queries) takes the score
    // tile from Q rows, vectorized along d (qk_rows_tile): each K row is read once for all the
    // group's rows and no unused lane is computed.
    auto used = [&](index_t gi) {
      const Segment& last = segs[seg_begin[gi + 1] - 1];
      return last.lane0 + last.count;
    };
    auto rows_path = [&](index_t gi) { return x.ks[3] == 1 && 2 * used(gi) <= lanes; };
    for (index_t gi = 0; gi < ngroups; ++gi) {
      T* qt = ws.qt + gi * d * lanes;
      pack_qt(b, segs + seg_begin[gi], seg_begin[gi + 1] - seg_begin[gi], lanes, qt);
      if (rows_path(gi)) pack_qr(qt, lanes, used(gi), ws.qr + gi * lanes * dp);
      std::fill(ws.o + gi * lanes * dvp, ws.o + (gi + 1) * lanes * dvp, T(0));
      std::fill(ws.m + gi * lanes, ws.m + (gi + 1) * lanes, marker<T> * log2e);
      std::fill(ws.l + gi * lanes, ws.l + (gi + 1) * lanes, T(0));
      // A sink logit is a key of score z_h and no value, in the range that starts the sequence.
      if constexpr (sinks) {
        if (kb == 0 && x.key0 == 0)
          for (index_t s = seg_begin[gi]; s < seg_begin[gi + 1]; ++s)
            for (index_t r = 0; r < segs[s].count; ++r) {
              const index_t lane = gi * lanes + segs[s].lane0 + r;
              ws.m[static_cast<std::size_t>(lane)] =
                  static_cast<T>(pol.activation.sink_logit(segs[s].h)) * log2e;
              ws.l[static_cast<std::size_t>(lane)] = T(1);
            }
      }
    }
    const index_t nkt = (x.g.nk + key_tile - 1) / key_tile;
    // The running max of skipped (Empty) tiles is never written: start from "no key seen", so
    // the rescale of their (zero) captured P is by 0 or 1, never by exp2 of a stale value.
    if (x.probs && norm == Normalization::over_keys_exp)
      std::fill(ws.mhist + kb / key_tile * lanes,
                ws.mhist + (ngroups - 1) * nkt * lanes + (ke + key_tile - 1) / key_tile * lanes,
                marker<T> * log2e);
    for (index_t j0 = kb; j0 < ke; j0 += key_tile) {
      const index_t bk = std::min(key_tile, ke - j0);
      const T* vrows = nullptr;
      index_t vstride = 0;
      const T* krows = nullptr;  // the tile's K as T (broadcast path), packed at first use
      index_t kstride = 0, kdstride = 0;
      for (index_t gi = 0; gi < ngroups; ++gi) {
        const Segment* gs = segs + seg_begin[gi];
        const index_t ns = seg_begin[gi + 1] - seg_begin[gi];
        const TileClass cls = classify(b, gs, ns, j0, j0 + bk);
        if (cls == TileClass::empty) {
          if (x.probs) capture_zero(b, gs, ns, j0, j0 + bk);  // the other tiles are written
          continue;
        }
        const bool partial = cls == TileClass::partial;
        const index_t nl = used(gi);
        T* st = ws.st;
        const bool rows = rows_path(gi);
        if (rows && !partial && rm_ok() && (bk == key_tile || rm_tail)) {
          // Decode: the row-major tile, activated along the keys (the range's last, shorter
          // tile too). O += P V prefetches the next tile's V rows (past the chunk too: the next
          // chunk is usually this thread's next unit); the range's first tile's are not.
          const KV* vr = v_rows(b, kvh, j0);
          const KV* kr = k_tile(b, kvh, j0);
          T* const qr = ws.qr + gi * lanes * dp;
          T* const m = ws.m + gi * lanes;
          T* const l = ws.l + gi * lanes;
          bool rescale;
          if (bk == key_tile) {
            qk_rows_tile_rm<Arch, T, key_tile>(qr, dp, nl, kr, x.ks[2], d, st, vr, x.vs[2], x.g.dv);
            rescale = activate_rm(nl, st, m, l, ws.alpha);
          } else {
            rescale = tail_rm(qr, dp, nl, kr, st, m, l, ws.alpha, bk);
          }
          pv_rows_tile<Arch, T>(st, key_tile, nl, vr, x.vs[2], bk, dvp,
                                rescale ? ws.alpha : nullptr, ws.o + gi * lanes * dvp,
                                key_tile * x.vs[2]);
          if (x.probs) {
            capture_tile(b, gs, ns, j0, bk, st, 1, key_tile);
            if constexpr (norm == Normalization::over_keys_exp)
              std::copy(m, m + lanes, ws.mhist + (gi * nkt + j0 / key_tile) * lanes);
          }
          continue;
        }
        bool mapped = false;  // the score tile's epilogue applied the activation's map
        if (rows) {
          const KV* vraw = x.vs[3] == 1 ? v_rows(b, kvh, j0) : nullptr;
          qk_rows_tile<Arch, T>(ws.qr + gi * lanes * dp, dp, nl, lanes, k_tile(b, kvh, j0), x.ks[2],
                                d, bk, st, vraw, x.vs[2], x.g.dv);
        } else {
          if (!krows) krows = k_tile_t(b, kvh, j0, bk, ws.kp, kstride, kdstride);
          if constexpr (fused_map) {
            if (!partial) {
              const Activation act = pol.activation;
              qk_tile<Arch, T>(ws.qt + gi * d * lanes, lanes, krows, kstride, kdstride, d, bk, st,
                               [act](const B& s) { return act.simd_map(s); });
              mapped = true;
            }
          }
          if (!mapped)
            qk_tile<Arch, T>(ws.qt + gi * d * lanes, lanes, krows, kstride, kdstride, d, bk, st);
        }
        mod_and_mask(b, gs, ns, lanes, j0, bk, partial, st);
        T* m = ws.m + gi * lanes;
        const bool rescale = !mapped && activate(lanes, bk, partial || scores_modded, st, m,
                                                 ws.l + gi * lanes, ws.alpha);
        if (x.dropout.enabled()) dropout_tile(b, gs, ns, lanes, j0, bk, st);
        T* const alpha = rescale ? ws.alpha : nullptr;
        if (rows && x.v_direct) {  // V rows read in place (16-bit ones widened in registers)
          pv_tile<Arch, T>(st, lanes, nl, v_rows(b, kvh, j0), x.vs[2], bk, dvp, alpha,
                           ws.o + gi * lanes * dvp);
        } else {
          if (!vrows) vrows = v_tile(b, kvh, j0, bk, ws.vp, vstride);
          pv_tile<Arch, T>(st, lanes, nl, vrows, vstride, bk, dvp, alpha, ws.o + gi * lanes * dvp);
        }
        if (x.probs) {
          capture_tile(b, gs, ns, j0, bk, st, lanes, 1);
          if constexpr (norm == Normalization::over_keys_exp)
            std::copy(m, m + lanes, ws.mhist + (gi * nkt + j0 / key_tile) * lanes);
        }
      }
    }
  }

  /// Normalizes O (and the captured P) of the groups, applies the gate, stores to out.
  void finalize_groups(Workspace<T>& ws, index_t b, const Segment* segs, const index_t* seg_begin,
                       index_t ngroups, index_t lanes) const {
    const index_t dvp = x.dvp;
    const index_t nkt = (x.g.nk + key_tile - 1) / key_tile;
    for (index_t gi = 0; gi < ngroups; ++gi) {
      const T* o = ws.o + gi * lanes * dvp;
      const T* m = ws.m + gi * lanes;
      const T* l = ws.l + gi * lanes;
      for (index_t s = seg_begin[gi]; s < seg_begin[gi + 1]; ++s) {
        const Segment& sg = segs[s];
        for (index_t r = 0; r < sg.count; ++r) {
          const index_t lane = sg.lane0 + r;
          T inv = T(1);
          if constexpr (norm == Normalization::over_keys_exp ||
                        norm == Normalization::over_keys_sum)
            inv = l[lane] > T(0) ? T(1) / l[lane] : T(0);
          store_row(b, sg.h, sg.q0 + r, o + lane * dvp, inv, ws.vp);
          if (x.state) store_state(b, sg.h, sg.q0 + r, m[lane], l[lane]);
          if (x.probs &&
              (norm == Normalization::over_keys_exp || norm == Normalization::over_keys_sum)) {
            T* dst = x.probs + b * x.ps[0] + sg.h * x.ps[1] + (sg.q0 + r) * x.ps[2];
            for (index_t t = 0; t < nkt; ++t) {
              T f = inv;
              if constexpr (norm == Normalization::over_keys_exp)
                f = inv == T(0)
                        ? T(0)
                        : static_cast<T>(std::exp2(
                              ws.mhist[static_cast<std::size_t>((gi * nkt + t) * lanes + lane)] -
                              m[lane])) *
                              inv;
              const index_t je = std::min(x.g.nk, (t + 1) * key_tile);
              for (index_t j = t * key_tile; j < je; ++j) dst[j * x.ps[3]] *= f;
            }
          }
        }
      }
    }
  }

  /// out[b, h, i, :] = gate(o_row · inv); `tmp` holds at least dvp elements.
  void store_row(index_t b, index_t h, index_t i, const T* orow, T inv, T* tmp) const {
    for (index_t c = 0; c < x.g.dv; ++c) tmp[c] = orow[c] * inv;
    if constexpr (!Policy::gate_type::is_identity)
      pol.gate.apply_row(b, h, x.row0 + i, tmp, x.g.dv);
    T* dst = x.out + b * x.os[0] + h * x.os[1] + i * x.os[2];
    for (index_t c = 0; c < x.g.dv; ++c) dst[c * x.os[3]] = tmp[c];
  }

  /// The state of row i of head h (attention_partial) from its running max m (log2 units) and
  /// sum l: the log-sum-exp (over_keys_exp), the sum (over_keys_sum) or 0.
  void store_state(index_t b, index_t h, index_t i, T m, T l) const {
    T z = T(0);
    if constexpr (norm == Normalization::over_keys_exp)
      z = l > T(0) ? (m + std::log2(l)) * ln2 : -std::numeric_limits<T>::infinity();
    if constexpr (norm == Normalization::over_keys_sum) z = l;
    x.state[b * x.ss[0] + h * x.ss[1] + i * x.ss[2]] = z;
  }

  /// The prefill path: units (b, kvh, query tile), one lane group per query head.
  void run_prefill() const;

  /// The decode path: all query rows of the G heads of a kv head share one lane group; the keys
  /// are split into fixed chunks merged afterwards in chunk order (flash-decoding). With P
  /// capture, each chunk keeps the running max of each of its key tiles, and the merge scales
  /// the captured P once per tile by exp2(tile max - final max) / sum.
  void run_decode() const;

  // ---- head softmax -------------------------------------------------------------------------

  /// Units (b, query tile[, key chunk]) with every head; per key tile the scores of all heads
  /// are computed, then normalized across heads per (i, j), then multiplied with V. `split`:
  /// the keys also in fixed chunks, summed in chunk order (decode).
  void run_head_softmax(bool split) const;

  /// P_h = exp(g(s_h) - max) / Σ over the heads whose class is not Empty and whose pair is visible.
  void normalize_heads(const TileClass* cls, index_t hq, index_t lanes, index_t bk, T* st) const;
};

}  // namespace attnkit::attention_detail

ATTNKIT_SIMD_WARNINGS_POP
