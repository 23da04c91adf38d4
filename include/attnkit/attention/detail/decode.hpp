// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The decode driver of FusedKernel (flash-decoding): the query rows of the G heads of a kv head
// share one lane group; the keys are split into fixed chunks of decode_split keys (never by the
// thread count), each chunk leaves its partial result in DecodePartials, and the merge combines
// them in chunk order, so the result has the same bits for any thread count.
#pragma once

#include <algorithm>
#include <cmath>

#include "attnkit/attention/detail/fused_kernel.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::attention_detail {
/// The partial results of the decode path, one record per work unit u = (b · Hkv + kvh) · nsplit
/// + chunk, each over the `rows` query rows of the unit's lane group:
///   o(u)         [rows, dvp]    unnormalized O = Σ_j p_ij v_j over the chunk's keys;
///   m(u)         [rows]         running max (log2 units; exp-normalized kinds);
///   l(u)         [rows]         sum of the weights p_ij (key-normalized kinds);
///   tile_max(u)  [rows, tiles]  the running max after each key tile of the chunk (with an
///                               exp-normalized P capture only; tiles = decode_split / key_tile).
template <class T>
class DecodePartials {
 public:
  /// Carved from the calling thread's call scratch (no allocation once it is large enough).
  DecodePartials(index_t units, index_t rows, index_t dvp, index_t tiles)
      : rows_(rows),
        dvp_(dvp),
        tiles_(tiles),
        stride_(stride(rows, dvp, tiles)),
        data_(
            reinterpret_cast<T*>(thread_scratch(ScratchSlot::call)
                                     .get(static_cast<std::size_t>(units * stride_) * sizeof(T)))) {
  }
  /// Elements of one unit's record.
  static index_t stride(index_t rows, index_t dvp, index_t tiles) noexcept {
    return (rows * dvp + 2 * rows + rows * tiles + 15) / 16 * 16;
  }
  T* o(index_t u) const noexcept { return data_ + u * stride_; }
  T* m(index_t u) const noexcept { return o(u) + rows_ * dvp_; }
  T* l(index_t u) const noexcept { return m(u) + rows_; }
  /// The tile maxima of row r of unit u: tiles values.
  T* tile_max(index_t u, index_t r) const noexcept { return l(u) + rows_ + r * tiles_; }

 private:
  index_t rows_, dvp_, tiles_, stride_;
  T* data_;
};

/// The decode path: all query rows of the G heads of a kv head share one lane group; the keys
/// are split into fixed chunks merged afterwards in chunk order (flash-decoding). With P
/// capture, each chunk keeps the running max of each of its key tiles, and the merge scales
/// the captured P once per tile by exp2(tile max - final max) / sum.
template <class Arch, class T, class Policy, class KV>
void FusedKernel<Arch, T, Policy, KV>::run_decode() const {
  const Geometry& g = x.g;
  const index_t nsplit = (g.nk + decode_split - 1) / decode_split;
  const index_t rows = x.group * g.nq;
  const index_t lanes = (rows + W - 1) / W * W;
  const index_t dvp = x.dvp;
  const long units = static_cast<long>(g.batch * g.heads_kv * nsplit);
  const index_t nkt = (g.nk + key_tile - 1) / key_tile;
  const index_t hist = x.probs && norm == Normalization::over_keys_exp ? nkt * lanes : 0;
  constexpr index_t chunk_tiles = decode_split / key_tile;
  const DecodePartials<T> parts(static_cast<index_t>(units), rows, dvp, hist > 0 ? chunk_tiles : 0);
  // The threads take runs of consecutive units (about 4 runs per thread, dynamically): each reads
  // long stretches of one kv head's K and V, where the memory streams and the tile's far
  // prefetches stay ahead; taking one chunk at a time, two threads alternated chunks of the same
  // head, and each prefetched the chunk the other was reading (decode from DRAM, 4k and 32k keys,
  // two threads: 1.1-1.4x the tokens/s, f32 and bf16). Which thread runs a unit changes no bits.
  const long runs = 4L * worker_threads();
  const long run = std::max(1L, (units + runs - 1) / runs);  // units per run
  const auto one_unit = [&](Workspace<T>& ws, long u) {
    const index_t sp = static_cast<index_t>(u % nsplit);
    const index_t bh = static_cast<index_t>(u / nsplit);
    const index_t b = bh / g.heads_kv, kvh = bh % g.heads_kv;
    for (index_t gi = 0; gi < x.group; ++gi)
      ws.segs[gi] = Segment{kvh * x.group + gi, 0, g.nq, gi * g.nq};
    const index_t begin[2] = {0, x.group};
    const index_t kb = sp * decode_split, ke = std::min(g.nk, kb + decode_split);
    run_groups(ws, b, kvh, ws.segs, begin, 1, lanes, kb, ke);
    const index_t unit = static_cast<index_t>(u);
    if (hist > 0)
      for (index_t r = 0; r < rows; ++r)
        for (index_t t = 0; t < chunk_tiles && kb + t * key_tile < ke; ++t)
          parts.tile_max(unit, r)[t] =
              ws.mhist[static_cast<std::size_t>((kb / key_tile + t) * lanes + r)];
    for (index_t r = 0; r < rows; ++r)
      std::copy(ws.o + r * dvp, ws.o + (r + 1) * dvp, parts.o(unit) + r * dvp);
    std::copy(ws.m, ws.m + rows, parts.m(unit));
    std::copy(ws.l, ws.l + rows, parts.l(unit));
  };
  parallel_units((units + run - 1) / run,
                 [&] { return Workspace<T>(1, lanes, g.d, dvp, 1, hist, x.group, half_kv); },
                 [&](Workspace<T>& ws, long r) {
                   for (long u = r * run; u < std::min(units, (r + 1) * run); ++u) one_unit(ws, u);
                 });
  // Merge in split order, serially per (b, kvh) in parallel: deterministic.
  parallel_units(
      static_cast<long>(g.batch * g.heads_kv),
      [&] {
        return reinterpret_cast<T*>(
            thread_scratch(ScratchSlot::unit).get(static_cast<std::size_t>(2 * dvp) * sizeof(T)));
      },
      [&](T* acc, long bh) {
        const index_t b = static_cast<index_t>(bh) / g.heads_kv;
        const index_t kvh = static_cast<index_t>(bh) % g.heads_kv;
        for (index_t r = 0; r < rows; ++r) {
          const index_t first = static_cast<index_t>(bh) * nsplit;  // the unit of chunk 0
          T mmax = marker<T> * log2e;
          if constexpr (norm == Normalization::over_keys_exp)
            for (index_t sp = 0; sp < nsplit; ++sp) mmax = std::max(mmax, parts.m(first + sp)[r]);
          std::fill(acc, acc + dvp, T(0));
          T lsum = 0;
          for (index_t sp = 0; sp < nsplit; ++sp) {
            const index_t unit = first + sp;
            T f = T(1);
            if constexpr (norm == Normalization::over_keys_exp)
              f = static_cast<T>(std::exp2(parts.m(unit)[r] - mmax));
            const T* o = parts.o(unit) + r * dvp;
            for (index_t c = 0; c < dvp; ++c) acc[c] += f * o[c];
            lsum += f * parts.l(unit)[r];
          }
          T inv = T(1);
          if constexpr (norm == Normalization::over_keys_exp ||
                        norm == Normalization::over_keys_sum)
            inv = lsum > T(0) ? T(1) / lsum : T(0);
          const index_t gi = r / g.nq, i = r % g.nq;
          store_row(b, kvh * x.group + gi, i, acc, inv, acc + dvp);
          if (x.state) store_state(b, kvh * x.group + gi, i, mmax, lsum);
          if constexpr (norm == Normalization::over_keys_exp ||
                        norm == Normalization::over_keys_sum) {
            if (x.probs)
              for (index_t sp = 0; sp < nsplit; ++sp) {
                const index_t kb = sp * decode_split, ke = std::min(g.nk, kb + decode_split);
                if constexpr (norm == Normalization::over_keys_exp) {
                  const T* tile_max = parts.tile_max(first + sp, r);
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

}  // namespace attnkit::attention_detail

ATTNKIT_SIMD_WARNINGS_POP
