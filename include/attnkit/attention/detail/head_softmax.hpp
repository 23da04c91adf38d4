// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The head-softmax driver of FusedKernel: work units (batch, query tile of 32 rows) with every
// query head; per key tile the scores of all heads, then the softmax across heads per (i, j),
// then O += P V per head.
#pragma once

#include <algorithm>
#include <vector>

#include "attnkit/attention/detail/fused_kernel.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::attention_detail {
/// Units (b, query tile) with every head; per key tile the scores of all heads are computed,
/// then normalized across heads per (i, j), then multiplied with V.
template <class Arch, class T, class Policy>
void FusedKernel<Arch, T, Policy>::run_head_softmax() const {
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
            cls[static_cast<std::size_t>(h)] =
                classify(b, &segs[static_cast<std::size_t>(h)], 1, j0, j0 + bk);
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
              if (x.probs)
                capture_tile(b, &segs[static_cast<std::size_t>(h)], 1, lanes, j0, bk, st);
            }
          }
        }
        for (index_t h = 0; h < hq; ++h)
          for (index_t r = 0; r < cnt; ++r) {
            store_row(b, h, q0 + r, ws.o.get() + (h * lanes + r) * dvp, T(1), ws.vp.get());
            if (x.state) store_state(b, h, q0 + r, T(0), T(0));
          }
      });
}

/// P_h = exp(g(s_h) - max) / Σ over the heads whose class is not Empty and whose pair is visible.
template <class Arch, class T, class Policy>
void FusedKernel<Arch, T, Policy>::normalize_heads(const TileClass* cls, index_t hq, index_t lanes,
                                                   index_t bk, T* st) const {
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

}  // namespace attnkit::attention_detail

ATTNKIT_SIMD_WARNINGS_POP
