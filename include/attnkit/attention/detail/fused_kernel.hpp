// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The fused attention kernel: one work unit = (batch, kv head, query tile) with the query heads
// of that kv head; per key tile the mask classifies (Empty skipped, Full untested, Partial
// tested), S^T = K Q^T on the micro-kernel, score mod, activation (online softmax, running sum
// or none), O += P V, then finalize and gate. Also the head-softmax and decode variants.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "attnkit/attention/detail/micro_kernels.hpp"
#include "attnkit/attention/detail/tile_math.hpp"
#include "attnkit/attention/dropout.hpp"
#include "attnkit/core/aligned.hpp"
#include "attnkit/core/parallel.hpp"
#include "attnkit/core/shape.hpp"
#include "attnkit/policy/attention_policy.hpp"

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
/// Keys per split of the decode path (fixed: the split never depends on the thread count).
inline constexpr index_t decode_chunk = 512;

/// Score of an invisible pair inside a Partial tile (and of nothing else): finite, so no
/// NaN/inf arithmetic happens; every activation's output is then *selected* to exactly 0.
template <class T>
inline constexpr T marker = T(-1e30);
template <class T>
inline constexpr T marker_threshold = T(-1e29);

/// Strided operands of one call.
template <class T>
struct Operands {
  const T* q;
  Strides<4> qs;
  const T* k;
  Strides<4> ks;
  const T* v;
  Strides<4> vs;
  T* out;
  Strides<4> os;
  T* probs;  ///< null: no capture
  Strides<4> ps;
  Geometry g;
  index_t group;  ///< Hq / Hkv
  T scale;
  index_t dvp;    ///< Dv rounded up to the SIMD width
  bool v_direct;  ///< V rows usable in place (contiguous, Dv a multiple of the width)
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

/// Per-thread buffers (no size grows with Nq·Nk).
template <class T>
struct Workspace {
  aligned_ptr<T> qt, st, vp, o, m, l, alpha, mhist;
  Workspace(index_t groups, index_t lanes, index_t d, index_t dvp, index_t score_tiles,
            index_t hist)
      : qt(make_aligned<T>(static_cast<std::size_t>(groups * d * lanes))),
        st(make_aligned<T>(static_cast<std::size_t>(score_tiles * key_tile * lanes))),
        vp(make_aligned<T>(static_cast<std::size_t>(key_tile * dvp))),
        o(make_aligned<T>(static_cast<std::size_t>(groups * lanes * dvp))),
        m(make_aligned<T>(static_cast<std::size_t>(groups * lanes))),
        l(make_aligned<T>(static_cast<std::size_t>(groups * lanes))),
        alpha(make_aligned<T>(static_cast<std::size_t>(lanes))),
        mhist(make_aligned<T>(static_cast<std::size_t>(hist))) {}
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

/// The kernel for one (Arch, T, Policy).
template <class Arch, class T, class Policy>
struct FusedKernel {
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
  static constexpr T log2e = T(1.4426950408889634);
  static constexpr T ln2 = T(0.69314718055994530942);

  const Policy& pol;
  const Operands<T>& x;

  index_t offset() const noexcept { return x.g.query_offset(); }

  // ---- per lane group pieces -------------------------------------------------------------

  /// Q^T[d][lane] = scale · q[b, h, row, d] for the segments' lanes, 0 elsewhere.
  void pack_qt(index_t b, const Segment* segs, index_t nseg, index_t lanes, T* qt) const {
    std::fill(qt, qt + x.g.d * lanes, T(0));
    for (index_t s = 0; s < nseg; ++s) {
      const Segment& sg = segs[s];
      for (index_t r = 0; r < sg.count; ++r) {
        const T* src = x.q + b * x.qs[0] + sg.h * x.qs[1] + (sg.q0 + r) * x.qs[2];
        for (index_t p = 0; p < x.g.d; ++p) qt[p * lanes + sg.lane0 + r] = src[p * x.qs[3]] * x.scale;
      }
    }
  }

  TileClass classify(index_t b, const Segment* segs, index_t nseg, index_t j0,
                     index_t j1) const {
    TileClass c = TileClass::empty;
    for (index_t s = 0; s < nseg; ++s) {
      const Segment& sg = segs[s];
      const TileClass cs = pol.mask.classify(b, sg.h, sg.q0 + offset(), sg.q0 + sg.count + offset(), j0, j1);
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
          pol.score_mod.apply_queries(b, sg.h, sg.q0 + offset(), j0 + j,
                                      st + j * lanes + sg.lane0, sg.count);
        }
    }
    if (!partial) return;
    for (index_t s = 0; s < nseg; ++s) {
      const Segment& sg = segs[s];
      for (index_t j = 0; j < bk; ++j) {
        T* row = st + j * lanes + sg.lane0;
        for (index_t r = 0; r < sg.count; ++r)
          if (!pol.mask.visible(b, sg.h, sg.q0 + r + offset(), j0 + j)) row[r] = marker<T>;
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
          const B bound(static_cast<T>(Activation::exp_lead_bound * 1.4426950408889634));
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

  /// Attention dropout on a P^T tile, after the activation (whose row sums already saw every
  /// visible key) and before O += P V: dropped pairs become 0, kept ones are scaled by
  /// 1 / (1 - p). The mask depends on (seed, b, h, i, j) only.
  void dropout_tile(index_t b, const Segment* segs, index_t nseg, index_t lanes, index_t j0,
                    index_t bk, T* st) const {
    const T keep = static_cast<T>(x.dropout.keep_scale());
    for (index_t s = 0; s < nseg; ++s) {
      const Segment& sg = segs[s];
      for (index_t r = 0; r < sg.count; ++r) {
        const std::uint64_t row = x.dropout.row_key(b, sg.h, sg.q0 + r);
        T* col = st + sg.lane0 + r;
        for (index_t j = 0; j < bk; ++j)
          col[j * lanes] = x.dropout.row_keeps(row, j0 + j) ? col[j * lanes] * keep : T(0);
      }
    }
  }

  /// Pointer to the V rows of tile [j0, j0 + bk) of (b, kvh), packed when needed; row stride.
  const T* v_tile(index_t b, index_t kvh, index_t j0, index_t bk, T* vp, index_t& stride) const {
    const T* base = x.v + b * x.vs[0] + kvh * x.vs[1] + j0 * x.vs[2];
    if (x.v_direct) {
      stride = x.vs[2];
      return base;
    }
    stride = x.dvp;
    for (index_t j = 0; j < bk; ++j) {
      T* dst = vp + j * x.dvp;
      const T* src = base + j * x.vs[2];
      for (index_t c = 0; c < x.g.dv; ++c) dst[c] = src[c * x.vs[3]];
      for (index_t c = x.g.dv; c < x.dvp; ++c) dst[c] = T(0);
    }
    return vp;
  }

  const T* k_tile(index_t b, index_t kvh, index_t j0) const {
    return x.k + b * x.ks[0] + kvh * x.ks[1] + j0 * x.ks[2];
  }

  /// Writes P^T of a tile into the capture buffer (unnormalized for the key-normalized kinds).
  void capture_tile(index_t b, const Segment* segs, index_t nseg, index_t lanes, index_t j0,
                    index_t bk, const T* st) const {
    for (index_t s = 0; s < nseg; ++s) {
      const Segment& sg = segs[s];
      for (index_t r = 0; r < sg.count; ++r) {
        T* dst = x.probs + b * x.ps[0] + sg.h * x.ps[1] + (sg.q0 + r) * x.ps[2] + j0 * x.ps[3];
        for (index_t j = 0; j < bk; ++j) dst[j * x.ps[3]] = st[j * lanes + sg.lane0 + r];
      }
    }
  }

  /// Zeroes the capture rows of the segments over the keys [kb, ke).
  void capture_zero(index_t b, const Segment* segs, index_t nseg, index_t kb, index_t ke) const {
    for (index_t s = 0; s < nseg; ++s) {
      const Segment& sg = segs[s];
      for (index_t r = 0; r < sg.count; ++r) {
        T* dst = x.probs + b * x.ps[0] + sg.h * x.ps[1] + (sg.q0 + r) * x.ps[2];
        for (index_t j = kb; j < ke; ++j) dst[j * x.ps[3]] = T(0);
      }
    }
  }

  /// Multiplies the captured P of row `i` of head `h` over the keys [kb, ke) by f.
  void capture_scale(index_t b, index_t h, index_t i, index_t kb, index_t ke, T f) const {
    T* dst = x.probs + b * x.ps[0] + h * x.ps[1] + i * x.ps[2];
    for (index_t j = kb; j < ke; ++j) dst[j * x.ps[3]] *= f;
  }

  // ---- the key-normalized / elementwise work unit -----------------------------------------

  /// Runs lane groups (each: segments, Q^T, O, m, l) over the keys [kb, ke) of kv head kvh.
  /// Leaves unnormalized O, m (log2 units) and l in the workspace.
  void run_groups(Workspace<T>& ws, index_t b, index_t kvh, const Segment* segs,
                  const index_t* seg_begin, index_t ngroups, index_t lanes, index_t kb,
                  index_t ke) const {
    const index_t d = x.g.d, dvp = x.dvp;
    for (index_t gi = 0; gi < ngroups; ++gi) {
      pack_qt(b, segs + seg_begin[gi], seg_begin[gi + 1] - seg_begin[gi], lanes,
              ws.qt.get() + gi * d * lanes);
      std::fill(ws.o.get() + gi * lanes * dvp, ws.o.get() + (gi + 1) * lanes * dvp, T(0));
      std::fill(ws.m.get() + gi * lanes, ws.m.get() + (gi + 1) * lanes, marker<T> * log2e);
      std::fill(ws.l.get() + gi * lanes, ws.l.get() + (gi + 1) * lanes, T(0));
    }
    const index_t nkt = (x.g.nk + key_tile - 1) / key_tile;
    // The running max of skipped (Empty) tiles is never written: start from "no key seen", so
    // the rescale of their (zero) captured P is by 0 or 1, never by exp2 of a stale value.
    if (x.probs && norm == Normalization::over_keys_exp)
      std::fill(
          ws.mhist.get() + kb / key_tile * lanes,
          ws.mhist.get() + (ngroups - 1) * nkt * lanes + (ke + key_tile - 1) / key_tile * lanes,
          marker<T> * log2e);
    for (index_t j0 = kb; j0 < ke; j0 += key_tile) {
      const index_t bk = std::min(key_tile, ke - j0);
      const T* vrows = nullptr;
      index_t vstride = 0;
      for (index_t gi = 0; gi < ngroups; ++gi) {
        const Segment* gs = segs + seg_begin[gi];
        const index_t ns = seg_begin[gi + 1] - seg_begin[gi];
        const TileClass cls = classify(b, gs, ns, j0, j0 + bk);
        if (cls == TileClass::empty) {
          if (x.probs) capture_zero(b, gs, ns, j0, j0 + bk);  // the other tiles are written
          continue;
        }
        const bool partial = cls == TileClass::partial;
        const index_t nl = gs[ns - 1].lane0 + gs[ns - 1].count;
        T* st = ws.st.get();
        qk_tile<Arch, T>(ws.qt.get() + gi * d * lanes, lanes, k_tile(b, kvh, j0), x.ks[2],
                         x.ks[3], d, bk, st);
        mod_and_mask(b, gs, ns, lanes, j0, bk, partial, st);
        T* m = ws.m.get() + gi * lanes;
        const bool rescale = activate(lanes, bk, partial || scores_modded, st, m,
                                      ws.l.get() + gi * lanes, ws.alpha.get());
        if (x.dropout.enabled()) dropout_tile(b, gs, ns, lanes, j0, bk, st);
        if (!vrows) vrows = v_tile(b, kvh, j0, bk, ws.vp.get(), vstride);
        pv_tile<Arch, T>(st, lanes, nl, vrows, vstride, bk, dvp, rescale ? ws.alpha.get() : nullptr,
                         ws.o.get() + gi * lanes * dvp);
        if (x.probs) {
          capture_tile(b, gs, ns, lanes, j0, bk, st);
          if constexpr (norm == Normalization::over_keys_exp)
            std::copy(m, m + lanes, ws.mhist.get() + (gi * nkt + j0 / key_tile) * lanes);
        }
      }
    }
  }

  /// Normalizes O (and the captured P) of the groups, applies the gate, stores to out.
  void finalize_groups(Workspace<T>& ws, index_t b, const Segment* segs,
                       const index_t* seg_begin, index_t ngroups, index_t lanes) const {
    const index_t dvp = x.dvp;
    const index_t nkt = (x.g.nk + key_tile - 1) / key_tile;
    for (index_t gi = 0; gi < ngroups; ++gi) {
      const T* o = ws.o.get() + gi * lanes * dvp;
      const T* m = ws.m.get() + gi * lanes;
      const T* l = ws.l.get() + gi * lanes;
      for (index_t s = seg_begin[gi]; s < seg_begin[gi + 1]; ++s) {
        const Segment& sg = segs[s];
        for (index_t r = 0; r < sg.count; ++r) {
          const index_t lane = sg.lane0 + r;
          T inv = T(1);
          if constexpr (norm == Normalization::over_keys_exp ||
                        norm == Normalization::over_keys_sum)
            inv = l[lane] > T(0) ? T(1) / l[lane] : T(0);
          store_row(b, sg.h, sg.q0 + r, o + lane * dvp, inv, ws.vp.get());
          if (x.probs && (norm == Normalization::over_keys_exp ||
                          norm == Normalization::over_keys_sum)) {
            T* dst = x.probs + b * x.ps[0] + sg.h * x.ps[1] + (sg.q0 + r) * x.ps[2];
            for (index_t t = 0; t < nkt; ++t) {
              T f = inv;
              if constexpr (norm == Normalization::over_keys_exp)
                f = inv == T(0) ? T(0)
                                : static_cast<T>(std::exp2(
                                      ws.mhist[static_cast<std::size_t>((gi * nkt + t) * lanes + lane)] -
                                      m[lane])) * inv;
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
    if constexpr (!Policy::gate_type::is_identity) pol.gate.apply_row(b, h, i, tmp, x.g.dv);
    T* dst = x.out + b * x.os[0] + h * x.os[1] + i * x.os[2];
    for (index_t c = 0; c < x.g.dv; ++c) dst[c * x.os[3]] = tmp[c];
  }

  /// The prefill path: units (b, kvh, query tile), one lane group per query head.
  void run_prefill() const {
    const Geometry& g = x.g;
    const index_t nqt = (g.nq + query_tile - 1) / query_tile;
    const index_t nkt = (g.nk + key_tile - 1) / key_tile;
    const long units = static_cast<long>(g.batch * g.heads_kv * nqt);
    const index_t hist = x.probs && norm == Normalization::over_keys_exp ? x.group * nkt * query_tile : 0;
    parallel_units(
        units,
        [&] { return Workspace<T>(x.group, query_tile, g.d, x.dvp, 1, hist); },
        [&](Workspace<T>& ws, long u) {
          // Largest query tiles first: they carry the most keys under causal masks.
          const index_t qt = nqt - 1 - static_cast<index_t>(u % nqt);
          const index_t bh = static_cast<index_t>(u / nqt);
          const index_t b = bh / g.heads_kv, kvh = bh % g.heads_kv;
          const index_t q0 = qt * query_tile, cnt = std::min(query_tile, g.nq - q0);
          std::vector<Segment> segs(static_cast<std::size_t>(x.group));
          std::vector<index_t> begin(static_cast<std::size_t>(x.group + 1));
          for (index_t gi = 0; gi < x.group; ++gi) {
            segs[static_cast<std::size_t>(gi)] = Segment{kvh * x.group + gi, q0, cnt, 0};
            begin[static_cast<std::size_t>(gi)] = gi;
          }
          begin[static_cast<std::size_t>(x.group)] = x.group;
          run_groups(ws, b, kvh, segs.data(), begin.data(), x.group, query_tile, 0, g.nk);
          finalize_groups(ws, b, segs.data(), begin.data(), x.group, query_tile);
        });
  }

  /// The decode path: all query rows of the G heads of a kv head share one lane group; the keys
  /// are split into fixed chunks merged afterwards in chunk order (flash-decoding). With P
  /// capture, each chunk keeps the running max of each of its key tiles, and the merge scales
  /// the captured P once per tile by exp2(tile max - final max) / sum.
  void run_decode() const {
    const Geometry& g = x.g;
    const index_t nsplit = (g.nk + decode_chunk - 1) / decode_chunk;
    const index_t rows = x.group * g.nq;
    const index_t lanes = (rows + W - 1) / W * W;
    const index_t dvp = x.dvp;
    const long units = static_cast<long>(g.batch * g.heads_kv * nsplit);
    const index_t nkt = (g.nk + key_tile - 1) / key_tile;
    const index_t hist = x.probs && norm == Normalization::over_keys_exp ? nkt * lanes : 0;
    // Partial results: [B, Hkv, nsplit] x (rows x dvp O, rows m, rows l, with exp capture
    // rows x tiles-per-chunk running maxima).
    constexpr index_t chunk_tiles = decode_chunk / key_tile;
    const index_t per_unit = rows * dvp + 2 * rows + (hist > 0 ? rows * chunk_tiles : 0);
    auto part = make_aligned<T>(static_cast<std::size_t>(units * per_unit));
    parallel_units(
        units, [&] { return Workspace<T>(1, lanes, g.d, dvp, 1, hist); },
        [&](Workspace<T>& ws, long u) {
          const index_t sp = static_cast<index_t>(u % nsplit);
          const index_t bh = static_cast<index_t>(u / nsplit);
          const index_t b = bh / g.heads_kv, kvh = bh % g.heads_kv;
          std::vector<Segment> segs(static_cast<std::size_t>(x.group));
          for (index_t gi = 0; gi < x.group; ++gi)
            segs[static_cast<std::size_t>(gi)] = Segment{kvh * x.group + gi, 0, g.nq, gi * g.nq};
          const index_t begin[2] = {0, x.group};
          const index_t kb = sp * decode_chunk, ke = std::min(g.nk, kb + decode_chunk);
          run_groups(ws, b, kvh, segs.data(), begin, 1, lanes, kb, ke);
          T* dst = part.get() + u * per_unit;
          if (hist > 0)
            for (index_t r = 0; r < rows; ++r)
              for (index_t t = 0; t < chunk_tiles && kb + t * key_tile < ke; ++t)
                dst[rows * dvp + 2 * rows + r * chunk_tiles + t] =
                    ws.mhist[static_cast<std::size_t>((kb / key_tile + t) * lanes + r)];
          for (index_t r = 0; r < rows; ++r)
            std::copy(ws.o.get() + r * dvp, ws.o.get() + (r + 1) * dvp, dst + r * dvp);
          std::copy(ws.m.get(), ws.m.get() + rows, dst + rows * dvp);
          std::copy(ws.l.get(), ws.l.get() + rows, dst + rows * dvp + rows);
        });
    // Merge in split order, serially per (b, kvh) in parallel: deterministic.
    parallel_units(
        static_cast<long>(g.batch * g.heads_kv),
        [&] { return make_aligned<T>(static_cast<std::size_t>(2 * dvp)); },
        [&](aligned_ptr<T>& tmp, long bh) {
          const index_t b = static_cast<index_t>(bh) / g.heads_kv;
          const index_t kvh = static_cast<index_t>(bh) % g.heads_kv;
          T* acc = tmp.get();
          for (index_t r = 0; r < rows; ++r) {
            const T* first = part.get() + bh * nsplit * per_unit;
            T mmax = marker<T> * log2e;
            if constexpr (norm == Normalization::over_keys_exp)
              for (index_t sp = 0; sp < nsplit; ++sp)
                mmax = std::max(mmax, first[sp * per_unit + rows * dvp + r]);
            std::fill(acc, acc + dvp, T(0));
            T lsum = 0;
            for (index_t sp = 0; sp < nsplit; ++sp) {
              const T* pu = first + sp * per_unit;
              T f = T(1);
              if constexpr (norm == Normalization::over_keys_exp)
                f = static_cast<T>(std::exp2(pu[rows * dvp + r] - mmax));
              for (index_t c = 0; c < dvp; ++c) acc[c] += f * pu[r * dvp + c];
              lsum += f * pu[rows * dvp + rows + r];
            }
            T inv = T(1);
            if constexpr (norm == Normalization::over_keys_exp ||
                          norm == Normalization::over_keys_sum)
              inv = lsum > T(0) ? T(1) / lsum : T(0);
            const index_t gi = r / g.nq, i = r % g.nq;
            store_row(b, kvh * x.group + gi, i, acc, inv, acc + dvp);
            if constexpr (norm == Normalization::over_keys_exp ||
                          norm == Normalization::over_keys_sum) {
              if (x.probs)
                for (index_t sp = 0; sp < nsplit; ++sp) {
                  const index_t kb = sp * decode_chunk, ke = std::min(g.nk, kb + decode_chunk);
                  if constexpr (norm == Normalization::over_keys_exp) {
                    const T* tile_max =
                        first + sp * per_unit + rows * dvp + 2 * rows + r * chunk_tiles;
                    for (index_t t0 = kb; t0 < ke; t0 += key_tile) {
                      const T f = static_cast<T>(std::exp2(tile_max[(t0 - kb) / key_tile] - mmax));
                      capture_scale(b, kvh * x.group + gi, i, t0, std::min(ke, t0 + key_tile),
                                    inv == T(0) ? T(0) : f * inv);
                    }
                  } else {
                    capture_scale(b, kvh * x.group + gi, i, kb, ke, inv);
                  }
                }
            }
          }
        });
  }

  // ---- head softmax -------------------------------------------------------------------------

  /// Units (b, query tile) with every head; per key tile the scores of all heads are computed,
  /// then normalized across heads per (i, j), then multiplied with V.
  void run_head_softmax() const {
    const Geometry& g = x.g;
    constexpr index_t lanes = head_softmax_query_tile;
    const index_t nqt = (g.nq + lanes - 1) / lanes;
    const index_t hq = g.heads_q, d = g.d, dvp = x.dvp;
    const long units = static_cast<long>(g.batch * nqt);
    parallel_units(
        units, [&] { return Workspace<T>(hq, lanes, d, dvp, hq, 0); },
        [&](Workspace<T>& ws, long u) {
          const index_t b = static_cast<index_t>(u) / nqt;
          const index_t q0 = (static_cast<index_t>(u) % nqt) * lanes;
          const index_t cnt = std::min(lanes, g.nq - q0);
          std::vector<Segment> segs(static_cast<std::size_t>(hq));
          std::vector<TileClass> cls(static_cast<std::size_t>(hq));
          for (index_t h = 0; h < hq; ++h) {
            segs[static_cast<std::size_t>(h)] = Segment{h, q0, cnt, 0};
            pack_qt(b, &segs[static_cast<std::size_t>(h)], 1, lanes, ws.qt.get() + h * d * lanes);
            if (x.probs) capture_zero(b, &segs[static_cast<std::size_t>(h)], 1, 0, g.nk);
          }
          std::fill(ws.o.get(), ws.o.get() + hq * lanes * dvp, T(0));
          for (index_t j0 = 0; j0 < g.nk; j0 += key_tile) {
            const index_t bk = std::min(key_tile, g.nk - j0);
            bool any = false;
            for (index_t h = 0; h < hq; ++h) {
              cls[static_cast<std::size_t>(h)] = classify(b, &segs[static_cast<std::size_t>(h)], 1, j0, j0 + bk);
              any = any || cls[static_cast<std::size_t>(h)] != TileClass::empty;
            }
            if (!any) continue;
            for (index_t h = 0; h < hq; ++h) {
              T* st = ws.st.get() + h * key_tile * lanes;
              const TileClass c = cls[static_cast<std::size_t>(h)];
              if (c == TileClass::empty) continue;
              qk_tile<Arch, T>(ws.qt.get() + h * d * lanes, lanes, k_tile(b, h / x.group, j0),
                               x.ks[2], x.ks[3], d, bk, st);
              mod_and_mask(b, &segs[static_cast<std::size_t>(h)], 1, lanes, j0, bk,
                           c == TileClass::partial, st);
            }
            normalize_heads(cls.data(), hq, lanes, bk, ws.st.get());
            if (x.dropout.enabled())
              for (index_t h = 0; h < hq; ++h)
                if (cls[static_cast<std::size_t>(h)] != TileClass::empty)
                  dropout_tile(b, &segs[static_cast<std::size_t>(h)], 1, lanes, j0, bk,
                               ws.st.get() + h * key_tile * lanes);
            for (index_t kvh = 0; kvh < g.heads_kv; ++kvh) {
              const T* vrows = nullptr;
              index_t vstride = 0;
              for (index_t gi = 0; gi < x.group; ++gi) {
                const index_t h = kvh * x.group + gi;
                if (cls[static_cast<std::size_t>(h)] == TileClass::empty) continue;
                if (!vrows) vrows = v_tile(b, kvh, j0, bk, ws.vp.get(), vstride);
                const T* st = ws.st.get() + h * key_tile * lanes;
                pv_tile<Arch, T>(st, lanes, cnt, vrows, vstride, bk, dvp, nullptr,
                                 ws.o.get() + h * lanes * dvp);
                if (x.probs) capture_tile(b, &segs[static_cast<std::size_t>(h)], 1, lanes, j0, bk, st);
              }
            }
          }
          for (index_t h = 0; h < hq; ++h)
            for (index_t r = 0; r < cnt; ++r)
              store_row(b, h, q0 + r, ws.o.get() + (h * lanes + r) * dvp, T(1), ws.vp.get());
        });
  }

  /// P_h = exp(g(s_h) - max) / Σ over the heads whose class is not Empty and whose pair is visible.
  void normalize_heads(const TileClass* cls, index_t hq, index_t lanes, index_t bk, T* st) const {
    const B thr(marker_threshold<T>);
    const index_t ts = key_tile * lanes;
    if constexpr (!identity_map) {  // the map before the exponential; markers stay markers
      const Activation act = pol.activation;
      for (index_t h = 0; h < hq; ++h) {
        if (cls[h] == TileClass::empty) continue;
        for (index_t j = 0; j < bk; ++j)
          for (index_t v = 0; v < lanes / W; ++v) {
            T* at = st + h * ts + j * lanes + v * W;
            const B t = B::load_aligned(at);
            xsimd::select(t > thr, act.simd_map(t), t).store_aligned(at);
          }
      }
    }
    for (index_t j = 0; j < bk; ++j)
      for (index_t v = 0; v < lanes / W; ++v) {
        const index_t off = j * lanes + v * W;
        B mx(marker<T>);
        for (index_t h = 0; h < hq; ++h)
          if (cls[h] != TileClass::empty) mx = xsimd::max(mx, B::load_aligned(st + h * ts + off));
        const B m2 = mx * B(log2e);
        B sum(T(0));
        for (index_t h = 0; h < hq; ++h) {
          if (cls[h] == TileClass::empty) continue;
          const B t = B::load_aligned(st + h * ts + off);
          B e = exp2_batch<Arch, T>(xsimd::fms(t, B(log2e), m2));
          e = xsimd::select(t > thr, e, B(T(0)));
          e.store_aligned(st + h * ts + off);
          sum += e;
        }
        const B inv = xsimd::select(sum > B(T(0)), B(T(1)) / sum, B(T(0)));
        for (index_t h = 0; h < hq; ++h)
          if (cls[h] != TileClass::empty)
            (B::load_aligned(st + h * ts + off) * inv).store_aligned(st + h * ts + off);
      }
  }
};

}  // namespace attnkit::attention_detail

ATTNKIT_SIMD_WARNINGS_POP
