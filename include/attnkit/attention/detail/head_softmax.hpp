// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The head-softmax driver of FusedKernel: work units (batch, query tile of 32 rows[, key chunk])
// with every query head; per key tile the scores of all heads, then the softmax across heads per
// (i, j), then O += P V per head; chunks of keys (decode) are summed in chunk order.
#pragma once

#include <algorithm>

#include "attnkit/attention/detail/fused_kernel.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::attention_detail {
/// Units (b, query tile[, key chunk]) with every head; per key tile the scores of all heads are
/// computed, then normalized across heads per (i, j), then multiplied with V. With `split` (few
/// query rows over many keys) the keys are cut into fixed chunks of decode_chunk keys, one unit
/// each; P needs nothing across keys, so the chunks' O are summed in chunk order afterwards (the
/// same bits for any thread count).
template <class Arch, class T, class Policy, class KV>
void FusedKernel<Arch, T, Policy, KV>::run_head_softmax(bool split) const {
  const Geometry& g = x.g;
  // A few query rows (decode) take one SIMD width of lanes and their scores from Q rows,
  // vectorized along d (qk_rows_tile). The broadcast tile computed all 32 lanes for each row:
  // decode from DRAM (32k keys, D = 128) took 2.2-2.4x as long.
  const bool few = x.ks[3] == 1 && 2 * g.nq <= W;
  const index_t lanes = few ? W : head_softmax_query_tile;
  const index_t nqt = (g.nq + lanes - 1) / lanes;
  const index_t hq = g.heads_q, d = g.d, dvp = x.dvp, dp = q_row_stride(d);
  const index_t nsplit = split ? (g.nk + decode_chunk - 1) / decode_chunk : 1;
  const index_t rows = std::min(lanes, g.nq);  // query rows of a unit, at most
  const long units = static_cast<long>(g.batch * nqt * nsplit);
  // The chunks' O: [units][hq][rows][dvp], from the calling thread's call scratch.
  T* parts = nsplit == 1
                 ? nullptr
                 : reinterpret_cast<T*>(
                       thread_scratch(ScratchSlot::call)
                           .get(static_cast<std::size_t>(units * hq * rows * dvp) * sizeof(T)));
  parallel_units(
      units, [&] { return Workspace<T>(hq, lanes, d, dvp, hq, 0, hq, half_kv); },
      [&](Workspace<T>& ws, long u) {
        const index_t sp = static_cast<index_t>(u % nsplit);
        const index_t bq = static_cast<index_t>(u / nsplit);
        const index_t b = bq / nqt;
        const index_t q0 = (bq % nqt) * lanes;
        const index_t cnt = std::min(lanes, g.nq - q0);
        const index_t kb = sp * decode_chunk;
        const index_t ke = nsplit == 1 ? g.nk : std::min(g.nk, kb + decode_chunk);
        Segment* segs = ws.segs;
        TileClass* cls = ws.cls;
        for (index_t h = 0; h < hq; ++h) {
          segs[h] = Segment{h, q0, cnt, 0};
          T* qt = ws.qt + h * d * lanes;
          pack_qt(b, &segs[h], 1, lanes, qt);
          if (few) pack_qr(qt, lanes, cnt, ws.qr + h * lanes * dp);
          if (x.probs) capture_zero(b, &segs[h], 1, kb, ke);
        }
        std::fill(ws.o, ws.o + hq * lanes * dvp, T(0));
        for (index_t j0 = kb; j0 < ke; j0 += key_tile) {
          const index_t bk = std::min(key_tile, ke - j0);
          bool any = false;
          for (index_t h = 0; h < hq; ++h) {
            cls[h] = classify(b, &segs[h], 1, j0, j0 + bk);
            any = any || cls[h] != TileClass::empty;
          }
          if (!any) continue;
          const T* krows = nullptr;
          index_t kstride = 0, kdstride = 0, kvh_packed = -1;
          for (index_t h = 0; h < hq; ++h) {
            T* st = ws.st + h * key_tile * lanes;
            if (cls[h] == TileClass::empty) continue;
            if (few) {  // K rows read in place; the first head of a group prefetches the V rows
              const index_t kvh = h / x.group;
              const KV* vraw = x.vs[3] == 1 && h % x.group == 0 ? v_rows(b, kvh, j0) : nullptr;
              qk_rows_tile<Arch, T>(ws.qr + h * lanes * dp, dp, cnt, lanes, k_tile(b, kvh, j0),
                                    x.ks[2], d, bk, st, vraw, x.vs[2], x.g.dv);
              mod_and_mask(b, &segs[h], 1, lanes, j0, bk, cls[h] == TileClass::partial, st);
              continue;
            }
            // One kv head's K tile serves its G query heads (packed once for 16-bit K).
            if (krows == nullptr || h / x.group != kvh_packed) {
              kvh_packed = h / x.group;
              krows = k_tile_t(b, kvh_packed, j0, bk, ws.kp, kstride, kdstride);
            }
            qk_tile<Arch, T>(ws.qt + h * d * lanes, lanes, krows, kstride, kdstride, d, bk, st);
            mod_and_mask(b, &segs[h], 1, lanes, j0, bk, cls[h] == TileClass::partial, st);
          }
          normalize_heads(cls, hq, lanes, bk, ws.st);
          if (x.dropout.enabled())
            for (index_t h = 0; h < hq; ++h)
              if (cls[h] != TileClass::empty)
                dropout_tile(b, &segs[h], 1, lanes, j0, bk, ws.st + h * key_tile * lanes);
          for (index_t kvh = 0; kvh < g.heads_kv; ++kvh) {
            const T* vrows = nullptr;
            index_t vstride = 0;
            for (index_t gi = 0; gi < x.group; ++gi) {
              const index_t h = kvh * x.group + gi;
              if (cls[h] == TileClass::empty) continue;
              if (!vrows) vrows = v_tile(b, kvh, j0, bk, ws.vp, vstride);
              const T* st = ws.st + h * key_tile * lanes;
              pv_tile<Arch, T>(st, lanes, cnt, vrows, vstride, bk, dvp, nullptr,
                               ws.o + h * lanes * dvp);
              if (x.probs) capture_tile(b, &segs[h], 1, j0, bk, st, lanes, 1);
            }
          }
        }
        for (index_t h = 0; h < hq; ++h)
          for (index_t r = 0; r < cnt; ++r) {
            const T* orow = ws.o + (h * lanes + r) * dvp;
            if (parts != nullptr) {
              std::copy(orow, orow + dvp, parts + ((u * hq + h) * rows + r) * dvp);
              continue;
            }
            store_row(b, h, q0 + r, orow, T(1), ws.vp);
            if (x.state) store_state(b, h, q0 + r, T(0), T(0));
          }
      });
  if (parts == nullptr) return;
  // The chunks of each (b, query tile) summed in chunk order.
  parallel_units(
      static_cast<long>(g.batch * nqt),
      [&] {
        return reinterpret_cast<T*>(
            thread_scratch(ScratchSlot::unit).get(static_cast<std::size_t>(2 * dvp) * sizeof(T)));
      },
      [&](T* acc, long bq) {
        const index_t b = static_cast<index_t>(bq) / nqt;
        const index_t q0 = (static_cast<index_t>(bq) % nqt) * lanes;
        const index_t cnt = std::min(lanes, g.nq - q0);
        for (index_t h = 0; h < hq; ++h)
          for (index_t r = 0; r < cnt; ++r) {
            std::fill(acc, acc + dvp, T(0));
            for (index_t sp = 0; sp < nsplit; ++sp) {
              const T* o = parts + (((bq * nsplit + sp) * hq + h) * rows + r) * dvp;
              for (index_t c = 0; c < dvp; ++c) acc[c] += o[c];
            }
            store_row(b, h, q0 + r, acc, T(1), acc + dvp);
            if (x.state) store_state(b, h, q0 + r, T(0), T(0));
          }
      });
}

/// P_h = exp(g(s_h) - max) / Σ over the heads whose class is not Empty and whose pair is visible.
template <class Arch, class T, class Policy, class KV>
void FusedKernel<Arch, T, Policy, KV>::normalize_heads(const TileClass* cls, index_t hq,
                                                       index_t lanes, index_t bk, T* st) const {
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
