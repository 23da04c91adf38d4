// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// The one place FLOPs are counted for benchmarks and `--repeat` (2 per FMA; useful FLOPs only).
#pragma once

#include <cstdint>

namespace attnkit::bench {

/// C[M,N] += A[M,K] B[K,N]: 2·M·N·K.
constexpr double gemm_flops(double m, double n, double k) { return 2.0 * m * n * k; }

/// Attention QKᵀ and PV: 2·B·Hq·Nq·Nk·(D + Dv), halved for causal (as CUTLASS's FMHA runner).
/// `visible_fraction` replaces the halving for other masks (1 = dense).
constexpr double attention_flops(double b, double hq, double nq, double nk, double d, double dv,
                                 double visible_fraction = 1.0) {
  return 2.0 * b * hq * nq * nk * (d + dv) * visible_fraction;
}

/// Bytes touched once by attention: Q, K, V read, O written.
constexpr double attention_bytes(double b, double hq, double hkv, double nq, double nk, double d,
                                 double dv, double elem_size) {
  return elem_size * b * (hq * nq * d + hkv * nk * (d + dv) + hq * nq * dv);
}

}  // namespace attnkit::bench
