// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The prefill driver of FusedKernel: work units (batch, kv head, query tile of 64 rows), one lane
// group per query head of the kv head, over every key tile the mask does not call Empty.
#pragma once

#include <algorithm>

#include "attnkit/attention/detail/fused_kernel.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::attention_detail {
/// The prefill path: units (b, kvh, query tile), one lane group per query head.
template <class Arch, class T, class Policy, class KV>
void FusedKernel<Arch, T, Policy, KV>::run_prefill() const {
  const Geometry& g = x.g;
  const index_t nqt = (g.nq + query_tile - 1) / query_tile;
  const index_t nkt = (g.nk + key_tile - 1) / key_tile;
  // Lanes sized to the rows: a call with 3 query rows computes one vector of lanes, not 64.
  const index_t lanes = std::min(query_tile, (g.nq + W - 1) / W * W);
  const long units = static_cast<long>(g.batch * g.heads_kv * nqt);
  const index_t hist = x.probs && norm == Normalization::over_keys_exp ? x.group * nkt * lanes : 0;
  parallel_units(
      units, [&] { return Workspace<T>(x.group, lanes, g.d, x.dvp, 1, hist, x.group, half_kv); },
      [&](Workspace<T>& ws, long u) {
        // Largest query tiles first: they carry the most keys under causal masks.
        const index_t qt = nqt - 1 - static_cast<index_t>(u % nqt);
        const index_t bh = static_cast<index_t>(u / nqt);
        const index_t b = bh / g.heads_kv, kvh = bh % g.heads_kv;
        const index_t q0 = qt * query_tile, cnt = std::min(query_tile, g.nq - q0);
        for (index_t gi = 0; gi < x.group; ++gi) {
          ws.segs[gi] = Segment{kvh * x.group + gi, q0, cnt, 0};
          ws.seg_begin[gi] = gi;
        }
        ws.seg_begin[x.group] = x.group;
        run_groups(ws, b, kvh, ws.segs, ws.seg_begin, x.group, lanes, 0, g.nk);
        finalize_groups(ws, b, ws.segs, ws.seg_begin, x.group, lanes);
      });
}

}  // namespace attnkit::attention_detail

ATTNKIT_SIMD_WARNINGS_POP
