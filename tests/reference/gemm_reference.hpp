// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: attnkit contributors
// Double-precision naive GEMM reference for tests: C = alpha · A · B + beta · C over strided
// operands, accumulated in double (long double for fp64 inputs), plus the magnitude bound
// Σ |alpha a b| + |beta c| that error tolerances scale with.
#pragma once

#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

namespace attnkit_test {

/// Result and magnitude of one reference GEMM, both row-major [m, n].
struct GemmReference {
  std::vector<long double> value;
  std::vector<long double> magnitude;
};

/// Reference for C = alpha · A[m, k] · B[k, n] + beta · C (C read only when beta != 0).
/// Element (i, j) of X is x[i · rs + j · cs].
template <class T>
GemmReference gemm_reference(std::ptrdiff_t m, std::ptrdiff_t n, std::ptrdiff_t k, T alpha,
                             const T* a, std::ptrdiff_t rs_a, std::ptrdiff_t cs_a, const T* b,
                             std::ptrdiff_t rs_b, std::ptrdiff_t cs_b, T beta, const T* c,
                             std::ptrdiff_t rs_c, std::ptrdiff_t cs_c) {
  GemmReference r;
  r.value.assign(static_cast<std::size_t>(m * n), 0.0L);
  r.magnitude.assign(static_cast<std::size_t>(m * n), 0.0L);
  for (std::ptrdiff_t i = 0; i < m; ++i)
    for (std::ptrdiff_t j = 0; j < n; ++j) {
      long double acc = 0, mag = 0;
      for (std::ptrdiff_t p = 0; p < k; ++p) {
        const long double prod = static_cast<long double>(a[i * rs_a + p * cs_a]) *
                                 static_cast<long double>(b[p * rs_b + j * cs_b]);
        acc += prod;
        mag += std::fabs(prod);
      }
      long double v = static_cast<long double>(alpha) * acc;
      long double g = std::fabs(static_cast<long double>(alpha)) * mag;
      if (beta != T(0)) {
        const long double cv =
            static_cast<long double>(beta) * static_cast<long double>(c[i * rs_c + j * cs_c]);
        v += cv;
        g += std::fabs(cv);
      }
      r.value[static_cast<std::size_t>(i * n + j)] = v;
      r.magnitude[static_cast<std::size_t>(i * n + j)] = g;
    }
  return r;
}

}  // namespace attnkit_test
