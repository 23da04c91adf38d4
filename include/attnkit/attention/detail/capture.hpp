// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// P capture of FusedKernel: the unnormalized P^T tiles go to the caller's buffer as they are
// applied; finalize (or the decode merge) rescales them once per tile.
#pragma once

#include <algorithm>

#include "attnkit/attention/detail/fused_kernel.hpp"

ATTNKIT_SIMD_WARNINGS_PUSH  // GCC 12 false positive inside AVX-512 intrinsics (core/warnings.hpp)

namespace attnkit::attention_detail {
/// Writes a P tile into the capture buffer (unnormalized for the key-normalized kinds): the
/// pair (key j0 + j, lane) is at p[j · pj + lane · pr], P^T (pj = lanes, pr = 1) or a row-major
/// decode tile (pj = 1, pr = its row stride).
template <class Arch, class T, class Policy, class KV>
void FusedKernel<Arch, T, Policy, KV>::capture_tile(index_t b, const Segment* segs, index_t nseg,
                                                    index_t j0, index_t bk, const T* p, index_t pj,
                                                    index_t pr) const {
  for (index_t s = 0; s < nseg; ++s) {
    const Segment& sg = segs[s];
    for (index_t r = 0; r < sg.count; ++r) {
      T* dst = x.probs + b * x.ps[0] + sg.h * x.ps[1] + (sg.q0 + r) * x.ps[2] + j0 * x.ps[3];
      const T* src = p + (sg.lane0 + r) * pr;
      if (pj == 1 && x.ps[3] == 1) {  // the decode tile into a contiguous row: one copy
        std::copy_n(src, bk, dst);
        continue;
      }
      for (index_t j = 0; j < bk; ++j) dst[j * x.ps[3]] = src[j * pj];
    }
  }
}

/// Zeroes the capture rows of the segments over the keys [kb, ke).
template <class Arch, class T, class Policy, class KV>
void FusedKernel<Arch, T, Policy, KV>::capture_zero(index_t b, const Segment* segs, index_t nseg,
                                                    index_t kb, index_t ke) const {
  for (index_t s = 0; s < nseg; ++s) {
    const Segment& sg = segs[s];
    for (index_t r = 0; r < sg.count; ++r) {
      T* dst = x.probs + b * x.ps[0] + sg.h * x.ps[1] + (sg.q0 + r) * x.ps[2];
      if (x.ps[3] == 1) {
        std::fill(dst + kb, dst + ke, T(0));
        continue;
      }
      for (index_t j = kb; j < ke; ++j) dst[j * x.ps[3]] = T(0);
    }
  }
}

/// Multiplies the captured P of row `i` of head `h` over the keys [kb, ke) by f.
template <class Arch, class T, class Policy, class KV>
void FusedKernel<Arch, T, Policy, KV>::capture_scale(index_t b, index_t h, index_t i, index_t kb,
                                                     index_t ke, T f) const {
  T* dst = x.probs + b * x.ps[0] + h * x.ps[1] + i * x.ps[2];
  if (x.ps[3] == 1) {  // contiguous (the usual case): a loop the compiler vectorizes
    for (index_t j = kb; j < ke; ++j) dst[j] *= f;
    return;
  }
  for (index_t j = kb; j < ke; ++j) dst[j * x.ps[3]] *= f;
}

}  // namespace attnkit::attention_detail

ATTNKIT_SIMD_WARNINGS_POP
